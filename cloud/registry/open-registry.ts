// Choosing the registry's engine from configuration, exactly as the ledger chooses its own (open-ledger.ts's
// ledgerKind): the SQLite file by default, PostgreSQL when a postgres:// or postgresql:// database URL is given — so
// one DATABASE_URL puts the ledger and the registry in the same database. openRegistryFor opens (and migrates) it;
// migrateRegistryFor only migrates, for `agri-cloud migrate`, and reports the versions it moved between.

import { openDurableDatabase } from "../sqlite.js";
import { ledgerKind, redactUrl, type LedgerKind } from "../ledger/store/open-ledger.js";
import { migrateRegistry, REGISTRY_SCHEMA_VERSION } from "./migrations.js";
import { migratePostgresRegistry, type RegistryMigrateResult } from "./postgres-registry-migrations.js";
import { openPostgresRegistry } from "./postgres-registry.js";
import { openRegistry, type Registry } from "./registry.js";

export interface OpenRegistryForOptions {
  /** A postgres:// or postgresql:// URL selects PostgreSQL; anything else (or nothing) keeps the SQLite file. */
  readonly databaseUrl?: string | undefined;
  readonly sqlitePath: string;
  readonly now?: () => number;
  /** PostgreSQL only: connections in the pool. */
  readonly poolSize?: number;
}

export interface RegistryMigration extends RegistryMigrateResult {
  readonly kind: LedgerKind;
  /** Where: the SQLite path, or the PostgreSQL URL without its password. */
  readonly target: string;
}

export async function openRegistryFor(options: OpenRegistryForOptions): Promise<Registry> {
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    return openPostgresRegistry({
      connectionString: options.databaseUrl,
      ...(options.now ? { now: options.now } : {}),
      ...(options.poolSize !== undefined ? { poolSize: options.poolSize } : {}),
    });
  }
  return openRegistry({ path: options.sqlitePath, ...(options.now ? { now: options.now } : {}) });
}

/** Migrates the selected registry to this code's latest schema, leaving nothing open. */
export async function migrateRegistryFor(options: OpenRegistryForOptions): Promise<RegistryMigration> {
  const now = options.now ?? Date.now;
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    const result = await migratePostgresRegistry(options.databaseUrl, now());
    return { kind: "postgres", target: redactUrl(options.databaseUrl), ...result };
  }
  let result: RegistryMigrateResult = { fromVersion: REGISTRY_SCHEMA_VERSION, toVersion: REGISTRY_SCHEMA_VERSION };
  const db = openDurableDatabase(options.sqlitePath, 10_000, (d) => {
    result = migrateRegistry(d, now());
  });
  db.close();
  return { kind: "sqlite", target: options.sqlitePath, ...result };
}
