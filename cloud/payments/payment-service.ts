// Online top-ups, the shell around a PaymentProvider: open an order (checked against the village's stored-credit
// cap), and settle a verified callback into exactly ONE ledger top-up — idempotency key
// topup/<provider>/<providerTxnId>, atMs the provider's paidAtMs, memo and lines derived from the notice only — so a
// second callback, a concurrent one, or one after a restart posts identical content and the ledger answers
// "duplicate". Then the household's meters are re-granted at once. An authentic callback the cloud cannot honour
// (unknown order, an amount other than the order's, an order already paid by another transaction) is recorded in
// payment_callbacks and the audit log, and posts nothing.
//
// Several workers (PostgreSQL store): before posting, the order is reserved for the callback's transaction in the
// shared store (reservePayment: the first transaction wins), so two different transactions for one order settled on
// two workers at once cannot both become top-ups — the second is refused as already-paid. One transaction settled
// on two workers at once posts once: the ledger's idempotency key decides which answer is "posted".
//
// A paid callback for an order that had expired is still posted: the provider is the authority on whether money
// moved, and refusing it would keep a farmer's money without credit. The cap is checked when the order is opened;
// money that has already moved is credited even if the balance grew in between (recorded in the audit's `after`).

import type { Ledger } from "../ledger/store/ledger.js";
import { checkTopUp } from "../ledger/grants.js";
import { householdAccountId, openHouseholdAccount } from "../prepaid/accounts.js";
import type { Registry } from "../registry/registry.js";
import { fenToYuan } from "../../protocols/units.js";
import type { AuditSink } from "../api/routes/audit-sink.js";
import { PaymentError, PAYMENT_ERROR_CODES as C } from "./errors.js";
import type { PaymentsStore, PaymentOrder, CallbackOutcome } from "./orders-store.js";
import type { CallbackRequest, PaymentNotice, PaymentProvider } from "./provider.js";

export const providerAccountId = (provider: string, villageId: string): string => `provider:${provider}:${villageId}`;
export const onlineTopUpKey = (provider: string, providerTxnId: string): string => `topup/${provider}/${providerTxnId}`;

export interface PaymentServiceDeps {
  readonly store: PaymentsStore;
  readonly ledger: Ledger;
  readonly registry: Registry;
  readonly providers: ReadonlyMap<string, PaymentProvider>;
  readonly prepaid: { regrantHousehold(householdId: string, why: string): Promise<void> };
  readonly audit: AuditSink;
  readonly now: () => number;
  readonly newOrderId: () => string;
  /** The public URL of POST /payments/<provider>/callback, for the provider to call. */
  readonly notifyUrl: (provider: string) => string;
  /** How long a farmer has to pay; default 15 min. */
  readonly orderTtlMs?: number;
}

export interface CallbackResult {
  readonly outcome: CallbackOutcome;
  readonly orderId: string;
  readonly postingId?: number;
}

export interface PaymentService {
  createOrder(input: { householdId: string; provider: string; amountFen: number; actor: string }): Promise<PaymentOrder>;
  getOrder(orderId: string): Promise<PaymentOrder | undefined>;
  /** Throws a PaymentError when the callback cannot be verified; otherwise says what became of it. */
  handleCallback(provider: string, request: CallbackRequest): Promise<CallbackResult>;
}

