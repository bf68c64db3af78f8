// Choosing the engine of users, sessions, API tokens and the audit log from configuration, as openLedger does for
// the ledger (ARCHITECTURE.md §3): cloud.db by default, PostgreSQL when the database URL is postgres:// or
// postgresql://. The audit log comes from the auth store, on the same SQLite handle or the same pg pool, so a user
// change and its entry share a transaction; closing the auth store closes both. migrateAuthAndAuditFor only
// migrates, for `agri-cloud migrate`.

import type { AuditLog } from "../audit/audit-log.js";
import { migratePostgresAudit } from "../audit/postgres-audit-log.js";
import { migrateAudit } from "../audit/migrations.js";
import { ledgerKind, redactUrl, type LedgerKind } from "../ledger/store/open-ledger.js";
import { openDurableDatabase } from "../sqlite.js";
import type { AuthStore, AuthStoreCommonOptions } from "./auth-store.js";
import { migrateAuth } from "./migrations.js";
import { migratePostgresAuth, openPostgresAuthStore } from "./postgres-auth-store.js";
import { openSqliteAuthStore } from "./sqlite-auth-store.js";

export interface OpenAuthOptions extends AuthStoreCommonOptions {
  /** A postgres:// or postgresql:// URL selects PostgreSQL; anything else (or nothing) keeps the SQLite file. */
  readonly databaseUrl?: string | undefined;
  /** cloud.db: where users and the audit log live when the URL does not select PostgreSQL. */
  readonly sqlitePath: string;
  /** PostgreSQL only: connections in the pool the auth store and the audit log share. */
  readonly poolSize?: number;
}

export interface OpenedAuth {
  readonly auth: AuthStore;
  /** auth.audit: close the auth store, not this, when done. */
  readonly audit: AuditLog;
  readonly kind: LedgerKind;
}

export async function openAuthAndAuditFor(options: OpenAuthOptions): Promise<OpenedAuth> {
  const common: AuthStoreCommonOptions = {
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.sessions === undefined ? {} : { sessions: options.sessions }),
    ...(options.villageOfHousehold === undefined ? {} : { villageOfHousehold: options.villageOfHousehold }),
  };
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    const auth = await openPostgresAuthStore({ connectionString: options.databaseUrl, ...common, ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize }) });
    return { auth, audit: auth.audit, kind: "postgres" };
  }
  const auth = openSqliteAuthStore({ path: options.sqlitePath, ...common });
  return { auth, audit: auth.audit, kind: "sqlite" };
}

export interface AuthMigration {
  readonly kind: LedgerKind;
  /** Where: the SQLite path, or the PostgreSQL URL without its password. */
  readonly target: string;
  readonly auth: { readonly fromVersion: number; readonly toVersion: number };
  readonly audit: { readonly fromVersion: number; readonly toVersion: number };
}

/** Migrates the selected engine's auth and audit schemas to this code's versions. */
export async function migrateAuthAndAuditFor(options: Pick<OpenAuthOptions, "databaseUrl" | "sqlitePath" | "now">): Promise<AuthMigration> {
  const nowMs = (options.now ?? Date.now)();
  if (ledgerKind(options.databaseUrl) === "postgres" && options.databaseUrl !== undefined) {
    const audit = await migratePostgresAudit(options.databaseUrl, nowMs);
    const auth = await migratePostgresAuth(options.databaseUrl, nowMs);
    return { kind: "postgres", target: redactUrl(options.databaseUrl), auth, audit };
  }
  let result: Omit<AuthMigration, "kind" | "target"> | undefined;
  const db = openDurableDatabase(options.sqlitePath, 10_000, (d) => {
    result = { audit: migrateAudit(d, nowMs), auth: migrateAuth(d, nowMs) };
  });
  db.close();
  if (result === undefined) throw new Error(`migrating ${options.sqlitePath} reported nothing`);
  return { kind: "sqlite", target: options.sqlitePath, ...result };
}
