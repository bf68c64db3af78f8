// Online payments: the local test provider's signature scheme (HMAC-SHA256 over the raw body with a timestamp,
// constant-time comparison, stale timestamps refused), and the payment routes through a real fastify instance and
// real SQLite files — an order opened within the cap, a paid callback posting exactly ONE top-up however often and
// however concurrently it arrives (and after a restart), and every authentic callback the cloud cannot honour
// recorded, never posted.

import { randomBytes } from "node:crypto";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { paymentRoutes } from "../../cloud/api/routes/payments.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { openSqliteLedger } from "../../cloud/ledger/store/sqlite-ledger.js";
import { PAYMENT_ERROR_CODES } from "../../cloud/payments/errors.js";
import { createLocalProvider, DEFAULT_CALLBACK_TOLERANCE_MS, LOCAL_SIGNATURE_HEADER, type LocalPaymentProvider } from "../../cloud/payments/local-provider.js";
import { openPaymentsStore } from "../../cloud/payments/orders-store.js";
import { createPaymentService, onlineTopUpKey, type PaymentService } from "../../cloud/payments/payment-service.js";
import type { PaymentNotice } from "../../cloud/payments/provider.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { APPROVER_V1, call, FARMER_LI, field, FARMER_WANG, OFFICER_V1, OFFICER_V2, openHarness, seedVillages, T0, type Harness } from "./api-domain-harness.js";

const KEY = randomBytes(32);
let secretHash: string;

beforeAll(async () => {
  secretHash = await hashSecret("gateway-secret-for-tests-0123456789");
});

describe("the local provider's signed callback", () => {
  const provider = createLocalProvider({ key: KEY });
  const notice: PaymentNotice = { orderId: "order-00000001", providerTxnId: "txn-1", amountFen: 2_000, status: "paid", paidAtMs: T0 };
  const signed = (n = notice, at = T0) => provider.signCallback(n, at);
  const verify = (body: string | Buffer, headers: Record<string, string>, nowMs = T0) => provider.verifyCallback({ rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body), headers }, nowMs);

  it("verifies a callback it signed into the typed notice", () => {
    const { body, headers } = signed();
    expect(verify(body, headers)).toEqual({ ok: true, notice });
  });

  it("refuses a body changed by one byte", () => {
    const { body, headers } = signed();
    const result = verify(body.replace("2000", "9000"), headers);
    expect(result.ok === false && result.error.code).toBe(PAYMENT_ERROR_CODES.BAD_SIGNATURE);
  });

  it("refuses a callback signed with another key", () => {
    const forged = createLocalProvider({ key: randomBytes(32) }).signCallback(notice, T0);
    const result = verify(forged.body, forged.headers);
    expect(result.ok === false && result.error.code).toBe(PAYMENT_ERROR_CODES.BAD_SIGNATURE);
  });

  it("refuses a timestamp moved after signing", () => {
    const { body, headers } = signed();
    const moved = { ...headers, [LOCAL_SIGNATURE_HEADER]: (headers[LOCAL_SIGNATURE_HEADER] ?? "").replace(`t=${T0}`, `t=${T0 + 1}`) };
    const result = verify(body, moved, T0 + 1);
    expect(result.ok === false && result.error.code).toBe(PAYMENT_ERROR_CODES.BAD_SIGNATURE);
  });

  it("refuses a correctly signed callback older or newer than the tolerance", () => {
    const { body, headers } = signed();
    const stale = verify(body, headers, T0 + DEFAULT_CALLBACK_TOLERANCE_MS + 1);
    expect(stale.ok === false && stale.error.code).toBe(PAYMENT_ERROR_CODES.STALE_CALLBACK);
    const early = verify(body, headers, T0 - DEFAULT_CALLBACK_TOLERANCE_MS - 1);
    expect(early.ok === false && early.error.code).toBe(PAYMENT_ERROR_CODES.STALE_CALLBACK);
    expect(verify(body, headers, T0 + DEFAULT_CALLBACK_TOLERANCE_MS).ok).toBe(true);
  });

  it.each([
    ["no signature header", {}],
    ["a truncated signature", { [LOCAL_SIGNATURE_HEADER]: `t=${T0},v1=abcd` }],
    ["a non-hex signature", { [LOCAL_SIGNATURE_HEADER]: `t=${T0},v1=${"z".repeat(64)}` }],
    ["no timestamp", { [LOCAL_SIGNATURE_HEADER]: `v1=${"a".repeat(64)}` }],
  ])("refuses %s as a bad signature", (_what, headers) => {
    const result = verify(signed().body, headers);
    expect(result.ok === false && result.error.code).toBe(PAYMENT_ERROR_CODES.BAD_SIGNATURE);
  });

  it("refuses a correctly signed body that is not a payment notice", () => {
    for (const bad of [{ ...notice, amountFen: 20.5 }, { ...notice, amountFen: -1 }, { ...notice, extra: true }, { ...notice, status: "maybe" }]) {
      const { body, headers } = provider.signCallback(bad as PaymentNotice, T0);
      const result = verify(body, headers);
      expect(result.ok === false && result.error.code).toBe(PAYMENT_ERROR_CODES.MALFORMED_CALLBACK);
    }
  });

  it("refuses a key shorter than 32 bytes", () => {
    expect(() => createLocalProvider({ key: randomBytes(16) })).toThrow(/32 bytes/);
  });
});

