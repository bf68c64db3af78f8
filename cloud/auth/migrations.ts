// The auth schema (users, sessions, API tokens) on SQLite as versioned migrations in its own table
// (auth_schema_migrations), sharing cloud.db with the registry, the ledger and the audit log (PostgreSQL's:
// postgres-auth-migrations.ts). Same rules as theirs: one BEGIN IMMEDIATE transaction, idempotent, refusing a file
// migrated by newer or other code; never edit a released migration.
// No secret is stored: passwords as scrypt strings (broker/secrets.ts), tokens as SHA-256 digests (opaque-token.ts).

import type Database from "better-sqlite3";
import type { VersionedMigration } from "../schema-migrations.js";
import { applyMigrations } from "../sqlite.js";
import { AuthError, AUTH_ERROR_CODES as C } from "./errors.js";

export const AUTH_MIGRATIONS: readonly VersionedMigration[] = [
  {
    version: 1,
    name: "users-sessions-api-tokens",
    sql: `
CREATE TABLE auth_users (
  user_id               TEXT    PRIMARY KEY,
  name                  TEXT    NOT NULL,
  password_hash         TEXT    NOT NULL,
  roles_json            TEXT    NOT NULL,
  village_ids_json      TEXT    NOT NULL,
  household_id          TEXT,
  jurisdiction_ids_json TEXT    NOT NULL,
  disabled              INTEGER NOT NULL CHECK (disabled IN (0, 1)),
  created_at_ms         INTEGER NOT NULL,
  updated_at_ms         INTEGER NOT NULL
) STRICT;

-- session_digest: SHA-256 of the token. A session ends at expires_at_ms, after idle_timeout of no use, or when revoked.
CREATE TABLE auth_sessions (
  session_digest  TEXT    PRIMARY KEY,
  user_id         TEXT    NOT NULL REFERENCES auth_users (user_id),
  created_at_ms   INTEGER NOT NULL,
  last_seen_at_ms INTEGER NOT NULL,
  expires_at_ms   INTEGER NOT NULL,
  revoked_at_ms   INTEGER
) STRICT;
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);

CREATE TABLE auth_api_tokens (
  token_id        TEXT    PRIMARY KEY,
  token_digest    TEXT    NOT NULL UNIQUE,
  user_id         TEXT    NOT NULL REFERENCES auth_users (user_id),
  name            TEXT    NOT NULL,
  created_at_ms   INTEGER NOT NULL,
  created_by      TEXT    NOT NULL,
  expires_at_ms   INTEGER,
  last_used_at_ms INTEGER,
  revoked_at_ms   INTEGER
) STRICT;
CREATE INDEX auth_api_tokens_by_user ON auth_api_tokens (user_id);
`,
  },
];

export const AUTH_SCHEMA_VERSION = AUTH_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

export function migrateAuth(db: Database.Database, nowMs: number): { fromVersion: number; toVersion: number } {
  return applyMigrations(db, {
    table: "auth_schema_migrations",
    migrations: AUTH_MIGRATIONS,
    nowMs,
    refuse: (p) =>
      p.kind === "too-new"
        ? new AuthError(C.SCHEMA_TOO_NEW, `the auth schema is at version ${p.fromVersion}; this code knows up to ${p.knownVersion}`)
        : new AuthError(C.SCHEMA_MISMATCH, `auth schema version ${p.version} was applied as "${p.appliedName}"`),
  });
}
