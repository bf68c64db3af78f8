// startCloud in external-broker mode (mqtt.external) against Debian's mosquitto: no embedded broker is started, the
// cloud's ingest joins the shared subscription on mosquitto (which authenticates the gateway and applies its ACL),
// and a gateway's billing published to mosquitto is charged into the cloud's ledger; a replayed message is not.

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
import { energyCostFen } from "../../protocols/units.js";
import { startMosquitto, type RunningMosquitto } from "../edge/fixtures/mosquitto.js";
import { eventually } from "../harness/broker.js";

const GW = "ext-cloud-gw";
const METER = "ext-cloud-pump";
const HOUSEHOLD = "hh-ext";
const PRICE = 5283;
const INITIAL_WH = 100_000;
const PASSWORDS = { [GW]: "gw-pw", "cloud-worker": "cloud-pw" };

let dir: string;
let broker: RunningMosquitto;
let cloud: RunningCloud;
let gateway: MqttClient;

function billing(seq: number): string {
  const at = new Date(Date.UTC(2026, 5, 1) + seq * 60_000).toISOString();
  const reading = { meterId: METER, pointId: "importEnergy", role: "import_energy", registerSeq: seq, at, raw: { words: [0, seq], value: seq }, energyWh: INITIAL_WH + seq * 1000, conversion: { exact: true, droppedWh: 0 } };
  return JSON.stringify({ v: 1, gatewayId: GW, seq, sentAt: at, readings: [reading] });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "external-broker-cloud-"));
  broker = await startMosquitto({
    dir,
    users: PASSWORDS,
    acl: [`user ${GW}`, `topic write agri/v1/gw/${GW}/up/#`, `topic read agri/v1/gw/${GW}/down/#`, "user cloud-worker", "topic read agri/v1/gw/+/up/#", "topic write agri/v1/gw/+/down/#", ""].join("\n"),
  });
  cloud = await startCloud({
    dataDir: join(dir, "cloud"),
    mqtt: { host: "127.0.0.1", port: 0, external: { url: broker.url, username: "cloud-worker", password: PASSWORDS["cloud-worker"], sharedGroup: "cloud" } },
    log: pino({ level: process.env.EXT_LOG ?? "silent" }),
  });
  const { registry } = cloud;
  await registry.addVillage({ villageId: "v1", name: "Village" });
  await registry.addHousehold({ householdId: HOUSEHOLD, villageId: "v1", name: "Wang", overdraftFen: 0 });
  await registry.addGateway({ gatewayId: GW, villageId: "v1", secretHash: await hashSecret("checked by mosquitto, not here") });
  await registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: PRICE } });
  await registry.addMeter({ meterId: METER, gatewayId: GW, householdId: HOUSEHOLD, tariffId: "flat", initialWh: INITIAL_WH });
  await cloud.prepaid.topUp({ householdId: HOUSEHOLD, amountFen: 10_000, officerId: "o1", receiptId: "r1" });
  gateway = await mqtt.connectAsync(broker.url, { clientId: GW, username: GW, password: PASSWORDS[GW], reconnectPeriod: 200 });
}, 30_000);

afterAll(async () => {
  await gateway?.endAsync(true);
  await cloud?.stop();
  await broker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("startCloud with an external broker", () => {
  it("starts no embedded broker and serves the external one's address", () => {
    expect(cloud.broker).toBeUndefined();
    expect(cloud.mqttUrl).toBe(broker.url);
    expect(cloud.mqttPort).toBe(broker.port);
  });

  it("charges billing published to mosquitto, and a replayed message charges nothing twice", async () => {
    for (let seq = 1; seq <= 5; seq++) await gateway.publishAsync(formatTopic("billing", { gatewayId: GW }), billing(seq), { qos: 1 });
    // The network replaying seq 3.
    await gateway.publishAsync(formatTopic("billing", { gatewayId: GW }), billing(3), { qos: 1 });
    await eventually(() => cloud.ingest.counters.accepted + cloud.ingest.counters.duplicates === 6, 10_000, "all six deliveries handled");
    expect(cloud.ingest.counters.duplicates).toBe(1);
    expect((await cloud.ledger.loadChargeState(METER))?.state.lastRegisterWh).toBe(INITIAL_WH + 5000);
    expect(await cloud.ledger.balance(householdAccountId(HOUSEHOLD))).toBe(10_000 - energyCostFen(PRICE, 5000, "half-up").fen);
  });
});
