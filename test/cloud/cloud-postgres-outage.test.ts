// The cloud on PostgreSQL losing its database connections while gateways publish: every backend of the cloud's
// database is terminated (what a PostgreSQL restart or failover looks like from the client) again and again during a
// stream of billing messages. A message whose batch could not be stored is not acknowledged — the broker closes the
// gateway's connection and the gateway resends it — so when the stream ends every reading is charged exactly once, the
// pools have replaced their dead connections (a query that borrowed one before its notice arrived fails once), and the
// cloud serves on without a restart (invariant 8: nothing lost).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { startCloud, type RunningCloud } from "../../cloud/server.js";
import { formatTopic } from "../../protocols/mqtt/topics.js";
import { eventuallyAsync } from "../harness/broker.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";

const GW = "gw-outage";
const SECRET = "gateway outage secret";
const MESSAGES = 60;
const INITIAL_WH = 500_000;
/** ¥0.5283/kWh; 1 kWh per message. */
const PRICE = 5283;
const TOP_UP_FEN = 100_000;
const BASE_MS = Date.now() - 2 * 3600_000;

let server: PostgresServer;
let databaseUrl: string;
let dir: string;
let cloud: RunningCloud;
let gateway: MqttClient | undefined;
let terminated = 0;

function billing(seq: number): string {
  const at = new Date(BASE_MS + seq * 60_000).toISOString();
  const registerWh = INITIAL_WH + seq * 1_000;
  return JSON.stringify({
    v: 1,
    gatewayId: GW,
    seq,
    sentAt: at,
    readings: [{ meterId: "pump-outage", pointId: "importEnergy", role: "import_energy", registerSeq: seq, at, raw: { words: [0, 0], value: registerWh / 1000 }, energyWh: registerWh, conversion: { exact: true, droppedWh: 0 } }],
  });
}

/** Ends every other connection to the cloud's database, as a server restart would. */
async function terminateBackends(): Promise<number> {
  const database = new URL(databaseUrl).pathname.slice(1);
  const result = await server.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${database}' AND pid <> pg_backend_pid()`);
  return result.rowCount ?? 0;
}

beforeAll(async () => {
  server = await startPostgres();
  databaseUrl = await server.createDatabase("outage");
  dir = mkdtempSync(join(tmpdir(), "cloud-pg-outage-"));
  cloud = await startCloud({ dataDir: dir, databaseUrl, mqtt: { host: "127.0.0.1", port: 0 }, log: pino({ level: "silent" }), registryRefreshMs: 100, topUpPollMs: 100 });
  const { registry } = cloud;
  await registry.addVillage({ villageId: "v-outage", name: "断线村" });
  await registry.addHousehold({ householdId: "hh-outage", villageId: "v-outage", name: "陈德伯" });
  await registry.addGateway({ gatewayId: GW, villageId: "v-outage", secretHash: await hashSecret(SECRET) });
  await registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: PRICE } });
  await registry.addMeter({ meterId: "pump-outage", gatewayId: GW, householdId: "hh-outage", tariffId: "flat", initialWh: INITIAL_WH });
  await cloud.prepaid.topUp({ householdId: "hh-outage", amountFen: TOP_UP_FEN, officerId: "officer-1", receiptId: "R-outage" });
  await cloud.refreshRegistry();
}, 60_000);

afterAll(async () => {
  await gateway?.endAsync(true);
  await cloud?.stop();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the cloud on PostgreSQL while its connections are cut", () => {
  it("charges every reading exactly once though the database connections die during the stream", async () => {
    // The gateway resends what was not acknowledged whenever it reconnects (mqtt.js keeps it in its outgoing store).
    gateway = await mqtt.connectAsync(cloud.mqttUrl, { username: GW, password: SECRET, clientId: GW, protocolVersion: 4, clean: true, reconnectPeriod: 100 });
    gateway.on("error", () => undefined);
    let reconnects = 0;
    gateway.on("reconnect", () => reconnects++);
    const acknowledged: Promise<unknown>[] = [];
    for (let seq = 1; seq <= MESSAGES; seq++) {
      acknowledged.push(gateway.publishAsync(formatTopic("billing", { gatewayId: GW }), billing(seq), { qos: 1 }));
      if (seq % 10 === 5) {
        terminated += await terminateBackends();
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await Promise.all(acknowledged);
    // Connections were really cut under the cloud's work: batches failed, were not acknowledged, came back resent.
    expect(terminated).toBeGreaterThan(0);
    expect(cloud.ingest.counters.sinkErrors).toBeGreaterThan(0);
    expect(reconnects).toBeGreaterThan(0);
    expect(cloud.ingest.counters.received).toBeGreaterThan(MESSAGES);

    const last = INITIAL_WH + MESSAGES * 1_000;
    await eventuallyAsync(async () => ((await cloud.ledger.loadChargeState("pump-outage"))?.state.lastRegisterWh === last ? true : undefined), 20_000, "the last register charged");
    const chargedFen = TOP_UP_FEN - (await cloud.ledger.balance(householdAccountId("hh-outage")));
    // 60 kWh at ¥0.5283 = 3,169.8 fen: charged once, to within a fen (invariant 2), none twice, none lost.
    expect(Math.abs(chargedFen - (MESSAGES * PRICE) / 100)).toBeLessThanOrEqual(1);
  }, 60_000);

  it("serves on afterwards: the registry, the ledger and a new grant all answer from fresh connections", async () => {
    terminated += await terminateBackends();
    // A query that borrows a connection whose termination notice has not arrived yet fails once (pg cannot know);
    // the pool then replaces it. No restart of the cloud is needed.
    const meter = await eventuallyAsync(() => cloud.registry.getMeter("pump-outage").catch(() => undefined), 10_000, "the registry answering again");
    expect(meter).toMatchObject({ gatewayId: GW });
    await eventuallyAsync(() => cloud.ledger.balance(householdAccountId("hh-outage")).catch(() => undefined), 10_000, "the ledger answering again");
    const before = await cloud.registry.lastGrant("pump-outage");
    await cloud.prepaid.topUp({ householdId: "hh-outage", amountFen: 1_000, officerId: "officer-1", receiptId: "R-outage-2" });
    const after = await cloud.registry.lastGrant("pump-outage");
    expect(after?.grantSeq).toBeGreaterThan(before?.grantSeq ?? 0);
    expect(after?.limitWh).toBeGreaterThan(before?.limitWh ?? 0);
  });
});
