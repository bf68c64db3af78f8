// The PostgreSQL payments schema as versioned migrations in its own table, payments_schema_migrations, so it shares one
// database with the ledger, the registry, users and the audit log without touching their tables. Same rules as every
// store (schema-migrations.ts): all pending versions in ONE transaction under a transaction-scoped advisory lock of
// its own (two workers starting at once: the second waits, then has nothing to do), refusing a database migrated by
// newer code (PAYMENT_STORE_SCHEMA_TOO_NEW) or by other code (PAYMENT_STORE_SCHEMA_MISMATCH) before touching it.
// Never edit a released migration: add the next one.
//
// Version 1 is the SQLite engine's two migrations (orders-store.ts) in their final shape. BIGINT for every ms, fen
// and posting id (read back only as safe integers, postgres-payments-store.ts); callback ids an identity.

import type pg from "pg";
import { applyPostgresMigrations, migrateOnConnection } from "../postgres.js";
import type { VersionedMigration } from "../schema-migrations.js";
import { PaymentError, PAYMENT_ERROR_CODES as C } from "./errors.js";

/** "agri" "paym" in ASCII, recognisable in pg_locks, distinct from the ledger's and the registry's keys. */
export const PAYMENTS_MIGRATION_LOCK_KEY = 0x61677269_7061796dn;

export const POSTGRES_PAYMENTS_MIGRATIONS: readonly VersionedMigration[] = [
  {
    version: 1,
    name: "payments-initial",
    sql: `
CREATE TABLE payment_orders (
  order_id        TEXT   PRIMARY KEY,
  provider        TEXT   NOT NULL,
  household_id    TEXT   NOT NULL,
  village_id      TEXT   NOT NULL,
  amount_fen      BIGINT NOT NULL CHECK (amount_fen > 0),
  state           TEXT   NOT NULL CHECK (state IN ('created', 'paid', 'expired', 'failed')),
  created_by      TEXT   NOT NULL,
  created_at_ms   BIGINT NOT NULL,
  expires_at_ms   BIGINT NOT NULL,
  pay_url         TEXT   NOT NULL,
  qr_payload      TEXT   NOT NULL,
  provider_txn_id TEXT,
  posting_id      BIGINT,
  paid_at_ms      BIGINT,
  closed_at_ms    BIGINT,
  UNIQUE (provider, provider_txn_id)
);
CREATE INDEX payment_orders_by_household ON payment_orders (household_id, created_at_ms);

CREATE TABLE payment_callbacks (
  callback_id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  provider        TEXT   NOT NULL,
  provider_txn_id TEXT   NOT NULL,
  order_id        TEXT   NOT NULL,
  amount_fen      BIGINT NOT NULL,
  outcome         TEXT   NOT NULL CHECK (outcome IN ('posted', 'duplicate', 'failed', 'unknown-order', 'amount-mismatch', 'already-paid')),
  detail          TEXT   NOT NULL,
  received_at_ms  BIGINT NOT NULL
);
CREATE INDEX payment_callbacks_by_order ON payment_callbacks (order_id);
CREATE INDEX payment_callbacks_by_txn ON payment_callbacks (provider, provider_txn_id);

-- An officer's (or the CLI's) request that moves a household's money: cash top-up, refund, correction. claim_token
-- and claimed_until_ms: which attempt works on an unfinished request, and until when no other may take it over.
CREATE TABLE household_money_requests (
  household_id     TEXT   NOT NULL,
  idempotency_key  TEXT   NOT NULL,
  request_json     TEXT   NOT NULL,
  at_ms            BIGINT NOT NULL,
  posting_id       BIGINT,
  balance_fen      BIGINT,
  claim_token      TEXT,
  claimed_until_ms BIGINT,
  PRIMARY KEY (household_id, idempotency_key)
);
`,
  },
];

export const POSTGRES_PAYMENTS_SCHEMA_VERSION = POSTGRES_PAYMENTS_MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

export interface PaymentsMigrateResult {
  readonly fromVersion: number;
  readonly toVersion: number;
}

/** Brings the payments tables to the latest version on `client` (a dedicated connection, not in a transaction). */
export function migratePostgresPaymentsOn(
  client: pg.ClientBase,
  nowMs: number,
  migrations: readonly VersionedMigration[] = POSTGRES_PAYMENTS_MIGRATIONS,
): Promise<PaymentsMigrateResult> {
  return applyPostgresMigrations(client, {
    table: "payments_schema_migrations",
    lockKey: PAYMENTS_MIGRATION_LOCK_KEY,
    migrations,
    nowMs,
    refuse: (p) =>
      p.kind === "too-new"
        ? new PaymentError(C.STORE_SCHEMA_TOO_NEW, `payments schema is at version ${p.fromVersion}; this code knows up to ${p.knownVersion}`)
        : new PaymentError(C.STORE_SCHEMA_MISMATCH, `payments schema version ${p.version} was applied as "${p.appliedName}"`),
  });
}

/** `agri-cloud migrate` on PostgreSQL: one connection, the payments migrations, closed again. */
export function migratePostgresPayments(connectionString: string, nowMs: number): Promise<PaymentsMigrateResult> {
  return migrateOnConnection(connectionString, "agri-payments-migrate", (client) => migratePostgresPaymentsOn(client, nowMs));
}