export function createPaymentService(deps: PaymentServiceDeps): PaymentService {
  const { store, ledger, registry, audit } = deps;
  const ttlMs = deps.orderTtlMs ?? 15 * 60_000;
  // Settling runs one callback at a time in this process, so its own concurrent callbacks answer in arrival order;
  // across processes the store's reservation and the ledger's key keep each order and transaction to one posting.
  let queue: Promise<unknown> = Promise.resolve();
  function serial<T>(work: () => Promise<T>): Promise<T> {
    const run = queue.then(work, work);
    queue = run.catch(() => undefined);
    return run;
  }

  function provider(name: string): PaymentProvider {
    const found = deps.providers.get(name);
    if (found === undefined) throw new PaymentError(C.UNKNOWN_PROVIDER, `no payment provider ${name}`);
    return found;
  }

  async function refuse(providerName: string, notice: PaymentNotice, outcome: CallbackOutcome, detail: string, villageId?: string): Promise<CallbackResult> {
    const nowMs = deps.now();
    await store.recordCallback({ provider: providerName, providerTxnId: notice.providerTxnId, orderId: notice.orderId, amountFen: notice.amountFen, outcome, detail, receivedAtMs: nowMs });
    await audit.record({
      actor: `provider:${providerName}`,
      action: `payment.callback-${outcome}`,
      entityType: "payment-order",
      entityId: notice.orderId,
      ...(villageId === undefined ? {} : { villageId }),
      reason: detail,
      after: notice,
      atMs: nowMs,
    });
    return { outcome, orderId: notice.orderId };
  }

  async function settlePaid(providerName: string, notice: PaymentNotice): Promise<CallbackResult> {
    const order = await store.getOrder(notice.orderId, deps.now());
    if (order?.provider !== providerName) return refuse(providerName, notice, "unknown-order", `no ${providerName} order ${notice.orderId}`);
    if (notice.amountFen !== order.amountFen) {
      return refuse(providerName, notice, "amount-mismatch", `the order is for ${order.amountFen} fen, the callback says ${notice.amountFen} fen`, order.villageId);
    }
    if (order.state === "paid" && order.providerTxnId === notice.providerTxnId && order.postingId !== undefined) {
      // A retry of a settled callback (its fields may differ, e.g. a re-stamped paidAtMs): answered from the order.
      await store.recordCallback({ provider: providerName, providerTxnId: notice.providerTxnId, orderId: order.orderId, amountFen: notice.amountFen, outcome: "duplicate", detail: `posting ${order.postingId}`, receivedAtMs: deps.now() });
      return { outcome: "duplicate", orderId: order.orderId, postingId: order.postingId };
    }
    const reservation = await store.reservePayment(order.orderId, notice.providerTxnId);
    if (reservation.outcome === "unknown-order") return refuse(providerName, notice, "unknown-order", `no ${providerName} order ${notice.orderId}`);
    if (reservation.outcome === "other-txn") {
      return refuse(providerName, notice, "already-paid", `order ${order.orderId} was paid by transaction ${reservation.order.providerTxnId ?? "?"}; this second payment needs a manual refund`, order.villageId);
    }
    if (reservation.outcome === "txn-taken") {
      return refuse(providerName, notice, "already-paid", `transaction ${notice.providerTxnId} already paid order ${reservation.otherOrderId}; it cannot pay order ${order.orderId} too`, order.villageId);
    }
    await openHouseholdAccount(ledger, order.villageId, order.householdId);
    await ledger.openAccount({ accountId: providerAccountId(providerName, order.villageId), kind: "payment-provider", villageId: order.villageId });
    const accountId = householdAccountId(order.householdId);
    const balanceBeforeFen = await ledger.balance(accountId);
    const posted = await ledger.post({
      idempotencyKey: onlineTopUpKey(providerName, notice.providerTxnId),
      kind: "top-up",
      lines: [
        { accountId, amountFen: notice.amountFen },
        { accountId: providerAccountId(providerName, order.villageId), amountFen: -notice.amountFen },
      ],
      memo: `online top-up ¥${fenToYuan(notice.amountFen)}, ${providerName} order ${order.orderId}, transaction ${notice.providerTxnId}`,
      actor: `provider:${providerName}`,
      atMs: notice.paidAtMs,
    });
    const nowMs = deps.now();
    await store.markPaid(order.orderId, notice.providerTxnId, posted.postingId, notice.paidAtMs, nowMs);
    await registry.noteTopUp(order.householdId, posted.postingId, nowMs);
    const outcome: CallbackOutcome = posted.duplicate ? "duplicate" : "posted";
    await store.recordCallback({ provider: providerName, providerTxnId: notice.providerTxnId, orderId: order.orderId, amountFen: notice.amountFen, outcome, detail: `posting ${posted.postingId}`, receivedAtMs: nowMs });
    if (!posted.duplicate) {
      await audit.record({
        actor: `provider:${providerName}`,
        action: "ledger.top-up",
        entityType: "household",
        entityId: order.householdId,
        villageId: order.villageId,
        reason: `online payment ${order.orderId}`,
        before: { balanceFen: balanceBeforeFen },
        after: { postingId: posted.postingId, amountFen: notice.amountFen, providerTxnId: notice.providerTxnId, orderState: order.state },
        atMs: nowMs,
      });
    }
    await deps.prepaid.regrantHousehold(order.householdId, "online top-up");
    return { outcome, orderId: order.orderId, postingId: posted.postingId };
  }

  return {
    async createOrder({ householdId, provider: providerName, amountFen, actor }) {
      const p = provider(providerName);
      const household = await registry.getHousehold(householdId);
      if (household === undefined) throw new PaymentError(C.UNKNOWN_HOUSEHOLD, `no household ${householdId}`);
      const nowMs = deps.now();
      await openHouseholdAccount(ledger, household.villageId, householdId);
      const balanceFen = await ledger.balance(householdAccountId(householdId));
      const policy = await registry.villagePolicyAt(household.villageId, nowMs);
      const check = checkTopUp(balanceFen, amountFen, policy.maxBalanceFen);
      if (!check.ok) {
        throw new PaymentError(
          C.OVER_CAP,
          check.reason === "not-positive" ? "a top-up must be more than ¥0.00" : `the balance would exceed the village's cap; at most ¥${fenToYuan(check.maxTopUpFen)} can be added now`,
        );
      }
      const orderId = deps.newOrderId();
      const expiresAtMs = nowMs + ttlMs;
      const created = await p.createOrder({ orderId, amountFen, description: `electricity top-up for household ${householdId}`, notifyUrl: deps.notifyUrl(providerName), expiresAtMs });
      const order = await store.insertOrder({ orderId, provider: providerName, householdId, villageId: household.villageId, amountFen, createdBy: actor, createdAtMs: nowMs, expiresAtMs, payUrl: created.payUrl, qrPayload: created.qrPayload });
      await audit.record({ actor, action: "payment.order-create", entityType: "payment-order", entityId: orderId, villageId: household.villageId, after: { householdId, amountFen, provider: providerName }, atMs: nowMs });
      return order;
    },
    getOrder: (orderId) => store.getOrder(orderId, deps.now()),
    async handleCallback(providerName, request) {
      const verified = provider(providerName).verifyCallback(request, deps.now());
      if (!verified.ok) throw verified.error;
      const notice = verified.notice;
      return serial(async () => {
        if (notice.status === "paid") return settlePaid(providerName, notice);
        const order = await store.getOrder(notice.orderId, deps.now());
        if (order?.provider !== providerName) return refuse(providerName, notice, "unknown-order", `no ${providerName} order ${notice.orderId}`);
        await store.markFailed(order.orderId, deps.now());
        return refuse(providerName, notice, "failed", `the provider reports order ${order.orderId} failed`, order.villageId);
      });
    },
  };
}
