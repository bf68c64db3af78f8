// The payments store (orders-store.ts's PaymentsStore) on PostgreSQL, so that several `agri-cloud serve` workers share
// payment orders, callbacks and money-request claims: a provider's callback may reach any worker, and an officer's
// retry on another worker is recognised as a retry. Same validation, row mappers, claim rules and error codes as the
// SQLite engine (imported from orders-store.ts, not copied), held to it by payments-store.contract.ts.
//
// Concurrency, READ COMMITTED, one statement per decision so that the row lock decides and nothing is read-then-
// written: an UPDATE … WHERE <condition> that waits for a concurrent writer's row lock re-checks its condition on
// the committed row, so of two workers at once exactly one reserves an order for its transaction, one marks it paid,
// one takes over an expired claim; INSERT … ON CONFLICT DO NOTHING lets exactly one worker create a claim; UNIQUE
// (provider, provider_txn_id) keeps a transaction on one order (SQLSTATE 23505 → PAYMENT_ORDER_ALREADY_PAID).
//
// Integers: BIGINT columns, read back as numbers only when safe integers, else PAYMENT_NON_INTEGER_VALUE.

import type pg from "pg";
import { redactUrl } from "../ledger/store/open-ledger.js";
import { isPgUniqueViolation, openMigratedPool } from "../postgres.js";
import { PaymentError, PAYMENT_ERROR_CODES as C } from "./errors.js";
import {
  CALLBACK_COLUMNS,
  checkedCallback,
  checkedClaim,
  checkedFinish,
  checkedLimit,
  checkedOrder,
  checkedReservation,
  checkedPaid,
  CLAIM_ROUNDS,
  claimedBy,
  MONEY_COLUMNS,
  ORDER_COLUMNS,
  toCallback,
  toOrder,
  txnOnOtherOrder,
  unclaimable,
  unknownOrder,
  type CallbackRowDb,
  type MoneyRowDb,
  type OrderRow,
  type PaymentOrder,
  type PaymentsStore,
} from "./orders-store.js";
import { safeIntegerText } from "./payments-input.js";
import { migratePostgresPaymentsOn, type PaymentsMigrateResult } from "./postgres-payments-migrations.js";

export interface PostgresPaymentsOptions {
  readonly connectionString: string;
  /** The store's clock, for claim leases. */
  readonly now?: () => number;
  /** Connections in the pool (default 4: payments are few next to billing). */
  readonly poolSize?: number;
  /** Shown in pg_stat_activity. */
  readonly applicationName?: string;
}

export type PostgresPaymentsStore = PaymentsStore & {
  readonly kind: "postgres";
  /** The migration this open performed (fromVersion = toVersion when there was nothing to do). */
  readonly migration: PaymentsMigrateResult;
};

