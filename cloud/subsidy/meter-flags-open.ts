// Choosing the meter flags' engine from configuration, as the ledger and the registry choose theirs (open-ledger.ts's
// ledgerKind): a table in cloud.db by default, PostgreSQL when the database URL is postgres:// or postgresql:// —
// there several `agri-cloud serve` workers record into, and settle from, one table. migrateMeterFlagsFor only
// migrates, for `agri-cloud migrate`.

import type Database from "better-sqlite3";
import { ledgerKind, redactUrl, type LedgerKind } from "../ledger/store/open-ledger.js";
import { openDurableDatabase } from "../sqlite.js";
import { METER_FLAGS_SCHEMA_SQL, openMeterFlagStore, type MeterFlagStore } from "./meter-flags.js";
import { migratePostgresMeterFlags, type MeterFlagsMigrateResult } from "./postgres-meter-flags-migrations.js";
import { openPostgresMeterFlagStore } from "./postgres-meter-flags.js";

export type OpenMeterFlagStoreForOptions = {
  /** A postgres:// or postgresql:// URL selects PostgreSQL; anything else (or nothing) keeps SQLite. */
  readonly databaseUrl?: string | undefined;
  readonly now?: () => number;
  /** PostgreSQL only: connections in the pool. */
  readonly poolSize?: number;
} & (
  | { /** cloud.db: the store opens its own connection and closes it on close(). */ readonly sqlitePath: string; readonly db?: undefined }
  | { /** A connection the caller opened and will close (close() leaves it open). */ readonly db: Database.Database; readonly sqlitePath?: undefined }
);

export interface MeterFlagsMigration extends MeterFlagsMigrateResult {
  readonly kind: LedgerKind;
  /** Where: the SQLite path, or the PostgreSQL URL without its password. */
  readonly target: string;
}

export async function openMeterFlagStoreFor(options: OpenMeterFlagStoreForOptions): Promise<MeterFlagStore> {
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    return openPostgresMeterFlagStore({
      connectionString: options.databaseUrl,
      ...(options.now ? { now: options.now } : {}),
      ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
    });
  }
  if (options.db !== undefined) return openMeterFlagStore(options.db);
  const db = openDurableDatabase(options.sqlitePath, 10_000, (d) => d.exec(METER_FLAGS_SCHEMA_SQL));
  return openMeterFlagStore(db, { closeDb: true });
}

/**
 * Brings the selected engine's meter-flags table to this code's version. SQLite's table is unversioned (created if
 * missing): version 0 → 1 when this call created it, 1 → 1 otherwise.
 */
export async function migrateMeterFlagsFor(options: { readonly databaseUrl?: string | undefined; readonly sqlitePath: string; readonly now?: () => number }): Promise<MeterFlagsMigration> {
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    const result = await migratePostgresMeterFlags(options.databaseUrl, (options.now ?? Date.now)());
    return { kind: "postgres", target: redactUrl(options.databaseUrl), ...result };
  }
  let fromVersion = 1;
  const db = openDurableDatabase(options.sqlitePath, 10_000, (d) => {
    if (d.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'subsidy_meter_flags'").get() === undefined) fromVersion = 0;
    d.exec(METER_FLAGS_SCHEMA_SQL);
  });
  db.close();
  return { kind: "sqlite", target: options.sqlitePath, fromVersion, toVersion: 1 };
}
