// Prepaid end to end through real parts: the simulator (one DDS238 meter with its own relay and a constant 3.6 kW
// pump, 60× speed) → the edge agent over Modbus TCP → startCloud (its authenticated broker, the ingest, the ledger,
// the prepaid service). A farmer tops up in cash, the grant closes the relay, billing readings charge the household
// to the fen, the relay opens when the credit is spent (never below −overdraft), and another top-up closes it again.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Field } from "../../firmware-sim/field.js";
import type { MeterModel } from "../../firmware-sim/models/meter.js";
import { EdgeRunner } from "../../edge/agent/runner.js";
import { parseEdgeConfig } from "../../edge/config/load.js";
import { energyCostFen } from "../../protocols/units.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { startCloud, type RunningCloud } from "../../cloud/server.js";
import { eventually, eventuallyAsync } from "../harness/broker.js";
import { settleWithin, startField, type RunningField } from "../harness/programs.js";

const GW = "prepaid-gw-1";
const METER = "pump-li";
const HOUSEHOLD = "hh-li";
const PRICE = 5283; // ¥0.5283/kWh in centi-fen per kWh
const INITIAL_WH = 500_000;
// The overdraft only absorbs the overshoot of the cut (one poll of pumping), which the grant holds back as its
// cut reserve: so a household with no money gets no energy, and one that spends it all never goes below −5 fen.
const OVERDRAFT_FEN = 5;
const CUT_RESERVE_FEN = 5;

let sim: RunningField;
let field: Field;
let cloud: RunningCloud;
let runner: EdgeRunner;
let dir: string;

const meter = (): MeterModel => field.requireDevice(METER) as MeterModel;
const balance = (): Promise<number> => cloud.ledger.balance(householdAccountId(HOUSEHOLD));

async function chargedRegisterWh(): Promise<number | undefined> {
  return (await cloud.ledger.loadChargeState(METER))?.state.lastRegisterWh;
}

async function chargesFen(): Promise<number> {
  const statement = await cloud.ledger.statement(householdAccountId(HOUSEHOLD), 0, Number.MAX_SAFE_INTEGER);
  return -statement.entries.filter((e) => e.kind === "charge").reduce((sum, e) => sum + e.amountFen, 0);
}

/** Waits until the cloud has charged the register the (now still) meter shows. */
async function settled(): Promise<number> {
  return eventuallyAsync(
    async () => {
      // The DDS238 register counts in 0.01 kWh; the model's own counter is finer.
      const register = Math.floor(meter().importRegisterWh / 10) * 10;
      return (await chargedRegisterWh()) === register ? register : undefined;
    },
    15_000,
    "billing to catch up with the meter",
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "prepaid-e2e-"));
  sim = await startField(
    {
      name: "prepaid-e2e",
      clock: { speed: 60, tickMs: 50 },
      buses: [{ id: "field", tcp: { port: 0 } }],
      devices: [{ id: METER, bus: "field", unit: 3, profile: "hiking-dds238-2-zn", meter: { loads: [{ kind: "constant", watts: 3600 }], initialImportWh: INITIAL_WH, relayClosed: false } }],
    },
    { autoTick: true },
  );
  field = sim.field;
  const log = pino({ level: process.env.E2E_LOG ?? "silent" });
  cloud = await startCloud({ dataDir: join(dir, "cloud"), mqtt: { host: "127.0.0.1", port: 0 }, log, cutReserveFen: CUT_RESERVE_FEN, topUpPollMs: 200 });
  const { registry } = cloud;
  await registry.addVillage({ villageId: "hongmiao", name: "Hongmiao" });
  await registry.addHousehold({ householdId: HOUSEHOLD, villageId: "hongmiao", name: "Li", overdraftFen: OVERDRAFT_FEN });
  await registry.addGateway({ gatewayId: GW, villageId: "hongmiao", secretHash: await hashSecret("gw-secret-e2e") });
  await registry.addTariff({ tariffId: "agri-flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: PRICE } });
  await registry.addMeter({ meterId: METER, gatewayId: GW, householdId: HOUSEHOLD, tariffId: "agri-flat", initialWh: INITIAL_WH });
  await cloud.refreshRegistry();

  const config = parseEdgeConfig({
    gateway: { id: GW, password: "gw-secret-e2e" },
    broker: { url: cloud.mqttUrl, reconnectMinMs: 200, reconnectMaxMs: 1000 },
    buses: [{ id: "field", tcp: { host: "127.0.0.1", port: sim.tcpPort("field") }, timeoutMs: 300 }],
    devices: [{ id: METER, bus: "field", unit: 3, profile: "hiking-dds238-2-zn", role: "meter", pollIntervalMs: 200, supply: { cut: { kind: "meter-relay" }, noGrantPolicy: "open", warnAtWh: [100, 30] } }],
    outbox: { path: join(dir, "outbox.db") },
    statePath: join(dir, "state.db"),
    telemetry: { intervalMs: 1000, billingIntervalMs: 1000 },
    status: { port: 0 },
  });
  runner = new EdgeRunner(config, { log, version: "0.1.0" });
  await runner.start();
}, 30_000);

