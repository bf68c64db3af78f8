// The online top-up over real sockets: a farmer opens an order over HTTP, the local provider "pays" by POSTing its
// signed callback to the listening cloud, the household is credited once — however many times the provider calls
// back — and the order reads as paid.

import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { paymentRoutes } from "../../cloud/api/routes/payments.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { createLocalProvider, type LocalPaymentProvider } from "../../cloud/payments/local-provider.js";
import { createPaymentService } from "../../cloud/payments/payment-service.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { as, FARMER_LI, openHarness, seedVillages, type Harness } from "./api-domain-harness.js";

let h: Harness;
let provider: LocalPaymentProvider;
let baseUrl: string;

beforeEach(async () => {
  provider = createLocalProvider({ key: randomBytes(32) });
  const secretHash = await hashSecret("gateway-secret-for-tests-0123456789");
  let orderSeq = 0;
  h = await openHarness(async (app, parts) => {
    await seedVillages(parts.registry, parts.ledger, secretHash);
    const payments = createPaymentService({
      store: parts.store,
      ledger: parts.ledger,
      registry: parts.registry,
      providers: new Map([["local", provider]]),
      prepaid: parts.prepaid,
      audit: parts.audit,
      now: () => parts.clock.nowMs,
      newOrderId: () => `http-order-${++orderSeq}`,
      notifyUrl: (name) => `${baseUrl}/payments/${name}/callback`,
    });
    await paymentRoutes(app, { registry: parts.registry, payments });
  });
  await h.app.listen({ host: "127.0.0.1", port: 0 });
  baseUrl = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  await h.close();
});

describe("an online top-up over HTTP", () => {
  it("credits the household once when the provider pays by calling back to the listening cloud, twice", async () => {
    const opened = await fetch(`${baseUrl}/households/hh-li/payment-orders`, {
      method: "POST",
      headers: { ...as(FARMER_LI), "content-type": "application/json" },
      body: JSON.stringify({ amountFen: 3_000 }),
    });
    expect(opened.status).toBe(201);
    const order = (await opened.json()) as { orderId: string; payUrl: string };
    const notifyUrl = new URL(order.payUrl).searchParams.get("notify") ?? "";
    expect(notifyUrl).toBe(`${baseUrl}/payments/local/callback`);

    const notice = { orderId: order.orderId, providerTxnId: "4200001234202611010000001", amountFen: 3_000, status: "paid" as const, paidAtMs: h.clock.nowMs };
    const first = await provider.pay(notifyUrl, notice, h.clock.nowMs);
    const second = await provider.pay(notifyUrl, notice, h.clock.nowMs);
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body)).toMatchObject({ outcome: "posted" });
    expect(JSON.parse(second.body)).toMatchObject({ outcome: "duplicate" });
    expect(await h.ledger.balance(householdAccountId("hh-li"))).toBe(3_000);

    const status = await fetch(`${baseUrl}/payment-orders/${order.orderId}`, { headers: as(FARMER_LI) });
    expect(await status.json()).toMatchObject({ state: "paid", providerTxnId: notice.providerTxnId });
  });

  it("answers a forged callback over HTTP with 401 and credits nothing", async () => {
    const forger = createLocalProvider({ key: randomBytes(32) });
    const answer = await forger.pay(`${baseUrl}/payments/local/callback`, { orderId: "http-order-1", providerTxnId: "t-1", amountFen: 100, status: "paid", paidAtMs: h.clock.nowMs }, h.clock.nowMs);
    expect(answer.status).toBe(401);
    expect(await h.ledger.balance(householdAccountId("hh-li"))).toBe(0);
  });
});