describe("payment routes", () => {
  let h: Harness;
  let provider: LocalPaymentProvider;
  let payments: PaymentService;
  let orderSeq = 0;

  const serviceOn = (parts: Pick<Harness, "registry" | "ledger" | "audit" | "prepaid" | "clock">, store = h.store): PaymentService =>
    createPaymentService({
      store,
      ledger: parts.ledger,
      registry: parts.registry,
      providers: new Map([["local", provider]]),
      prepaid: parts.prepaid,
      audit: parts.audit,
      now: () => parts.clock.nowMs,
      newOrderId: () => `order-${String(++orderSeq).padStart(8, "0")}`,
      notifyUrl: (name) => `http://cloud.invalid/payments/${name}/callback`,
    });

  beforeEach(async () => {
    provider = createLocalProvider({ key: KEY });
    h = await openHarness(async (app, parts) => {
      await seedVillages(parts.registry, parts.ledger, secretHash);
      payments = serviceOn({ ...parts }, parts.store);
      await paymentRoutes(app, { registry: parts.registry, payments });
    });
  });

  afterEach(async () => {
    await h.close();
  });

  const balance = (householdId = "hh-li"): Promise<number> => h.ledger.balance(householdAccountId(householdId));
  const openOrder = async (amountFen = 2_000, who = FARMER_LI, householdId = "hh-li") => {
    const answer = await call(h.app, "POST", `/households/${householdId}/payment-orders`, who, { amountFen });
    return { ...answer, orderId: field<string>(answer, "orderId") };
  };
  const orderState = async (orderId: string, who = FARMER_LI) => field<string>(await call(h.app, "GET", `/payment-orders/${orderId}`, who), "state");
  const deliver = async (notice: PaymentNotice, signedAtMs = h.clock.nowMs) => {
    const { body, headers } = provider.signCallback(notice, signedAtMs);
    const response = await h.app.inject({ method: "POST", url: "/payments/local/callback", headers, payload: body });
    return { status: response.statusCode, json: JSON.parse(response.body) as Record<string, unknown> };
  };
  const paid = (orderId: string, amountFen = 2_000, providerTxnId = "txn-0001"): PaymentNotice => ({ orderId, providerTxnId, amountFen, status: "paid", paidAtMs: h.clock.nowMs });
  const topUps = async () => (await h.ledger.statement(householdAccountId("hh-li"), 0, Number.MAX_SAFE_INTEGER)).entries.filter((e) => e.kind === "top-up");

  it("opens an order for the farmer's own household, with a pay URL and a QR payload", async () => {
    const order = await openOrder();
    expect(order.status).toBe(201);
    expect(order.json).toMatchObject({ householdId: "hh-li", amountFen: 2_000, state: "created", provider: "local" });
    expect(field<string>(order, "qrPayload")).toContain(order.orderId);
    expect(await orderState(order.orderId)).toBe("created");
  });

  it("lets an officer open an order for a household of their village, and nobody for a household outside their scope", async () => {
    expect((await openOrder(1_000, OFFICER_V1)).status).toBe(201);
    expect((await openOrder(1_000, FARMER_WANG)).status).toBe(403);
    expect((await openOrder(1_000, OFFICER_V2)).status).toBe(403);
    expect((await openOrder(1_000, APPROVER_V1)).status).toBe(403);
    expect((await openOrder(1_000, FARMER_LI, "hh-nobody")).status).toBe(404);
  });

  it("refuses an order that would take the balance above the village's cap", async () => {
    const refused = await openOrder(50_001);
    expect(refused.status).toBe(422);
    expect(refused.json).toMatchObject({ code: "PAYMENT_OVER_CAP" });
  });

  it.each([
    ["negative", -5],
    ["fractional", 1.5],
    ["huge", 1e12],
  ])("refuses a %s amount with 400", async (_what, amountFen) => {
    expect((await openOrder(amountFen)).status).toBe(400);
  });

  it("posts ONE top-up for a paid callback, keyed by the provider's transaction, and re-grants at once", async () => {
    const { orderId } = await openOrder();
    const answer = await deliver(paid(orderId));
    expect(answer).toMatchObject({ status: 200, json: { outcome: "posted", orderId: orderId } });
    expect(await balance()).toBe(2_000);
    expect((await topUps()).map((e) => e.idempotencyKey)).toEqual([onlineTopUpKey("local", "txn-0001")]);
    const status = (await call(h.app, "GET", `/payment-orders/${orderId}`, FARMER_LI)).json;
    expect(status).toMatchObject({ state: "paid", providerTxnId: "txn-0001", postingId: answer.json.postingId });
    expect((await h.registry.topUpNoticesAfter(0)).map((n) => n.householdId)).toEqual(["hh-li"]);
  });

  it("posts nothing more when the provider calls back twice", async () => {
    const { orderId } = await openOrder();
    await deliver(paid(orderId));
    h.clock.nowMs += 30_000;
    const again = await deliver(paid(orderId));
    expect(again.json.outcome).toBe("duplicate");
    expect(await balance()).toBe(2_000);
    expect(await topUps()).toHaveLength(1);
  });

  it("posts ONE top-up when the same callback arrives five times at once", async () => {
    const { orderId } = await openOrder();
    const answers = await Promise.all(Array.from({ length: 5 }, () => deliver(paid(orderId))));
    expect(answers.map((a) => a.json.outcome).sort()).toEqual(["duplicate", "duplicate", "duplicate", "duplicate", "posted"]);
    expect(await balance()).toBe(2_000);
    expect(await topUps()).toHaveLength(1);
  });

  it("posts nothing more for a callback replayed after a restart", async () => {
    const { orderId } = await openOrder();
    const notice = paid(orderId);
    await deliver(notice);
    // A new process: its own ledger, store and service over the same cloud.db.
    const ledger = openSqliteLedger({ path: h.dbPath, now: () => h.clock.nowMs });
    const store = openPaymentsStore({ path: h.dbPath, now: () => h.clock.nowMs });
    try {
      const restarted = serviceOn({ ...h, ledger }, store);
      const { body, headers } = provider.signCallback(notice, h.clock.nowMs);
      expect((await restarted.handleCallback("local", { rawBody: Buffer.from(body), headers })).outcome).toBe("duplicate");
    } finally {
      await store.close();
      await ledger.close();
    }
    expect(await topUps()).toHaveLength(1);
  });

  it("posts ONE top-up when two cloud processes settle the same callback at once (the ledger key decides)", async () => {
    const { orderId } = await openOrder();
    const notice = paid(orderId);
    const ledger = openSqliteLedger({ path: h.dbPath, now: () => h.clock.nowMs });
    const store = openPaymentsStore({ path: h.dbPath, now: () => h.clock.nowMs });
    try {
      const other = serviceOn({ ...h, ledger }, store);
      const { body, headers } = provider.signCallback(notice, h.clock.nowMs);
      const request = { rawBody: Buffer.from(body), headers };
      const outcomes = await Promise.all([payments.handleCallback("local", request), other.handleCallback("local", request)]);
      expect(outcomes.map((o) => o.outcome).sort()).toEqual(["duplicate", "posted"]);
      expect(outcomes[0]?.postingId).toBe(outcomes[1]?.postingId);
    } finally {
      await store.close();
      await ledger.close();
    }
    expect(await topUps()).toHaveLength(1);
    expect(await balance()).toBe(2_000);
  });

  it("refuses and records a paid callback whose amount differs from the order", async () => {
    const { orderId } = await openOrder();
    const answer = await deliver(paid(orderId, 20_000));
    expect(answer.json.outcome).toBe("amount-mismatch");
    expect(await balance()).toBe(0);
    expect(await h.store.callbacksOf(orderId)).toMatchObject([{ outcome: "amount-mismatch", amountFen: 20_000 }]);
    expect((await h.audit.list({ entityType: "payment-order", entityId: orderId, limit: 10 })).map((e) => e.action)).toContain("payment.callback-amount-mismatch");
    expect(await orderState(orderId)).toBe("created");
  });

  it("records a callback for an unknown order without posting", async () => {
    const answer = await deliver(paid("order-99999999"));
    expect(answer.json.outcome).toBe("unknown-order");
    expect(await h.store.callbacksByTxn("local", "txn-0001")).toMatchObject([{ outcome: "unknown-order", orderId: "order-99999999" }]);
    expect(await topUps()).toEqual([]);
  });

  it("refuses a second transaction for an order already paid, recording it for a manual refund", async () => {
    const { orderId } = await openOrder();
    await deliver(paid(orderId, 2_000, "txn-first"));
    const second = await deliver(paid(orderId, 2_000, "txn-second"));
    expect(second.json.outcome).toBe("already-paid");
    expect(await balance()).toBe(2_000);
  });

  it("marks an order failed when the provider says so, posting nothing", async () => {
    const { orderId } = await openOrder();
    const answer = await deliver({ ...paid(orderId), status: "failed" });
    expect(answer.json.outcome).toBe("failed");
    expect(await orderState(orderId)).toBe("failed");
    expect(await balance()).toBe(0);
  });

  it("expires an unpaid order, and still credits money the provider says arrived late", async () => {
    const { orderId } = await openOrder();
    h.clock.nowMs += 16 * 60_000;
    expect(await orderState(orderId)).toBe("expired");
    expect((await deliver(paid(orderId))).json.outcome).toBe("posted");
    expect(await balance()).toBe(2_000);
  });

  it("refuses a forged or stale callback with 401 and records nothing", async () => {
    const { orderId } = await openOrder();
    const { body, headers } = createLocalProvider({ key: randomBytes(32) }).signCallback(paid(orderId), h.clock.nowMs);
    const forged = await h.app.inject({ method: "POST", url: "/payments/local/callback", headers, payload: body });
    expect(forged.statusCode).toBe(401);
    expect(JSON.parse(forged.body)).toMatchObject({ code: "PAYMENT_BAD_SIGNATURE" });
    const stale = await deliver(paid(orderId), h.clock.nowMs - DEFAULT_CALLBACK_TOLERANCE_MS - 1);
    expect(stale.status).toBe(401);
    expect(await h.store.callbacksOf(orderId)).toEqual([]);
    expect(await balance()).toBe(0);
  });

  it("verifies the raw bytes whatever the content type, while other routes still parse JSON", async () => {
    const { orderId } = await openOrder();
    const { body, headers } = provider.signCallback(paid(orderId), h.clock.nowMs);
    const asText = await h.app.inject({ method: "POST", url: "/payments/local/callback", headers: { ...headers, "content-type": "text/plain" }, payload: body });
    expect(JSON.parse(asText.body)).toMatchObject({ outcome: "posted" });
    // Whitespace changes the bytes, and so the signature, even though the JSON means the same.
    const reformatted = await h.app.inject({ method: "POST", url: "/payments/local/callback", headers, payload: ` ${body}` });
    expect(reformatted.statusCode).toBe(401);
  });

  it("refuses an oversized callback with 413, an unknown provider with 404, and no body with 400", async () => {
    const big = await h.app.inject({ method: "POST", url: "/payments/local/callback", headers: { "content-type": "application/json" }, payload: "x".repeat(17 * 1024) });
    expect(big.statusCode).toBe(413);
    const { body, headers } = provider.signCallback(paid("order-00000001"), h.clock.nowMs);
    expect((await h.app.inject({ method: "POST", url: "/payments/paypal/callback", headers, payload: body })).statusCode).toBe(404);
    expect((await h.app.inject({ method: "POST", url: "/payments/local/callback", headers: { [LOCAL_SIGNATURE_HEADER]: "t=1,v1=00" } })).statusCode).toBe(400);
  });

  it("shows an order only to those who may see its household", async () => {
    const { orderId } = await openOrder();
    expect((await call(h.app, "GET", `/payment-orders/${orderId}`, OFFICER_V1)).status).toBe(200);
    expect((await call(h.app, "GET", `/payment-orders/${orderId}`, FARMER_WANG)).status).toBe(403);
    expect((await call(h.app, "GET", `/payment-orders/${orderId}`, OFFICER_V2)).status).toBe(403);
    expect((await call(h.app, "GET", "/payment-orders/order-77777777", FARMER_LI)).status).toBe(404);
  });
});
