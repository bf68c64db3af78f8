// The audit log's SQLite schema as versioned migrations in its own table (audit_schema_migrations), so it shares
// cloud.db with the ledger and the registry without touching their migrations (PostgreSQL's:
// postgres-audit-migrations.ts). Applied in one BEGIN IMMEDIATE transaction,
// idempotent, refusing a file migrated by newer or other code. Never edit a released migration: add the next one.
// The triggers make the log append-only against every writer, not only this module: an UPDATE or DELETE aborts.

import type Database from "better-sqlite3";
import type { VersionedMigration } from "../schema-migrations.js";
import { applyMigrations } from "../sqlite.js";
import { APPEND_ONLY_MESSAGE } from "./audit-log.js";
import { AuditError, AUDIT_ERROR_CODES as C } from "./errors.js";

export const AUDIT_MIGRATIONS: readonly VersionedMigration[] = [
  {
    version: 1,
    name: "audit-log",
    sql: `
CREATE TABLE audit_log (
  audit_id     INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms        INTEGER NOT NULL CHECK (at_ms >= 0),
  actor        TEXT    NOT NULL CHECK (length(actor) > 0),
  action       TEXT    NOT NULL CHECK (length(action) > 0),
  entity_type  TEXT    NOT NULL CHECK (length(entity_type) > 0),
  entity_id    TEXT    NOT NULL CHECK (length(entity_id) > 0),
  -- The village the entity belongs to, when it has one: lets an officer read their own village's entries.
  village_id   TEXT,
  reason       TEXT,
  before_json  TEXT,
  after_json   TEXT
) STRICT;
CREATE INDEX audit_log_by_entity  ON audit_log (entity_type, entity_id, audit_id);
CREATE INDEX audit_log_by_actor   ON audit_log (actor, audit_id);
CREATE INDEX audit_log_by_village ON audit_log (village_id, audit_id);
CREATE INDEX audit_log_by_time    ON audit_log (at_ms);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, '${APPEND_ONLY_MESSAGE}'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, '${APPEND_ONLY_MESSAGE}'); END;
`,
  },
];

export const AUDIT_SCHEMA_VERSION = AUDIT_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

export function migrateAudit(db: Database.Database, nowMs: number): { fromVersion: number; toVersion: number } {
  return applyMigrations(db, {
    table: "audit_schema_migrations",
    migrations: AUDIT_MIGRATIONS,
    nowMs,
    refuse: (p) =>
      p.kind === "too-new"
        ? new AuditError(C.SCHEMA_TOO_NEW, `the audit log is at schema version ${p.fromVersion}; this code knows up to ${p.knownVersion}`)
        : new AuditError(C.SCHEMA_MISMATCH, `audit schema version ${p.version} was applied as "${p.appliedName}"`),
  });
}
