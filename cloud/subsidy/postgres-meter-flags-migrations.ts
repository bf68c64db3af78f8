// The PostgreSQL meter-flags table as versioned migrations in its own table, meter_flags_schema_migrations, beside the
// ledger's, registry's and payments' tables in one database. Same rules as every store (schema-migrations.ts): all
// pending versions in ONE transaction under a transaction-scoped advisory lock of its own, refusing a database
// migrated by newer or other code (SUBSIDY_INVALID_INPUT, the subsidy domain having no schema codes of its own)
// before touching it. Version 1 is the SQLite table (meter-flags.ts) with BIGINT for seq and ms.

import type pg from "pg";
import { applyPostgresMigrations, migrateOnConnection } from "../postgres.js";
import type { VersionedMigration } from "../schema-migrations.js";
import { SubsidyError, SUBSIDY_ERROR_CODES as C } from "./errors.js";

/** "agri" "mflg" in ASCII, recognisable in pg_locks. */
export const METER_FLAGS_MIGRATION_LOCK_KEY = 0x61677269_6d666c67n;

export const POSTGRES_METER_FLAGS_MIGRATIONS: readonly VersionedMigration[] = [
  {
    version: 1,
    name: "meter-flags-initial",
    sql: `
CREATE TABLE subsidy_meter_flags (
  gateway_id  TEXT    NOT NULL,
  seq         BIGINT  NOT NULL,
  idx         INTEGER NOT NULL,
  meter_id    TEXT    NOT NULL,
  event_type  TEXT    NOT NULL CHECK (event_type IN ('tamper', 'device.offline', 'device.online', 'monitoring.gap', 'monitoring.restored')),
  at_ms       BIGINT  NOT NULL,
  since_ms    BIGINT,
  detail      TEXT    NOT NULL,
  PRIMARY KEY (gateway_id, seq, idx)
);
CREATE INDEX subsidy_meter_flags_by_meter ON subsidy_meter_flags (meter_id, at_ms);
`,
  },
];

export const POSTGRES_METER_FLAGS_SCHEMA_VERSION = POSTGRES_METER_FLAGS_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

export interface MeterFlagsMigrateResult {
  readonly fromVersion: number;
  readonly toVersion: number;
}

/** Brings the meter-flags table to the latest version on `client` (a dedicated connection, not in a transaction). */
export function migratePostgresMeterFlagsOn(
  client: pg.ClientBase,
  nowMs: number,
  migrations: readonly VersionedMigration[] = POSTGRES_METER_FLAGS_MIGRATIONS,
): Promise<MeterFlagsMigrateResult> {
  return applyPostgresMigrations(client, {
    table: "meter_flags_schema_migrations",
    lockKey: METER_FLAGS_MIGRATION_LOCK_KEY,
    migrations,
    nowMs,
    refuse: (p) =>
      new SubsidyError(
        C.INVALID,
        p.kind === "too-new"
          ? `the meter-flags schema is at version ${p.fromVersion}; this code knows up to ${p.knownVersion}`
          : `meter-flags schema version ${p.version} was applied as "${p.appliedName}"`,
      ),
  });
}

/** `agri-cloud migrate` on PostgreSQL: one connection, the meter-flags migrations, closed again. */
export function migratePostgresMeterFlags(connectionString: string, nowMs: number): Promise<MeterFlagsMigrateResult> {
  return migrateOnConnection(connectionString, "agri-meter-flags-migrate", (client) => migratePostgresMeterFlagsOn(client, nowMs));
}
