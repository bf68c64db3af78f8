// The auth schema (users, sessions, API tokens) on PostgreSQL as versioned migrations in its own table
// (auth_schema_migrations), beside the ledger's, the registry's and the audit log's in one database. Same rules as
// theirs (cloud/postgres.ts applyPostgresMigrations): pending versions in ONE transaction under a transaction-scoped
// advisory lock, planned by planMigrations, refusing a database migrated by newer or other code before touching it.
// Never edit a released migration: add the next one. No secret is stored: passwords as scrypt strings
// (broker/secrets.ts), tokens as SHA-256 digests (opaque-token.ts).

import type pg from "pg";
import { applyPostgresMigrations } from "../postgres.js";
import type { VersionedMigration } from "../schema-migrations.js";
import { AuthError, AUTH_ERROR_CODES as C } from "./errors.js";

/** "agri" "auth" in ASCII, recognisable in pg_locks. */
export const AUTH_MIGRATION_LOCK_KEY = 0x61677269_61757468n;

export const POSTGRES_AUTH_MIGRATIONS: readonly VersionedMigration[] = [
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
  disabled              BOOLEAN NOT NULL,
  created_at_ms         BIGINT  NOT NULL,
  updated_at_ms         BIGINT  NOT NULL
);

-- session_digest: SHA-256 of the token. A session ends at expires_at_ms, after idle_timeout of no use, or when revoked.
CREATE TABLE auth_sessions (
  session_digest  TEXT   PRIMARY KEY,
  user_id         TEXT   NOT NULL REFERENCES auth_users (user_id),
  created_at_ms   BIGINT NOT NULL,
  last_seen_at_ms BIGINT NOT NULL,
  expires_at_ms   BIGINT NOT NULL,
  revoked_at_ms   BIGINT
);
CREATE INDEX auth_sessions_by_user ON auth_sessions (user_id);

CREATE TABLE auth_api_tokens (
  token_id        TEXT   PRIMARY KEY,
  token_digest    TEXT   NOT NULL UNIQUE,
  user_id         TEXT   NOT NULL REFERENCES auth_users (user_id),
  name            TEXT   NOT NULL,
  created_at_ms   BIGINT NOT NULL,
  created_by      TEXT   NOT NULL,
  expires_at_ms   BIGINT,
  last_used_at_ms BIGINT,
  revoked_at_ms   BIGINT
);
CREATE INDEX auth_api_tokens_by_user ON auth_api_tokens (user_id);
`,
  },
];

export const POSTGRES_AUTH_SCHEMA_VERSION = POSTGRES_AUTH_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/** Brings the auth schema to this code's version on `client` (a dedicated connection, not in a transaction). */
export function migratePostgresAuthSchema(
  client: pg.ClientBase,
  nowMs: number,
  migrations: readonly VersionedMigration[] = POSTGRES_AUTH_MIGRATIONS,
): Promise<{ fromVersion: number; toVersion: number }> {
  return applyPostgresMigrations(client, {
    table: "auth_schema_migrations",
    lockKey: AUTH_MIGRATION_LOCK_KEY,
    migrations,
    nowMs,
    refuse: (p) =>
      p.kind === "too-new"
        ? new AuthError(C.SCHEMA_TOO_NEW, `the auth schema is at version ${p.fromVersion}; this code knows up to ${p.knownVersion}`)
        : new AuthError(C.SCHEMA_MISMATCH, `auth schema version ${p.version} was applied as "${p.appliedName}"`),
  });
}