afterAll(async () => {
  // Bounded: after the broker refused the gateway mid-session (the last test), the edge's graceful stop can wait
  // for ever on mqtt.js's end() (reported to the edge owner); the cloud and the simulator must still be stopped.
  await settleWithin(runner?.stop() ?? Promise.resolve(), 5_000, "EdgeRunner.stop()");
  await cloud?.stop();
  await sim?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("prepaid end to end: simulator → edge → cloud", () => {
  it("authenticates the gateway and charges nothing while no credit was granted", async () => {
    await eventually(async () => (await cloud.registry.gatewayStatus(GW))?.state === "online", 10_000, "gateway online");
    await eventuallyAsync(async () => (await chargedRegisterWh()) === INITIAL_WH, 10_000, "first billing reading charged");
    expect(await balance()).toBe(0);
    // A first grant that gives nothing: the limit is the register itself.
    await eventually(async () => (await cloud.registry.lastGrant(METER))?.ackStatus === "done", 10_000, "zero grant acknowledged");
    expect(await cloud.registry.lastGrant(METER)).toMatchObject({ grantSeq: 1, limitWh: INITIAL_WH });
    expect(meter().relayClosed).toBe(false);
  });

  it("grants credit on a cash top-up, closes the relay and runs the pump", async () => {
    const result = await cloud.prepaid.topUp({ householdId: HOUSEHOLD, amountFen: 30, officerId: "officer-wu", receiptId: "r-0001" });
    expect(result).toMatchObject({ duplicate: false, balanceFen: 30 });
    const grant = await cloud.registry.lastGrant(METER);
    // spendable = 30 + 5 overdraft − 5 cut reserve = 30 fen → floor(30 × 10^5 / 5283) Wh above the register.
    expect(grant).toMatchObject({ grantSeq: 2, limitWh: INITIAL_WH + Math.floor((30 * 100_000) / PRICE) });
    await eventually(async () => (await cloud.registry.lastGrant(METER))?.ackStatus === "done", 10_000, "grant acknowledged done");
    await eventually(() => meter().relayClosed, 10_000, "relay closed");
    await eventually(() => meter().importRegisterWh > INITIAL_WH + 50, 10_000, "pump running");
  });

  it("a replayed top-up receipt posts nothing twice", async () => {
    const statement = await cloud.ledger.statement(householdAccountId(HOUSEHOLD), 0, Number.MAX_SAFE_INTEGER);
    const first = statement.entries.find((e) => e.kind === "top-up");
    expect(first).toBeDefined();
    await expect(
      cloud.prepaid.topUp({ householdId: HOUSEHOLD, amountFen: 30, officerId: "officer-wu", receiptId: "r-0001", atMs: first?.atMs ?? 0 }),
    ).resolves.toMatchObject({ duplicate: true });
  });

  it("charges the household to the fen and opens the relay when the credit is spent", async () => {
    await eventually(() => !meter().relayClosed, 30_000, "relay opened for exhausted credit");
    const register = await settled();
    const energyWh = register - INITIAL_WH;
    const charged = await chargesFen();
    expect(Math.abs(charged - energyCostFen(PRICE, energyWh, "half-up").fen)).toBeLessThanOrEqual(1);
    expect(await balance()).toBe(30 - charged);
    expect(await balance()).toBeGreaterThanOrEqual(-OVERDRAFT_FEN);
    // The cut happened at the grant's limit, give or take one poll of a 216 kW-equivalent (60×) draw.
    const grant = await cloud.registry.lastGrant(METER);
    expect(register).toBeGreaterThanOrEqual(grant?.limitWh ?? Infinity);
    expect(register - (grant?.limitWh ?? 0)).toBeLessThan(100);
  }, 60_000);

  it("closes the relay again on another top-up and cuts again at the new limit", async () => {
    const before = (await cloud.registry.lastGrant(METER))?.grantSeq ?? 0;
    await cloud.prepaid.topUp({ householdId: HOUSEHOLD, amountFen: 20, officerId: "officer-wu", receiptId: "r-0002" });
    expect((await cloud.registry.lastGrant(METER))?.grantSeq).toBeGreaterThan(before);
    await eventually(() => meter().relayClosed, 10_000, "relay closed again");
    await eventually(() => !meter().relayClosed, 30_000, "relay opened again");
    const register = await settled();
    const charged = await chargesFen();
    expect(Math.abs(charged - energyCostFen(PRICE, register - INITIAL_WH, "half-up").fen)).toBeLessThanOrEqual(1);
    expect(await balance()).toBe(50 - charged);
    expect(await balance()).toBeGreaterThanOrEqual(-OVERDRAFT_FEN);
    // Revenue got exactly what the household paid.
    expect(await cloud.ledger.balance("village:hongmiao:revenue-electricity")).toBe(charged);
  }, 60_000);

  it("cuts at the limit while the gateway is cut off from the broker, and charges the backlog exactly once it is back", async () => {
    await cloud.prepaid.topUp({ householdId: HOUSEHOLD, amountFen: 20, officerId: "officer-wu", receiptId: "r-0003" });
    const grant = await cloud.registry.lastGrant(METER);
    await eventually(() => meter().relayClosed, 10_000, "relay closed for the third top-up");
    // Disabling the gateway makes the broker refuse its next publish (closing the connection) and every reconnect.
    await cloud.registry.setGatewayEnabled(GW, false);
    await cloud.refreshRegistry();
    await eventually(() => !meter().relayClosed, 30_000, "relay opened by the edge while offline");
    const cutAt = Math.floor(meter().importRegisterWh / 10) * 10;
    expect(cutAt).toBeGreaterThanOrEqual(grant?.limitWh ?? Infinity);
    expect((await chargedRegisterWh()) ?? 0).toBeLessThan(cutAt);
    await cloud.registry.setGatewayEnabled(GW, true);
    await cloud.refreshRegistry();
    const register = await settled();
    const charged = await chargesFen();
    expect(Math.abs(charged - energyCostFen(PRICE, register - INITIAL_WH, "half-up").fen)).toBeLessThanOrEqual(1);
    expect(await balance()).toBe(70 - charged);
    expect(await balance()).toBeGreaterThanOrEqual(-OVERDRAFT_FEN);
  }, 60_000);

  it("stores the gateway's telemetry in the embedded telemetry store", async () => {
    await cloud.telemetry.flush({ timeoutMs: 5_000 });
    expect(cloud.telemetry.stats().written).toBeGreaterThan(0);
  });
});
