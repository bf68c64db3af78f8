// One household's money decisions one at a time, on PostgreSQL and across workers (cloud/registry/household-lock.ts).
// Each scenario pins the interleaving a review found with the real engines — a registry wrapper holds one read of the
// grant sizing until the test lets it go — and checks the invariant that broke: the credit the gateways may still
// draw never exceeds the balance plus the overdraft.
//   - a cash refund checked while a grant was being sized from the balance before it (one worker);
//   - two workers granting one two-meter household's balance, each to a different meter.

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHouseholdMoney } from "../../cloud/api/routes/household-money.js";
import { openPostgresAuditLog } from "../../cloud/audit/postgres-audit-log.js";
import type { AuditLog } from "../../cloud/audit/audit-log.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import type { Ledger } from "../../cloud/ledger/store/ledger.js";
import { openPostgresLedger } from "../../cloud/ledger/store/postgres-ledger.js";
import { openPostgresPaymentsStore } from "../../cloud/payments/postgres-payments-store.js";
import type { PaymentsStore } from "../../cloud/payments/orders-store.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { outstandingGrantFen } from "../../cloud/prepaid/next-grant.js";
import { createPrepaidService, type PrepaidService } from "../../cloud/prepaid/service.js";
import { recordTopUp } from "../../cloud/prepaid/top-up.js";
import { openPostgresRegistry } from "../../cloud/registry/postgres-registry.js";
import type { Registry } from "../../cloud/registry/registry.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";

const T0 = Date.UTC(2026, 10, 1);
const now = (): number => T0 + 60 * 60_000;
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as never;

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server.stop();
});

interface Worker {
  readonly ledger: Ledger;
  readonly registry: Registry;
  close(): Promise<void>;
}
let url: string;
const opened: { close(): Promise<void> }[] = [];
async function worker(): Promise<Worker> {
  const ledger = await openPostgresLedger({ connectionString: url, now });
  const registry = await openPostgresRegistry({ connectionString: url, now });
  const w = { ledger, registry, close: async () => (await registry.close(), await ledger.close()) };
  opened.push(w);
  return w;
}

/** The registry with one read that can be held: `hold(op, meterId)` returns when the read is reached, and a release. */
function gated(registry: Registry): { registry: Registry; hold(op: "lastGrant" | "highestLimitInForceWh", meterId: string): { reached: Promise<void>; release: () => void } } {
  const gates = new Map<string, { reached: () => void; released: Promise<void> }>();
  const proxy = new Proxy(registry, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop === "lastGrant" || prop === "highestLimitInForceWh") {
        return async (meterId: string) => {
          const gate = gates.get(`${prop}:${meterId}`);
          if (gate !== undefined) {
            gates.delete(`${prop}:${meterId}`);
            gate.reached();
            await gate.released;
          }
          return (value as (m: string) => Promise<unknown>).call(target, meterId);
        };
      }
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    registry: proxy,
    hold(op, meterId) {
      let reached = (): void => undefined;
      let release = (): void => undefined;
      const reachedP = new Promise<void>((r) => (reached = r));
      gates.set(`${op}:${meterId}`, { reached, released: new Promise<void>((r) => (release = r)) });
      return { reached: reachedP, release: () => release() };
    },
  };
}

const prepaidOn = (w: Worker, registry: Registry = w.registry): PrepaidService =>
  createPrepaidService({ ledger: w.ledger, registry, log: silent, now, publishCommand: () => Promise.resolve() });

async function provision(registry: Registry, meters: readonly string[]): Promise<void> {
  await registry.addVillage({ villageId: "v1", name: "Village 1" });
  await registry.addTariff({ tariffId: "t1", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } });
  await registry.addGateway({ gatewayId: "gw-v1", villageId: "v1", secretHash: await hashSecret("gateway secret for the lock tests") });
  await registry.addHousehold({ householdId: "hh", villageId: "v1", name: "Li" });
  for (const meterId of meters) await registry.addMeter({ meterId, gatewayId: "gw-v1", householdId: "hh", tariffId: "t1", initialWh: 100_000 });
}

/** Commissions the meters (a first reading each), so grants can be sized from their registers. */
async function commission(prepaid: PrepaidService, meters: readonly string[]): Promise<void> {
  const at = new Date(T0).toISOString();
  const readings = meters.map((meterId) => ({ meterId, pointId: "importEnergy", role: "import_energy", registerSeq: 1, at, raw: { words: [0, 0], value: 100 }, energyWh: 100_000, conversion: { exact: true, droppedWh: 0 } }));
  await prepaid.onBilling({ v: 1, gatewayId: "gw-v1", seq: 1, sentAt: at, readings } as never, "gw-v1");
}

/** What the household's gateways may still draw, in fen, under the highest grant each may hold. */
async function creditInForceFen(w: Worker, meters: readonly string[]): Promise<number> {
  const tariffs = await w.registry.tariffSchedule("t1");
  let total = 0;
  for (const meterId of meters) {
    const limitWh = await w.registry.highestLimitInForceWh(meterId);
    const charge = await w.ledger.loadChargeState(meterId);
    if (limitWh !== undefined && charge !== undefined) total += outstandingGrantFen(limitWh, charge.state.lastRegisterWh, tariffs, now());
  }
  return total;
}