export async function openPostgresPaymentsStore(options: PostgresPaymentsOptions): Promise<PostgresPaymentsStore> {
  const now = options.now ?? Date.now;
  const { pool, migration } = await openMigratedPool(
    { connectionString: options.connectionString, poolSize: options.poolSize ?? 4, applicationName: options.applicationName ?? "agri-payments", parseInteger: safeIntegerText },
    (client) => migratePostgresPaymentsOn(client, now()),
  );

  const first = async <R extends pg.QueryResultRow>(sql: string, params: readonly unknown[]): Promise<R | undefined> => (await pool.query<R>(sql, [...params])).rows[0];
  const readOrder = async (orderId: string): Promise<PaymentOrder | undefined> => {
    const row = await first<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM payment_orders WHERE order_id = $1`, [orderId]);
    return row === undefined ? undefined : toOrder(row);
  };
  const requireOrder = async (orderId: string): Promise<PaymentOrder> => {
    const order = await readOrder(orderId);
    if (order === undefined) throw unknownOrder(orderId);
    return order;
  };
  const moneyRow = (householdId: string, key: string) => first<MoneyRowDb>(`SELECT ${MONEY_COLUMNS} FROM household_money_requests WHERE household_id = $1 AND idempotency_key = $2`, [householdId, key]);

  let closing: Promise<void> | undefined;
  return {
    kind: "postgres",
    target: redactUrl(options.connectionString),
    migration,
    async insertOrder(order) {
      const o = checkedOrder(order);
      const row = await first<OrderRow>(
        `INSERT INTO payment_orders (order_id, provider, household_id, village_id, amount_fen, state, created_by, created_at_ms, expires_at_ms, pay_url, qr_payload)
         VALUES ($1, $2, $3, $4, $5, 'created', $6, $7, $8, $9, $10) RETURNING ${ORDER_COLUMNS}`,
        [o.orderId, o.provider, o.householdId, o.villageId, o.amountFen, o.createdBy, o.createdAtMs, o.expiresAtMs, o.payUrl, o.qrPayload],
      );
      if (row === undefined) throw unknownOrder(o.orderId);
      return toOrder(row);
    },
    async getOrder(orderId, nowMs) {
      await pool.query("UPDATE payment_orders SET state = 'expired', closed_at_ms = $1 WHERE order_id = $2 AND state = 'created' AND expires_at_ms <= $1", [nowMs, orderId]);
      return readOrder(orderId);
    },
    async ordersOfHousehold(householdId, limit) {
      const r = await pool.query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM payment_orders WHERE household_id = $1 ORDER BY created_at_ms DESC, order_id LIMIT $2`, [householdId, checkedLimit(limit)]);
      return r.rows.map(toOrder);
    },
    async reservePayment(uncheckedOrderId, uncheckedTxn) {
      const { orderId, providerTxnId: txn } = checkedReservation(uncheckedOrderId, uncheckedTxn);
      const order = await readOrder(orderId);
      if (order === undefined) return { outcome: "unknown-order" };
      try {
        await pool.query("UPDATE payment_orders SET provider_txn_id = $1 WHERE order_id = $2 AND provider_txn_id IS NULL", [txn, orderId]);
      } catch (error) {
        if (!isPgUniqueViolation(error)) throw error;
        const other = await first<{ order_id: string }>("SELECT order_id FROM payment_orders WHERE provider = $1 AND provider_txn_id = $2", [order.provider, txn]);
        return { outcome: "txn-taken", otherOrderId: other?.order_id ?? "?" };
      }
      const after = await requireOrder(orderId);
      return after.providerTxnId === txn ? { outcome: "reserved", order: after } : { outcome: "other-txn", order: after };
    },
    async markPaid(orderId, txn, postingId, paidAtMs, nowMs) {
      const p = checkedPaid(orderId, txn, postingId, paidAtMs, nowMs);
      let marked: OrderRow | undefined;
      try {
        marked = await first<OrderRow>(
          `UPDATE payment_orders SET state = 'paid', provider_txn_id = $1, posting_id = $2, paid_at_ms = $3, closed_at_ms = $4
            WHERE order_id = $5 AND state <> 'paid' AND (provider_txn_id IS NULL OR provider_txn_id = $1) RETURNING ${ORDER_COLUMNS}`,
          [p.providerTxnId, p.postingId, p.paidAtMs, p.nowMs, p.orderId],
        );
      } catch (error) {
        throw isPgUniqueViolation(error) ? txnOnOtherOrder(p.providerTxnId) : error;
      }
      return marked === undefined ? { order: await requireOrder(p.orderId), marked: false } : { order: toOrder(marked), marked: true };
    },
    async markFailed(orderId, nowMs) {
      await pool.query("UPDATE payment_orders SET state = 'failed', closed_at_ms = $1 WHERE order_id = $2 AND state IN ('created', 'expired') AND provider_txn_id IS NULL", [nowMs, orderId]);
      return readOrder(orderId);
    },
    async recordCallback(record) {
      const r = checkedCallback(record);
      const row = await first<{ callback_id: number }>(
        "INSERT INTO payment_callbacks (provider, provider_txn_id, order_id, amount_fen, outcome, detail, received_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING callback_id",
        [r.provider, r.providerTxnId, r.orderId, r.amountFen, r.outcome, r.detail, r.receivedAtMs],
      );
      if (row === undefined) throw new PaymentError(C.STORE_CONTENDED, "the callback insert returned no id");
      return { ...r, callbackId: row.callback_id };
    },
    async callbacksOf(orderId) {
      return (await pool.query<CallbackRowDb>(`SELECT ${CALLBACK_COLUMNS} FROM payment_callbacks WHERE order_id = $1 ORDER BY callback_id`, [orderId])).rows.map(toCallback);
    },
    async callbacksByTxn(provider, txn) {
      return (await pool.query<CallbackRowDb>(`SELECT ${CALLBACK_COLUMNS} FROM payment_callbacks WHERE provider = $1 AND provider_txn_id = $2 ORDER BY callback_id`, [provider, txn])).rows.map(toCallback);
    },
    async claimMoneyRequest(input) {
      const { row, claimToken, claimedUntilMs } = checkedClaim(input, now());
      // A row seen to exist may be released (deleted) before it is read: then try again from the insert.
      for (let round = 0; round < CLAIM_ROUNDS; round++) {
        const inserted = await first<MoneyRowDb>(
          `INSERT INTO household_money_requests (household_id, idempotency_key, request_json, at_ms, claim_token, claimed_until_ms) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT DO NOTHING RETURNING ${MONEY_COLUMNS}`,
          [row.householdId, row.idempotencyKey, row.requestJson, row.atMs, claimToken, claimedUntilMs],
        );
        if (inserted !== undefined) return claimedBy(inserted);
        const takenOver = await first<MoneyRowDb>(
          `UPDATE household_money_requests SET claim_token = $1, claimed_until_ms = $2
            WHERE household_id = $3 AND idempotency_key = $4 AND posting_id IS NULL AND request_json = $5 AND (claimed_until_ms IS NULL OR claimed_until_ms <= $6)
            RETURNING ${MONEY_COLUMNS}`,
          [claimToken, claimedUntilMs, row.householdId, row.idempotencyKey, row.requestJson, now()],
        );
        if (takenOver !== undefined) return claimedBy(takenOver);
        const stored = await moneyRow(row.householdId, row.idempotencyKey);
        if (stored !== undefined) return unclaimable(stored, row.requestJson);
      }
      throw new PaymentError(C.STORE_CONTENDED, `money request ${row.idempotencyKey} was claimed and released ${CLAIM_ROUNDS} times while this attempt tried to claim it`, true);
    },
    async finishMoneyRequest(householdId, key, postingId, balanceFen) {
      const f = checkedFinish(householdId, key, postingId, balanceFen);
      await pool.query(
        "UPDATE household_money_requests SET posting_id = $1, balance_fen = $2, claimed_until_ms = NULL WHERE household_id = $3 AND idempotency_key = $4 AND posting_id IS NULL",
        [f.postingId, f.balanceFen, f.householdId, f.idempotencyKey],
      );
    },
    async releaseMoneyRequest(householdId, key, claimToken) {
      await pool.query("DELETE FROM household_money_requests WHERE household_id = $1 AND idempotency_key = $2 AND posting_id IS NULL AND claim_token IS NOT DISTINCT FROM $3", [
        householdId,
        key,
        claimToken ?? null,
      ]);
    },
    close() {
      closing ??= pool.end();
      return closing;
    },
  };
}
