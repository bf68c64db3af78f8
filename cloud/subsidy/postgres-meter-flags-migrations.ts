// The PostgreSQL meter-flags table as versioned migrations in its own table, meter_flags_schema_migrations, beside the
// ledger's, registry's and payments' tables in one database. Same rules as every store (schema-migrations.ts): all
// pending versions in ONE transaction under a transaction-scoped advisory lock of its own, refusing a database
// migrated by newer or other code (SUBSIDY_INVALID_INPUT, the subsidy domain having no schema codes of its own)
// before touching it. Version 1 is the SQLite table (meter-flags.ts) with BIGINT for seq and ms.

import pg from "pg";
import { planMigrations, type VersionedMigration } from "../schema-migrations.js";
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
export async function migratePostgresMeterFlagsOn(
  client: pg.ClientBase,
  nowMs: number,
  migrations: readonly VersionedMigration[] = POSTGRES_METER_FLAGS_MIGRATIONS,
): Promise<MeterFlagsMigrateResult> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [METER_FLAGS_MIGRATION_LOCK_KEY.toString()]);
    await client.query("CREATE TABLE IF NOT EXISTS meter_flags_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)");
    const applied = (await client.query<{ version: number; name: string }>("SELECT version, name FROM meter_flags_schema_migrations ORDER BY version")).rows;
    const plan = planMigrations(applied, migrations);
    if (!plan.ok) {
      const p = plan.problem;
      throw new SubsidyError(
        C.INVALID,
        p.kind === "too-new"
          ? `the meter-flags schema is at version ${p.fromVersion}; this code knows up to ${p.knownVersion}`
          : `meter-flags schema version ${p.version} was applied as "${p.appliedName}"`,
      );
    }
    for (const m of plan.pending) {
      await client.query(m.sql);
      await client.query("INSERT INTO meter_flags_schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)", [m.version, m.name, nowMs]);
    }
    await client.query("COMMIT");
    return { fromVersion: plan.fromVersion, toVersion: plan.toVersion };
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

/** `agri-cloud migrate` on PostgreSQL: one connection, the meter-flags migrations, closed again. */
export async function migratePostgresMeterFlags(connectionString: string, nowMs: number): Promise<MeterFlagsMigrateResult> {
  const client = new pg.Client({ connectionString, application_name: "agri-meter-flags-migrate" });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await migratePostgresMeterFlagsOn(client, nowMs);
  } finally {
    await client.end().catch(() => undefined);
  }
}
