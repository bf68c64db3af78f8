// The payments store on SQLite (cloud.db, its own migrations table payments_schema_migrations, so it shares the file
// with the registry and the ledger without touching their schemas): online payment orders with their states
// (created → paid | expired | failed), every authentic callback with what became of it (posted, duplicate, refused
// and why), and the officers' money requests (cash top-ups, refunds, corrections) by their client-supplied
// idempotency key. Money itself lives only in the ledger; these rows say which request a posting answered, so a
// retried request finds its answer instead of posting again.

import type Database from "better-sqlite3";
import { applyMigrations, openDurableDatabase } from "../sqlite.js";
import { PaymentError, PAYMENT_ERROR_CODES as C } from "./errors.js";

export const ORDER_STATES = ["created", "paid", "expired", "failed"] as const;
export type OrderState = (typeof ORDER_STATES)[number];

export const CALLBACK_OUTCOMES = ["posted", "duplicate", "failed", "unknown-order", "amount-mismatch", "already-paid"] as const;
export type CallbackOutcome = (typeof CALLBACK_OUTCOMES)[number];

export interface PaymentOrder {
  readonly orderId: string;
  readonly provider: string;
  readonly householdId: string;
  readonly villageId: string;
  readonly amountFen: number;
  readonly state: OrderState;
  readonly createdBy: string;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly payUrl: string;
  readonly qrPayload: string;
  readonly providerTxnId?: string;
  readonly postingId?: number;
  readonly paidAtMs?: number;
}

export interface CallbackRecord {
  readonly callbackId: number;
  readonly provider: string;
  readonly providerTxnId: string;
  readonly orderId: string;
  readonly amountFen: number;
  readonly outcome: CallbackOutcome;
  readonly detail: string;
  readonly receivedAtMs: number;
}

export interface MoneyRequestRow {
  readonly householdId: string;
  readonly idempotencyKey: string;
  /** The request as first made (canonical JSON): a retry must repeat it exactly. */
  readonly requestJson: string;
  /** The atMs the first attempt posted with, reused by every retry so the ledger sees identical content. */
  readonly atMs: number;
  readonly postingId?: number;
  readonly balanceFen?: number;
}

const MIGRATIONS = [
  {
    version: 1,
    name: "payment-orders-callbacks-household-money-requests",
    sql: `
CREATE TABLE payment_orders (
  order_id        TEXT    PRIMARY KEY,
  provider        TEXT    NOT NULL,
  household_id    TEXT    NOT NULL,
  village_id      TEXT    NOT NULL,
  amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
  state           TEXT    NOT NULL CHECK (state IN ('created', 'paid', 'expired', 'failed')),
  created_by      TEXT    NOT NULL,
  created_at_ms   INTEGER NOT NULL,
  expires_at_ms   INTEGER NOT NULL,
  pay_url         TEXT    NOT NULL,
  qr_payload      TEXT    NOT NULL,
  provider_txn_id TEXT,
  posting_id      INTEGER,
  paid_at_ms      INTEGER,
  closed_at_ms    INTEGER,
  UNIQUE (provider, provider_txn_id)
) STRICT;
CREATE INDEX payment_orders_by_household ON payment_orders (household_id, created_at_ms);

CREATE TABLE payment_callbacks (
  callback_id     INTEGER PRIMARY KEY AUTOINCREMENT,
  provider        TEXT    NOT NULL,
  provider_txn_id TEXT    NOT NULL,
  order_id        TEXT    NOT NULL,
  amount_fen      INTEGER NOT NULL,
  outcome         TEXT    NOT NULL CHECK (outcome IN ('posted', 'duplicate', 'failed', 'unknown-order', 'amount-mismatch', 'already-paid')),
  detail          TEXT    NOT NULL,
  received_at_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX payment_callbacks_by_order ON payment_callbacks (order_id);

-- An officer's (or the CLI's) request that moves a household's money: cash top-up, refund, correction.
CREATE TABLE household_money_requests (
  household_id    TEXT    NOT NULL,
  idempotency_key TEXT    NOT NULL,
  request_json    TEXT    NOT NULL,
  at_ms           INTEGER NOT NULL,
  posting_id      INTEGER,
  balance_fen     INTEGER,
  PRIMARY KEY (household_id, idempotency_key)
) STRICT;
`,
  },
] as const;

function migratePayments(db: Database.Database, nowMs: number): void {
  // A file migrated by newer or other code is refused, never half-understood (same rule as the ledger's migrations).
  applyMigrations(db, {
    table: "payments_schema_migrations",
    migrations: MIGRATIONS,
    nowMs,
    refuse: (p) =>
      new PaymentError(
        C.STORE_SCHEMA_MISMATCH,
        p.kind === "too-new"
          ? `payments schema is at version ${p.fromVersion}; this code knows up to ${p.knownVersion}`
          : `payments schema version ${p.version} was applied as "${p.appliedName}"; this code knows up to ${MIGRATIONS.length}`,
      ),
  });
}

