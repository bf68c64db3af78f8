// The payments store: online payment orders with their states (created → paid | expired | failed), every authentic
// callback with what became of it (posted, duplicate, refused and why), and the officers' money requests (cash
// top-ups, refunds, corrections) by their client-supplied idempotency key. Money itself lives only in the ledger;
// these rows say which request a posting answered, so a retried request finds its answer instead of posting again.
//
// This file is the port (PaymentsStore, async so that a PostgreSQL engine can serve several `agri-cloud serve`
// workers: postgres-payments-store.ts), the row mappers and claim rules both engines share, and the SQLite engine
// (cloud.db, its own migrations table payments_schema_migrations, so it shares the file with the registry and the
// ledger without touching their schemas). The SQLite engine finishes each call's work before it returns its promise.
//
// The rules that make several workers safe, held by payments-store.contract.ts on both engines:
// - reservePayment ties an order to ONE provider transaction before any money is posted (first one wins), so two
//   different transactions for one order, settled on two workers at once, cannot both become top-ups;
// - markPaid moves an order to paid once: of two concurrent calls one is `marked`, the other sees it paid;
// - a provider transaction id is recorded on at most one order (UNIQUE (provider, provider_txn_id));
// - claimMoneyRequest gives a money request to exactly one attempt at a time: a new key, or an unfinished one whose
//   claim lease has run out (its holder crashed or gave up) is `claimed`; a live claim of another attempt is
//   `in-progress`; a finished one is `finished` with its answer; another request under the same key is
//   `different-request`.

import type Database from "better-sqlite3";
import type { LedgerKind } from "../ledger/store/open-ledger.js";
import { applyMigrations, isUniqueViolation, openDurableDatabase } from "../sqlite.js";
import { PaymentError, PAYMENT_ERROR_CODES as C } from "./errors.js";
import { CALLBACK_OUTCOMES, finishMoneyRequestSchema, markPaidSchema, newCallbackSchema, newMoneyRequestSchema, newOrderSchema, listLimitSchema, parsePaymentsInput as parse, reservationSchema } from "./payments-input.js";

export { CALLBACK_OUTCOMES };
export const ORDER_STATES = ["created", "paid", "expired", "failed"] as const;
export type OrderState = (typeof ORDER_STATES)[number];
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
  /** Set by reservePayment (before the posting) and kept by markPaid. */
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

export interface NewMoneyRequest {
  readonly householdId: string;
  readonly idempotencyKey: string;
  readonly requestJson: string;
  readonly atMs: number;
  /** Who holds the claim: only this token can release it. */
  readonly claimToken?: string;
  /** How long the claim shuts out other attempts; 0 (default): the next attempt may take it over at once. */
  readonly leaseMs?: number;
}

export const MONEY_CLAIM_OUTCOMES = ["claimed", "in-progress", "finished", "different-request"] as const;
export type MoneyClaimOutcome = (typeof MONEY_CLAIM_OUTCOMES)[number];

export interface MoneyRequestClaim extends MoneyRequestRow {
  readonly outcome: MoneyClaimOutcome;
  /** in-progress: until when the other attempt's claim holds. */
  readonly claimedUntilMs?: number;
}

