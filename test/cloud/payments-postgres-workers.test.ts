// Two `agri-cloud serve` workers on one PostgreSQL database (issue #4, multi-worker): each with its own pools on the
// ledger, registry, audit log and payments store, its own prepaid service and its own payment and household-money
// services — exactly what two processes hold. A provider's callback reaching the worker that did not open the order
// is credited; two transactions for one order, or one callback delivered to both workers at once, become ONE top-up;
// an officer's retry on the other worker is recognised as a retry, and one sent to both at once posts once.

import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHouseholdMoney, type HouseholdMoney } from "../../cloud/api/routes/household-money.js";
import { openPostgresAuditLog } from "../../cloud/audit/postgres-audit-log.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { openPostgresLedger, type PostgresLedger } from "../../cloud/ledger/store/postgres-ledger.js";
import { createLocalProvider } from "../../cloud/payments/local-provider.js";
import { openPostgresPaymentsStore } from "../../cloud/payments/postgres-payments-store.js";
import { createPaymentService, type PaymentService } from "../../cloud/payments/payment-service.js";
import type { PaymentNotice } from "../../cloud/payments/provider.js";
import { householdAccountId, openHouseholdAccount } from "../../cloud/prepaid/accounts.js";
import { createPrepaidService } from "../../cloud/prepaid/service.js";
import { openPostgresRegistry } from "../../cloud/registry/postgres-registry.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";

const T0 = Date.UTC(2026, 10, 1);
const provider = createLocalProvider({ key: randomBytes(32) });

interface Worker {
  readonly ledger: PostgresLedger;
  readonly payments: PaymentService;
  readonly money: HouseholdMoney;
  close(): Promise<void>;
}

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server.stop();
});

const clock = { nowMs: T0 };
let orderSeq = 0;

async function openWorker(url: string, name: string): Promise<Worker> {
  const now = (): number => clock.nowMs;
  const ledger = await openPostgresLedger({ connectionString: url, now, poolSize: 3 });
  const registry = await openPostgresRegistry({ connectionString: url, now, poolSize: 3 });
  const audit = await openPostgresAuditLog({ connectionString: url, now, poolSize: 2 });
  const store = await openPostgresPaymentsStore({ connectionString: url, now, poolSize: 2 });
  const prepaid = createPrepaidService({ ledger, registry, publishCommand: () => Promise.resolve(), log: pino({ level: "silent" }), now });
  const payments = createPaymentService({
    store,
    ledger,
    registry,
    providers: new Map([["local", provider]]),
    prepaid,
    audit,
    now,
    newOrderId: () => `order-${name}-${String(++orderSeq).padStart(6, "0")}`,
    notifyUrl: (p) => `http://${name}.invalid/payments/${p}/callback`,
  });
  const money = createHouseholdMoney({ ledger, registry, requests: store, audit, prepaid, now });
  return {
    ledger,
    payments,
    money,
    async close() {
      await prepaid.idle();
      await store.close();
      await audit.close();
      await registry.close();
      await ledger.close();
    },
  };
}

let a: Worker;
let b: Worker;

beforeEach(async () => {
  clock.nowMs = T0;
  const url = await server.createDatabase("payments_workers");
  a = await openWorker(url, "worker-a");
  b = await openWorker(url, "worker-b");
  const registry = await openPostgresRegistry({ connectionString: url, poolSize: 1 });
  try {
    await registry.addVillage({ villageId: "v1", name: "Village 1" });
    await registry.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 0, policy: { maxBalanceFen: 50_000, maxOverdraftFen: 500, lowCredit: { stage1Fen: 2_000, stage2Fen: 500 } } });
    await registry.addTariff({ tariffId: "t1", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } });
    await registry.addGateway({ gatewayId: "gw-v1", villageId: "v1", secretHash: await hashSecret("gateway-secret-for-tests-0123456789") });
    await registry.addHousehold({ householdId: "hh-li", villageId: "v1", name: "Li" });
    await registry.addMeter({ meterId: "pump-li", gatewayId: "gw-v1", householdId: "hh-li", tariffId: "t1", initialWh: 100_000 });
  } finally {
    await registry.close();
  }
  await openHouseholdAccount(a.ledger, "v1", "hh-li");
});

afterEach(async () => {
  await a.close();
  await b.close();
});