interface OrderRow {
  order_id: string;
  provider: string;
  household_id: string;
  village_id: string;
  amount_fen: number;
  state: OrderState;
  created_by: string;
  created_at_ms: number;
  expires_at_ms: number;
  pay_url: string;
  qr_payload: string;
  provider_txn_id: string | null;
  posting_id: number | null;
  paid_at_ms: number | null;
}

function toOrder(r: OrderRow): PaymentOrder {
  return {
    orderId: r.order_id,
    provider: r.provider,
    householdId: r.household_id,
    villageId: r.village_id,
    amountFen: r.amount_fen,
    state: r.state,
    createdBy: r.created_by,
    createdAtMs: r.created_at_ms,
    expiresAtMs: r.expires_at_ms,
    payUrl: r.pay_url,
    qrPayload: r.qr_payload,
    ...(r.provider_txn_id === null ? {} : { providerTxnId: r.provider_txn_id }),
    ...(r.posting_id === null ? {} : { postingId: r.posting_id }),
    ...(r.paid_at_ms === null ? {} : { paidAtMs: r.paid_at_ms }),
  };
}

export interface NewOrder {
  readonly orderId: string;
  readonly provider: string;
  readonly householdId: string;
  readonly villageId: string;
  readonly amountFen: number;
  readonly createdBy: string;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly payUrl: string;
  readonly qrPayload: string;
}

export interface PaymentsStore {
  readonly path: string;
  insertOrder(order: NewOrder): PaymentOrder;
  /** The order, with `created` read as `expired` once nowMs has passed its expiry (and stored so). */
  getOrder(orderId: string, nowMs: number): PaymentOrder | undefined;
  ordersOfHousehold(householdId: string, limit: number): PaymentOrder[];
  /**
   * created/expired → paid with this transaction. Returns the order as stored afterwards; when it was already paid by
   * the same transaction this is a no-op (a replayed callback), by another one the caller sees its providerTxnId.
   */
  markPaid(orderId: string, providerTxnId: string, postingId: number, paidAtMs: number, nowMs: number): PaymentOrder;
  /** created → failed; an order already paid stays paid. */
  markFailed(orderId: string, nowMs: number): PaymentOrder | undefined;
  recordCallback(record: Omit<CallbackRecord, "callbackId">): CallbackRecord;
  callbacksOf(orderId: string): CallbackRecord[];
  callbacksByTxn(provider: string, providerTxnId: string): CallbackRecord[];
  /** Inserts the request row if the key is new; returns the row as stored (the first attempt's, on a retry). */
  claimMoneyRequest(row: Omit<MoneyRequestRow, "postingId" | "balanceFen">): MoneyRequestRow;
  finishMoneyRequest(householdId: string, idempotencyKey: string, postingId: number, balanceFen: number): void;
  /** Forget a request that was refused before anything was posted, so the key can carry a corrected request. */
  releaseMoneyRequest(householdId: string, idempotencyKey: string): void;
  close(): void;
}