export type PaymentReservation =
  | { readonly outcome: "reserved"; readonly order: PaymentOrder }
  /** The order is already tied to another transaction (paid by it, or being settled with it). */
  | { readonly outcome: "other-txn"; readonly order: PaymentOrder }
  /** This transaction id is already recorded on another order of the same provider. */
  | { readonly outcome: "txn-taken"; readonly otherOrderId: string }
  | { readonly outcome: "unknown-order" };

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
  readonly kind: LedgerKind;
  /** The SQLite path, or the PostgreSQL URL without its password. */
  readonly target: string;
  insertOrder(order: NewOrder): Promise<PaymentOrder>;
  /** The order, with `created` read as `expired` once nowMs has passed its expiry (and stored so). */
  getOrder(orderId: string, nowMs: number): Promise<PaymentOrder | undefined>;
  ordersOfHousehold(householdId: string, limit: number): Promise<PaymentOrder[]>;
  /** Ties the order to this transaction unless another one holds it already; nothing is paid yet. */
  reservePayment(orderId: string, providerTxnId: string): Promise<PaymentReservation>;
  /**
   * → paid with this transaction and posting, unless already paid (or reserved by another transaction): `marked`
   * says whether this call moved it. Returns the order as stored afterwards.
   */
  markPaid(orderId: string, providerTxnId: string, postingId: number, paidAtMs: number, nowMs: number): Promise<{ order: PaymentOrder; marked: boolean }>;
  /** created/expired → failed; an order already paid, or tied to a paying transaction, keeps its state. */
  markFailed(orderId: string, nowMs: number): Promise<PaymentOrder | undefined>;
  recordCallback(record: Omit<CallbackRecord, "callbackId">): Promise<CallbackRecord>;
  callbacksOf(orderId: string): Promise<CallbackRecord[]>;
  callbacksByTxn(provider: string, providerTxnId: string): Promise<CallbackRecord[]>;
  /** Claims the request for this attempt (see the header); the row returned is the first attempt's. */
  claimMoneyRequest(row: NewMoneyRequest): Promise<MoneyRequestClaim>;
  /** Stores the answer; the first answer stays (a second call for a finished request changes nothing). */
  finishMoneyRequest(householdId: string, idempotencyKey: string, postingId: number, balanceFen: number): Promise<void>;
  /**
   * Forget a request that was refused before anything was posted, so the key can carry a corrected request. Only
   * the claim made with `claimToken` (none: a claim made without one) is released; a finished one never is.
   */
  releaseMoneyRequest(householdId: string, idempotencyKey: string, claimToken?: string): Promise<void>;
  close(): Promise<void>;
}

// ─── rows and the rules both engines share ────────────────────────────────────────────────────────────────────────