beforeEach(async () => {
  for (const w of opened.splice(0)) await w.close();
  url = await server.createDatabase("household_lock");
});
afterAll(async () => {
  for (const w of opened.splice(0)) await w.close();
});

describe("household locks on PostgreSQL", () => {
  it("keeps a holder on another worker waiting for the same household, and not for another one", async () => {
    const [a, b] = [await worker(), await worker()];
    const order: string[] = [];
    let releaseA = (): void => undefined;
    const aHolds = new Promise<void>((r) => (releaseA = r));
    let aStarted = (): void => undefined;
    const aStartedP = new Promise<void>((r) => (aStarted = r));
    const first = a.registry.withHouseholdLock("hh", async () => {
      order.push("a");
      aStarted();
      await aHolds;
    });
    await aStartedP;
    const other = b.registry.withHouseholdLock("hh-other", () => Promise.resolve(order.push("b other")));
    const same = b.registry.withHouseholdLock("hh", () => Promise.resolve(order.push("b same")));
    await other;
    await new Promise((r) => setTimeout(r, 100));
    expect(order).toEqual(["a", "b other"]);
    releaseA();
    await Promise.all([first, same]);
    expect(order).toEqual(["a", "b other", "b same"]);
  });

  it("makes a cash refund wait for a grant being sized from the balance before it, then refuses what that grant holds", async () => {
    const w = await worker();
    await provision(w.registry, ["pump"]);
    const audit: AuditLog = await openPostgresAuditLog({ connectionString: url, now });
    const requests: PaymentsStore = await openPostgresPaymentsStore({ connectionString: url, now });
    opened.push(audit, requests);
    const gate = gated(w.registry);
    const prepaid = prepaidOn(w, gate.registry);
    await commission(prepaid, ["pump"]);
    // A top-up recorded by another process (the CLI, a payment callback): its re-grant is about to run.
    await recordTopUp(w.ledger, w.registry, { householdId: "hh", amountFen: 10_000, officerId: "cli", receiptId: "r-1", atMs: now() });
    const held = gate.hold("lastGrant", "pump");
    const regrant = prepaid.regrantHousehold("hh", "top-up noticed");
    await held.reached;
    // The re-grant has read the balance (10,000 fen) and is on its way to store a grant sized from it.
    const money = createHouseholdMoney({ ledger: w.ledger, registry: w.registry, requests, audit, prepaid, now });
    const household = (await w.registry.getHousehold("hh"))!;
    const refund = money.apply(household, "refund-1", { kind: "refund", amountFen: 10_000, receiptId: "rf-1", reason: "cash back" }, "officer-1");
    await new Promise((r) => setTimeout(r, 150));
    expect(await w.ledger.balance(householdAccountId("hh"))).toBe(10_000);
    held.release();
    await regrant;
    await expect(refund).rejects.toMatchObject({ code: "PREPAID_REFUND_REFUSED" });
    const balanceFen = await w.ledger.balance(householdAccountId("hh"));
    expect(balanceFen).toBe(10_000);
    expect(await creditInForceFen(w, ["pump"])).toBeLessThanOrEqual(balanceFen);
  });

  it("lets two workers grant one two-meter household's balance only once between its meters", async () => {
    const meters = ["pump-1", "pump-2"];
    const [a, b] = [await worker(), await worker()];
    await provision(a.registry, meters);
    const gate = gated(a.registry);
    const prepaidA = prepaidOn(a, gate.registry);
    const prepaidB = prepaidOn(b);
    await commission(prepaidA, meters);
    // Worker A re-grants the household (billing); pump-1 is sized at balance 0, then A is held in pump-2's sizing
    // just before it reads pump-1's limit.
    const beforeLimit = gate.hold("highestLimitInForceWh", "pump-1");
    const afterBalance = gate.hold("lastGrant", "pump-2");
    const onA = prepaidA.regrantHousehold("hh", "billing");
    await beforeLimit.reached;
    // A top-up commits on worker B; A then reads pump-1's limit and the new balance, and is held again.
    await recordTopUp(b.ledger, b.registry, { householdId: "hh", amountFen: 10_000, officerId: "officer-1", receiptId: "r-1", atMs: now() });
    beforeLimit.release();
    await afterBalance.reached;
    // Worker B re-grants the household for its top-up meanwhile: without the lock it grants pump-1 the whole balance
    // while A, which read pump-1's old limit, is about to grant pump-2 the whole balance too.
    const onB = prepaidB.regrantHousehold("hh", "top-up");
    await new Promise((r) => setTimeout(r, 150));
    afterBalance.release();
    await Promise.all([onA, onB]);
    const balanceFen = await a.ledger.balance(householdAccountId("hh"));
    expect(balanceFen).toBe(10_000);
    expect(await creditInForceFen(a, meters)).toBeLessThanOrEqual(balanceFen);
  });
});