export function openPaymentsStore(options: { path: string; now?: () => number; busyTimeoutMs?: number }): PaymentsStore {
  const now = options.now ?? Date.now;
  const db = openDurableDatabase(options.path, options.busyTimeoutMs ?? 10_000, (d) => migratePayments(d, now()));
  const q = {
    order: db.prepare<[string], OrderRow>("SELECT * FROM payment_orders WHERE order_id = ?"),
    expire: db.prepare<[number, string, number]>("UPDATE payment_orders SET state = 'expired', closed_at_ms = ? WHERE order_id = ? AND state = 'created' AND expires_at_ms <= ?"),
    callbacksOf: db.prepare<[string], CallbackRowDb>("SELECT * FROM payment_callbacks WHERE order_id = ? ORDER BY callback_id"),
    callbacksByTxn: db.prepare<[string, string], CallbackRowDb>("SELECT * FROM payment_callbacks WHERE provider = ? AND provider_txn_id = ? ORDER BY callback_id"),
    cash: db.prepare<[string, string], MoneyRowDb>("SELECT * FROM household_money_requests WHERE household_id = ? AND idempotency_key = ?"),
  };
  const requireOrder = (orderId: string): OrderRow => {
    const row = q.order.get(orderId);
    if (row === undefined) throw new PaymentError(C.UNKNOWN_ORDER, `no payment order ${orderId}`);
    return row;
  };
  const markPaidTx = db.transaction((orderId: string, txn: string, postingId: number, paidAtMs: number, nowMs: number): PaymentOrder => {
    const row = requireOrder(orderId);
    if (row.state !== "paid") {
      db.prepare("UPDATE payment_orders SET state = 'paid', provider_txn_id = ?, posting_id = ?, paid_at_ms = ?, closed_at_ms = ? WHERE order_id = ?").run(txn, postingId, paidAtMs, nowMs, orderId);
    }
    return toOrder(requireOrder(orderId));
  });
  return {
    path: options.path,
    insertOrder(order) {
      db.prepare(
        `INSERT INTO payment_orders (order_id, provider, household_id, village_id, amount_fen, state, created_by, created_at_ms, expires_at_ms, pay_url, qr_payload)
         VALUES (?, ?, ?, ?, ?, 'created', ?, ?, ?, ?, ?)`,
      ).run(order.orderId, order.provider, order.householdId, order.villageId, order.amountFen, order.createdBy, order.createdAtMs, order.expiresAtMs, order.payUrl, order.qrPayload);
      return toOrder(requireOrder(order.orderId));
    },
    getOrder(orderId, nowMs) {
      q.expire.run(nowMs, orderId, nowMs);
      const row = q.order.get(orderId);
      return row === undefined ? undefined : toOrder(row);
    },
    ordersOfHousehold(householdId, limit) {
      return db
        .prepare<[string, number], OrderRow>("SELECT * FROM payment_orders WHERE household_id = ? ORDER BY created_at_ms DESC, order_id LIMIT ?")
        .all(householdId, limit)
        .map(toOrder);
    },
    markPaid: (orderId, txn, postingId, paidAtMs, nowMs) => markPaidTx.immediate(orderId, txn, postingId, paidAtMs, nowMs),
    markFailed(orderId, nowMs) {
      db.prepare("UPDATE payment_orders SET state = 'failed', closed_at_ms = ? WHERE order_id = ? AND state IN ('created', 'expired')").run(nowMs, orderId);
      const row = q.order.get(orderId);
      return row === undefined ? undefined : toOrder(row);
    },
    recordCallback(record) {
      const info = db
        .prepare("INSERT INTO payment_callbacks (provider, provider_txn_id, order_id, amount_fen, outcome, detail, received_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .run(record.provider, record.providerTxnId, record.orderId, record.amountFen, record.outcome, record.detail, record.receivedAtMs);
      return { ...record, callbackId: Number(info.lastInsertRowid) };
    },
    callbacksOf: (orderId) => q.callbacksOf.all(orderId).map(toCallback),
    callbacksByTxn: (provider, txn) => q.callbacksByTxn.all(provider, txn).map(toCallback),
    claimMoneyRequest(row) {
      db.prepare("INSERT OR IGNORE INTO household_money_requests (household_id, idempotency_key, request_json, at_ms) VALUES (?, ?, ?, ?)").run(row.householdId, row.idempotencyKey, row.requestJson, row.atMs);
      const stored = q.cash.get(row.householdId, row.idempotencyKey);
      if (stored === undefined) throw new PaymentError(C.STORE_SCHEMA_MISMATCH, "the money request row vanished after its insert");
      return toMoneyRequest(stored);
    },
    finishMoneyRequest(householdId, key, postingId, balanceFen) {
      db.prepare("UPDATE household_money_requests SET posting_id = ?, balance_fen = ? WHERE household_id = ? AND idempotency_key = ? AND posting_id IS NULL").run(postingId, balanceFen, householdId, key);
    },
    releaseMoneyRequest(householdId, key) {
      db.prepare("DELETE FROM household_money_requests WHERE household_id = ? AND idempotency_key = ? AND posting_id IS NULL").run(householdId, key);
    },
    close() {
      if (db.open) db.close();
    },
  };
}

interface CallbackRowDb {
  callback_id: number;
  provider: string;
  provider_txn_id: string;
  order_id: string;
  amount_fen: number;
  outcome: CallbackOutcome;
  detail: string;
  received_at_ms: number;
}
interface MoneyRowDb {
  household_id: string;
  idempotency_key: string;
  request_json: string;
  at_ms: number;
  posting_id: number | null;
  balance_fen: number | null;
}

function toCallback(r: CallbackRowDb): CallbackRecord {
  return {
    callbackId: r.callback_id,
    provider: r.provider,
    providerTxnId: r.provider_txn_id,
    orderId: r.order_id,
    amountFen: r.amount_fen,
    outcome: r.outcome,
    detail: r.detail,
    receivedAtMs: r.received_at_ms,
  };
}

function toMoneyRequest(r: MoneyRowDb): MoneyRequestRow {
  return {
    householdId: r.household_id,
    idempotencyKey: r.idempotency_key,
    requestJson: r.request_json,
    atMs: r.at_ms,
    ...(r.posting_id === null ? {} : { postingId: r.posting_id }),
    ...(r.balance_fen === null ? {} : { balanceFen: r.balance_fen }),
  };
}
