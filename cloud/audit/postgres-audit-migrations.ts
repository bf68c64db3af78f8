// The audit log's PostgreSQL schema as versioned migrations in its own table (audit_schema_migrations), so it
// shares one database with the ledger (ledger_*), the registry (registry_*) and the auth store (auth_*) without
// touching their migrations. Same rules as theirs (cloud/postgres.ts applyPostgresMigrations): all pending versions
// in ONE transaction under a transaction-scoped advisory lock (two processes starting at once: the second waits,
// then finds nothing to do), planned by planMigrations, refusing a database migrated by newer or other code before
// touching it. Never edit a released migration: add the next one.
//
// Append-only against every writer: a statement-level trigger raises on UPDATE, DELETE and TRUNCATE (a row trigger
// would not see TRUNCATE), with the same message as SQLite's, so isAuditAppendOnlyViolation recognises both.

import type pg from "pg";
import { applyPostgresMigrations } from "../postgres.js";
import type { VersionedMigration } from "../schema-migrations.js";
import { APPEND_ONLY_MESSAGE } from "./audit-log.js";
import { AuditError, AUDIT_ERROR_CODES as C } from "./errors.js";

/** "agri" "audm" in ASCII, recognisable in pg_locks. */
export const AUDIT_MIGRATION_LOCK_KEY = 0x61677269_6175646dn;

export const POSTGRES_AUDIT_MIGRATIONS: readonly VersionedMigration[] = [
  {
    version: 1,
    name: "audit-log",
    sql: `
CREATE FUNCTION audit_refuse_edit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '${APPEND_ONLY_MESSAGE}' USING ERRCODE = 'restrict_violation';
END $$;

-- An identity never hands out the same value twice, even after a rollback; appendAuditEntry serialises appends so
-- that ids also ascend in commit order (postgres-audit-log.ts).
CREATE TABLE audit_log (
  audit_id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at_ms        BIGINT NOT NULL CHECK (at_ms >= 0),
  actor        TEXT   NOT NULL CHECK (length(actor) > 0),
  action       TEXT   NOT NULL CHECK (length(action) > 0),
  entity_type  TEXT   NOT NULL CHECK (length(entity_type) > 0),
  entity_id    TEXT   NOT NULL CHECK (length(entity_id) > 0),
  -- The village the entity belongs to, when it has one: lets an officer read their own village's entries.
  village_id   TEXT,
  reason       TEXT,
  -- JSON as text, not jsonb: a snapshot reads back exactly as it was written (key order, numbers).
  before_json  TEXT,
  after_json   TEXT
);
CREATE INDEX audit_log_by_entity  ON audit_log (entity_type, entity_id, audit_id);
CREATE INDEX audit_log_by_actor   ON audit_log (actor, audit_id);
CREATE INDEX audit_log_by_village ON audit_log (village_id, audit_id);
CREATE INDEX audit_log_by_time    ON audit_log (at_ms);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_edit();
`,
  },
];

export const POSTGRES_AUDIT_SCHEMA_VERSION = POSTGRES_AUDIT_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/** Brings the audit schema to this code's version on `client` (a dedicated connection, not in a transaction). */
export function migratePostgresAuditSchema(
  client: pg.ClientBase,
  nowMs: number,
  migrations: readonly VersionedMigration[] = POSTGRES_AUDIT_MIGRATIONS,
): Promise<{ fromVersion: number; toVersion: number }> {
  return applyPostgresMigrations(client, {
    table: "audit_schema_migrations",
    lockKey: AUDIT_MIGRATION_LOCK_KEY,
    migrations,
    nowMs,
    refuse: (p) =>
      p.kind === "too-new"
        ? new AuditError(C.SCHEMA_TOO_NEW, `the audit log is at schema version ${p.fromVersion}; this code knows up to ${p.knownVersion}`)
        : new AuditError(C.SCHEMA_MISMATCH, `audit schema version ${p.version} was applied as "${p.appliedName}"`),
  });
}
