// Choosing the payments store's engine from configuration, as the ledger, the registry and auth choose theirs
// (open-ledger.ts's ledgerKind): cloud.db by default, PostgreSQL when the database URL is postgres:// or
// postgresql:// — the engine several `agri-cloud serve` workers must share, or a callback reaching the worker that
// did not open the order would find no order. migratePaymentsFor only migrates, for `agri-cloud migrate`.

import { ledgerKind, redactUrl, type LedgerKind } from "../ledger/store/open-ledger.js";
import { openDurableDatabase } from "../sqlite.js";
import { migratePayments, openPaymentsStore, PAYMENTS_SQLITE_SCHEMA_VERSION, type PaymentsStore } from "./orders-store.js";
import { migratePostgresPayments, type PaymentsMigrateResult } from "./postgres-payments-migrations.js";
import { openPostgresPaymentsStore } from "./postgres-payments-store.js";

export interface OpenPaymentsStoreForOptions {
  /** A postgres:// or postgresql:// URL selects PostgreSQL; anything else (or nothing) keeps the SQLite file. */
  readonly databaseUrl?: string | undefined;
  /** cloud.db. */
  readonly sqlitePath: string;
  readonly now?: () => number;
  /** PostgreSQL only: connections in the pool. */
  readonly poolSize?: number;
}

export interface PaymentsMigration extends PaymentsMigrateResult {
  readonly kind: LedgerKind;
  /** Where: the SQLite path, or the PostgreSQL URL without its password. */
  readonly target: string;
}

export async function openPaymentsStoreFor(options: OpenPaymentsStoreForOptions): Promise<PaymentsStore> {
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    return openPostgresPaymentsStore({
      connectionString: options.databaseUrl,
      ...(options.now ? { now: options.now } : {}),
      ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
    });
  }
  return openPaymentsStore({ path: options.sqlitePath, ...(options.now ? { now: options.now } : {}) });
}

/** Migrates the selected engine's payments tables to this code's latest schema, leaving nothing open. */
export async function migratePaymentsFor(options: Pick<OpenPaymentsStoreForOptions, "databaseUrl" | "sqlitePath" | "now">): Promise<PaymentsMigration> {
  const nowMs = (options.now ?? Date.now)();
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    const result = await migratePostgresPayments(options.databaseUrl, nowMs);
    return { kind: "postgres", target: redactUrl(options.databaseUrl), ...result };
  }
  let result: PaymentsMigrateResult = { fromVersion: PAYMENTS_SQLITE_SCHEMA_VERSION, toVersion: PAYMENTS_SQLITE_SCHEMA_VERSION };
  const db = openDurableDatabase(options.sqlitePath, 10_000, (d) => {
    result = migratePayments(d, nowMs);
  });
  db.close();
  return { kind: "sqlite", target: options.sqlitePath, ...result };
}