const callback = (notice: PaymentNotice) => {
  const { body, headers } = provider.signCallback(notice, clock.nowMs);
  return { rawBody: Buffer.from(body), headers };
};
const paid = (orderId: string, providerTxnId: string): PaymentNotice => ({ orderId, providerTxnId, amountFen: 2_000, status: "paid", paidAtMs: clock.nowMs });
const balance = (): Promise<number> => a.ledger.balance(householdAccountId("hh-li"));
const topUps = async () => (await a.ledger.statement(householdAccountId("hh-li"), 0, Number.MAX_SAFE_INTEGER)).entries.filter((e) => e.kind === "top-up");
const household = { householdId: "hh-li", villageId: "v1", name: "Li", overdraftFen: 0 };
const cashTopUp = { kind: "top-up", amountFen: 3_000, receiptId: "r-1", reason: "cash top-up, receipt r-1" } as const;

describe("payments with two workers on one PostgreSQL database", () => {
  it("credits an order opened on one worker when the provider calls back to the other", async () => {
    const order = await a.payments.createOrder({ householdId: "hh-li", provider: "local", amountFen: 2_000, actor: "farmer-li" });
    expect(await b.payments.handleCallback("local", callback(paid(order.orderId, "txn-1")))).toMatchObject({ outcome: "posted" });
    expect(await a.payments.getOrder(order.orderId)).toMatchObject({ state: "paid", providerTxnId: "txn-1" });
    expect(await balance()).toBe(2_000);
  });

  it("posts ONE top-up when two transactions for one order are settled on the two workers at once", async () => {
    const order = await a.payments.createOrder({ householdId: "hh-li", provider: "local", amountFen: 2_000, actor: "farmer-li" });
    const results = await Promise.all([a.payments.handleCallback("local", callback(paid(order.orderId, "txn-a"))), b.payments.handleCallback("local", callback(paid(order.orderId, "txn-b")))]);
    expect(results.map((r) => r.outcome).sort()).toEqual(["already-paid", "posted"]);
    expect(await topUps()).toHaveLength(1);
    expect(await balance()).toBe(2_000);
  });

  it("posts ONE top-up when the same callback reaches both workers at once", async () => {
    const order = await a.payments.createOrder({ householdId: "hh-li", provider: "local", amountFen: 2_000, actor: "farmer-li" });
    const request = callback(paid(order.orderId, "txn-1"));
    const results = await Promise.all([a.payments.handleCallback("local", request), b.payments.handleCallback("local", request)]);
    expect(results.map((r) => r.outcome).sort()).toEqual(["duplicate", "posted"]);
    expect(results[0]?.postingId).toBe(results[1]?.postingId);
    expect(await balance()).toBe(2_000);
  });
});

describe("an officer's money requests with two workers on one PostgreSQL database", () => {
  it("answers a retry on the other worker with the first worker's posting", async () => {
    const first = await a.money.apply(household, "key-0001", cashTopUp, "officer-v1");
    clock.nowMs += 5_000;
    const retry = await b.money.apply(household, "key-0001", cashTopUp, "officer-v1");
    expect(retry).toEqual({ postingId: first.postingId, duplicate: true, balanceFen: 3_000 });
    expect(await balance()).toBe(3_000);
  });

  it("refuses the same key for a different request on the other worker with 409", async () => {
    await a.money.apply(household, "key-0001", cashTopUp, "officer-v1");
    await expect(b.money.apply(household, "key-0001", { ...cashTopUp, amountFen: 4_000 }, "officer-v1")).rejects.toMatchObject({ status: 409, code: "API_IDEMPOTENCY_CONFLICT" });
  });

  it("posts a request sent to both workers at once once; the other attempt is told it is in progress or gets the answer", async () => {
    const results = await Promise.allSettled([a.money.apply(household, "key-0001", cashTopUp, "officer-v1"), b.money.apply(household, "key-0001", cashTopUp, "officer-v1")]);
    const applied = results.filter((r) => r.status === "fulfilled" && !r.value.duplicate);
    const others = results.filter((r) => !(r.status === "fulfilled" && !r.value.duplicate));
    expect(applied).toHaveLength(1);
    expect(others).toHaveLength(1);
    const other = others[0];
    if (other?.status === "rejected") expect(other.reason).toMatchObject({ status: 409, code: "API_IDEMPOTENCY_IN_PROGRESS", headers: { "retry-after": "30" } });
    else expect(other?.value.duplicate).toBe(true);
    expect(await topUps()).toHaveLength(1);
    expect(await balance()).toBe(3_000);
  });
});