export interface OrderRow {
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

export const ORDER_COLUMNS = "order_id, provider, household_id, village_id, amount_fen, state, created_by, created_at_ms, expires_at_ms, pay_url, qr_payload, provider_txn_id, posting_id, paid_at_ms";

export function toOrder(r: OrderRow): PaymentOrder {
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

export interface CallbackRowDb {
  callback_id: number;
  provider: string;
  provider_txn_id: string;
  order_id: string;
  amount_fen: number;
  outcome: CallbackOutcome;
  detail: string;
  received_at_ms: number;
}

export const CALLBACK_COLUMNS = "callback_id, provider, provider_txn_id, order_id, amount_fen, outcome, detail, received_at_ms";

export function toCallback(r: CallbackRowDb): CallbackRecord {
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

export interface MoneyRowDb {
  household_id: string;
  idempotency_key: string;
  request_json: string;
  at_ms: number;
  posting_id: number | null;
  balance_fen: number | null;
  claimed_until_ms: number | null;
}

export const MONEY_COLUMNS = "household_id, idempotency_key, request_json, at_ms, posting_id, balance_fen, claimed_until_ms";

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

/** This attempt holds the row (it inserted it, or took over an expired claim). */
export const claimedBy = (r: MoneyRowDb): MoneyRequestClaim => ({ ...toMoneyRequest(r), outcome: "claimed" });

/** What a stored row this attempt could NOT claim means for it. */
export function unclaimable(r: MoneyRowDb, requestJson: string): MoneyRequestClaim {
  const row = toMoneyRequest(r);
  if (r.request_json !== requestJson) return { ...row, outcome: "different-request" };
  if (r.posting_id !== null && r.balance_fen !== null) return { ...row, outcome: "finished" };
  return { ...row, outcome: "in-progress", ...(r.claimed_until_ms === null ? {} : { claimedUntilMs: r.claimed_until_ms }) };
}

/** The checked arguments of a claim, and when its lease ends. */
export function checkedClaim(row: NewMoneyRequest, nowMs: number): { row: Omit<NewMoneyRequest, "claimToken" | "leaseMs">; claimToken: string | null; claimedUntilMs: number } {
  const { claimToken, leaseMs, ...checked } = parse(newMoneyRequestSchema, row, "money request");
  return { row: checked, claimToken: claimToken ?? null, claimedUntilMs: nowMs + (leaseMs ?? 0) };
}

export const checkedLimit = (limit: number): number => parse(listLimitSchema, limit, "order list limit");
export const checkedOrder = (order: NewOrder): NewOrder => parse(newOrderSchema, order, "payment order");
export const checkedReservation = (orderId: string, providerTxnId: string): { orderId: string; providerTxnId: string } =>
  parse(reservationSchema, { orderId, providerTxnId }, "payment reservation");
export const checkedCallback = (record: Omit<CallbackRecord, "callbackId">): Omit<CallbackRecord, "callbackId"> => parse(newCallbackSchema, record, "payment callback");
export const checkedPaid = (orderId: string, providerTxnId: string, postingId: number, paidAtMs: number, nowMs: number) =>
  parse(markPaidSchema, { orderId, providerTxnId, postingId, paidAtMs, nowMs }, "paid order");
export const checkedFinish = (householdId: string, idempotencyKey: string, postingId: number, balanceFen: number) =>
  parse(finishMoneyRequestSchema, { householdId, idempotencyKey, postingId, balanceFen }, "money request answer");

export const unknownOrder = (orderId: string): PaymentError => new PaymentError(C.UNKNOWN_ORDER, `no payment order ${orderId}`);
export const txnOnOtherOrder = (txn: string): PaymentError => new PaymentError(C.ORDER_ALREADY_PAID, `transaction ${txn} is already recorded on another order`);

/** How often a claim retries when the row it saw vanished before it could read it (released meanwhile). */
export const CLAIM_ROUNDS = 3;

// ─── the SQLite engine ────────────────────────────────────────────────────────────────────────────────────────────

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
  {
    version: 2,
    name: "household-money-request-claims",
    // Who is working on an unfinished request, and until when no other attempt may take it over. Rows of version 1
    // have neither: any attempt may take them over, as version 1 did.
    sql: `
ALTER TABLE household_money_requests ADD COLUMN claim_token TEXT;
ALTER TABLE household_money_requests ADD COLUMN claimed_until_ms INTEGER;
`,
  },
] as const;

export const PAYMENTS_SQLITE_SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the payments tables of `db` to this code's version; a file migrated by newer or other code is refused. */
export function migratePayments(db: Database.Database, nowMs: number): { fromVersion: number; toVersion: number } {
  return applyMigrations(db, {
    table: "payments_schema_migrations",
    migrations: MIGRATIONS,
    nowMs,
    refuse: (p) =>
      p.kind === "too-new"
        ? new PaymentError(C.STORE_SCHEMA_TOO_NEW, `payments schema is at version ${p.fromVersion}; this code knows up to ${p.knownVersion}`)
        : new PaymentError(C.STORE_SCHEMA_MISMATCH, `payments schema version ${p.version} was applied as "${p.appliedName}"; this code knows up to ${MIGRATIONS.length}`),
  });
}

export function openPaymentsStore(options: { path: string; now?: () => number; busyTimeoutMs?: number }): PaymentsStore {
  const now = options.now ?? Date.now;
  const db = openDurableDatabase(options.path, options.busyTimeoutMs ?? 10_000, (d) => void migratePayments(d, now()));
  const q = {
    order: db.prepare<[string], OrderRow>(`SELECT ${ORDER_COLUMNS} FROM payment_orders WHERE order_id = ?`),
    expire: db.prepare<[number, string, number]>("UPDATE payment_orders SET state = 'expired', closed_at_ms = ? WHERE order_id = ? AND state = 'created' AND expires_at_ms <= ?"),
    callbacksOf: db.prepare<[string], CallbackRowDb>(`SELECT ${CALLBACK_COLUMNS} FROM payment_callbacks WHERE order_id = ? ORDER BY callback_id`),
    callbacksByTxn: db.prepare<[string, string], CallbackRowDb>(`SELECT ${CALLBACK_COLUMNS} FROM payment_callbacks WHERE provider = ? AND provider_txn_id = ? ORDER BY callback_id`),
    money: db.prepare<[string, string], MoneyRowDb>(`SELECT ${MONEY_COLUMNS} FROM household_money_requests WHERE household_id = ? AND idempotency_key = ?`),
  };
  const readOrder = (orderId: string): PaymentOrder | undefined => {
    const row = q.order.get(orderId);
    return row === undefined ? undefined : toOrder(row);
  };
  const requireOrder = (orderId: string): PaymentOrder => {
    const order = readOrder(orderId);
    if (order === undefined) throw unknownOrder(orderId);
    return order;
  };
  const claimTx = db.transaction((input: NewMoneyRequest): MoneyRequestClaim => {
    const { row, claimToken, claimedUntilMs } = checkedClaim(input, now());
    const inserted = db
      .prepare("INSERT OR IGNORE INTO household_money_requests (household_id, idempotency_key, request_json, at_ms, claim_token, claimed_until_ms) VALUES (?, ?, ?, ?, ?, ?)")
      .run(row.householdId, row.idempotencyKey, row.requestJson, row.atMs, claimToken, claimedUntilMs);
    const takenOver =
      inserted.changes === 0 &&
      db
        .prepare(
          `UPDATE household_money_requests SET claim_token = ?, claimed_until_ms = ?
            WHERE household_id = ? AND idempotency_key = ? AND posting_id IS NULL AND request_json = ? AND (claimed_until_ms IS NULL OR claimed_until_ms <= ?)`,
        )
        .run(claimToken, claimedUntilMs, row.householdId, row.idempotencyKey, row.requestJson, now()).changes === 1;
    const stored = q.money.get(row.householdId, row.idempotencyKey);
    if (stored === undefined) throw new PaymentError(C.STORE_CONTENDED, "the money request row vanished inside its own transaction");
    return inserted.changes === 1 || takenOver ? claimedBy(stored) : unclaimable(stored, row.requestJson);
  });
  const markPaidTx = db.transaction((orderId: string, txn: string, postingId: number, paidAtMs: number, nowMs: number): { order: PaymentOrder; marked: boolean } => {
    const p = checkedPaid(orderId, txn, postingId, paidAtMs, nowMs);
    requireOrder(p.orderId);
    let marked: boolean;
    try {
      marked =
        db
          .prepare("UPDATE payment_orders SET state = 'paid', provider_txn_id = ?, posting_id = ?, paid_at_ms = ?, closed_at_ms = ? WHERE order_id = ? AND state <> 'paid' AND (provider_txn_id IS NULL OR provider_txn_id = ?)")
          .run(p.providerTxnId, p.postingId, p.paidAtMs, p.nowMs, p.orderId, p.providerTxnId).changes === 1;
    } catch (error) {
      throw isUniqueViolation(error) ? txnOnOtherOrder(p.providerTxnId) : error;
    }
    return { order: requireOrder(p.orderId), marked };
  });
  const reserveTx = db.transaction((unchecked: string, uncheckedTxn: string): PaymentReservation => {
    const { orderId, providerTxnId: txn } = checkedReservation(unchecked, uncheckedTxn);
    const order = readOrder(orderId);
    if (order === undefined) return { outcome: "unknown-order" };
    const other = db.prepare<[string, string, string], { order_id: string }>("SELECT order_id FROM payment_orders WHERE provider = ? AND provider_txn_id = ? AND order_id <> ?").get(order.provider, txn, orderId);
    if (other !== undefined) return { outcome: "txn-taken", otherOrderId: other.order_id };
    db.prepare("UPDATE payment_orders SET provider_txn_id = ? WHERE order_id = ? AND provider_txn_id IS NULL").run(txn, orderId);
    const after = requireOrder(orderId);
    return after.providerTxnId === txn ? { outcome: "reserved", order: after } : { outcome: "other-txn", order: after };
  });
  // better-sqlite3 is synchronous: each method does its work before it returns, and a refusal is a rejected promise.
  const run = <T>(work: () => T): Promise<T> => {
    try {
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  };
  return {
    kind: "sqlite",
    target: options.path,
    insertOrder: (order) =>
      run(() => {
        const o = checkedOrder(order);
        db.prepare(
          `INSERT INTO payment_orders (order_id, provider, household_id, village_id, amount_fen, state, created_by, created_at_ms, expires_at_ms, pay_url, qr_payload)
           VALUES (?, ?, ?, ?, ?, 'created', ?, ?, ?, ?, ?)`,
        ).run(o.orderId, o.provider, o.householdId, o.villageId, o.amountFen, o.createdBy, o.createdAtMs, o.expiresAtMs, o.payUrl, o.qrPayload);
        return requireOrder(o.orderId);
      }),
    getOrder: (orderId, nowMs) =>
      run(() => {
        q.expire.run(nowMs, orderId, nowMs);
        return readOrder(orderId);
      }),
    ordersOfHousehold: (householdId, limit) =>
      run(() =>
        db
          .prepare<[string, number], OrderRow>(`SELECT ${ORDER_COLUMNS} FROM payment_orders WHERE household_id = ? ORDER BY created_at_ms DESC, order_id LIMIT ?`)
          .all(householdId, checkedLimit(limit))
          .map(toOrder),
      ),
    reservePayment: (orderId, txn) => run(() => reserveTx.immediate(orderId, txn)),
    markPaid: (orderId, txn, postingId, paidAtMs, nowMs) => run(() => markPaidTx.immediate(orderId, txn, postingId, paidAtMs, nowMs)),
    markFailed: (orderId, nowMs) =>
      run(() => {
        db.prepare("UPDATE payment_orders SET state = 'failed', closed_at_ms = ? WHERE order_id = ? AND state IN ('created', 'expired') AND provider_txn_id IS NULL").run(nowMs, orderId);
        return readOrder(orderId);
      }),
    recordCallback: (record) =>
      run(() => {
        const r = checkedCallback(record);
        const info = db
          .prepare("INSERT INTO payment_callbacks (provider, provider_txn_id, order_id, amount_fen, outcome, detail, received_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)")
          .run(r.provider, r.providerTxnId, r.orderId, r.amountFen, r.outcome, r.detail, r.receivedAtMs);
        return { ...r, callbackId: Number(info.lastInsertRowid) };
      }),
    callbacksOf: (orderId) => run(() => q.callbacksOf.all(orderId).map(toCallback)),
    callbacksByTxn: (provider, txn) => run(() => q.callbacksByTxn.all(provider, txn).map(toCallback)),
    claimMoneyRequest: (row) => run(() => claimTx.immediate(row)),
    finishMoneyRequest: (householdId, key, postingId, balanceFen) =>
      run(() => {
        const f = checkedFinish(householdId, key, postingId, balanceFen);
        db.prepare("UPDATE household_money_requests SET posting_id = ?, balance_fen = ?, claimed_until_ms = NULL WHERE household_id = ? AND idempotency_key = ? AND posting_id IS NULL").run(
          f.postingId,
          f.balanceFen,
          f.householdId,
          f.idempotencyKey,
        );
      }),
    releaseMoneyRequest: (householdId, key, claimToken) =>
      run(() => {
        db.prepare("DELETE FROM household_money_requests WHERE household_id = ? AND idempotency_key = ? AND posting_id IS NULL AND claim_token IS ?").run(householdId, key, claimToken ?? null);
      }),
    close: () =>
      run(() => {
        if (db.open) db.close();
      }),
  };
}
