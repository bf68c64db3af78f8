// Choosing the ledger's engine from configuration (ARCHITECTURE.md §3): the SQLite file by default, PostgreSQL when a
// postgres:// or postgresql:// database URL is given. openLedger opens (and migrates) it; migrateLedger only migrates,
// for `agri-cloud migrate`, and reports the versions it moved between.

import { openDurableDatabase } from "../../sqlite.js";
import type { Ledger } from "./ledger.js";
import { LATEST_SCHEMA_VERSION, migrate, type MigrateResult } from "./migrations.js";
import { openPostgresLedger } from "./postgres-ledger.js";
import { openSqliteLedger } from "./sqlite-ledger.js";

export type LedgerKind = "sqlite" | "postgres";

export interface OpenLedgerOptions {
  /** A postgres:// or postgresql:// URL selects PostgreSQL; anything else (or nothing) keeps the SQLite file. */
  readonly databaseUrl?: string | undefined;
  readonly sqlitePath: string;
  readonly now?: () => number;
  /** PostgreSQL only: connections in the pool. */
  readonly poolSize?: number;
}

export type OpenedLedger = Ledger & { readonly kind: LedgerKind };

export interface LedgerMigration extends MigrateResult {
  readonly kind: LedgerKind;
  /** Where: the SQLite path, or the PostgreSQL URL without its password. */
  readonly target: string;
}

export function ledgerKind(databaseUrl: string | undefined): LedgerKind {
  return databaseUrl !== undefined && /^postgres(ql)?:\/\//i.test(databaseUrl) ? "postgres" : "sqlite";
}

/** The URL with any password replaced, for logs and reports. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(an unparseable database URL)";
  }
}

export async function openLedger(options: OpenLedgerOptions): Promise<OpenedLedger> {
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    return openPostgresLedger({
      connectionString: options.databaseUrl,
      ...(options.now ? { now: options.now } : {}),
      ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
    });
  }
  return openSqliteLedger({ path: options.sqlitePath, ...(options.now ? { now: options.now } : {}) });
}

/** Migrates the selected ledger to this code's latest schema and closes it again. */
export async function migrateLedger(options: OpenLedgerOptions): Promise<LedgerMigration> {
  const now = options.now ?? Date.now;
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    const ledger = await openPostgresLedger({ connectionString: options.databaseUrl, now, poolSize: 1 });
    await ledger.close();
    return { kind: "postgres", target: redactUrl(options.databaseUrl), ...ledger.migration };
  }
  let result: MigrateResult = { fromVersion: LATEST_SCHEMA_VERSION, toVersion: LATEST_SCHEMA_VERSION };
  const db = openDurableDatabase(options.sqlitePath, 10_000, (d) => {
    result = migrate(d, now());
  });
  db.close();
  return { kind: "sqlite", target: options.sqlitePath, ...result };
}
