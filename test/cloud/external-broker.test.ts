// External-broker mode against Debian's mosquitto (ARCHITECTURE.md §3, "distributed when outgrown"): two cloud ingest
// workers, each with its own ledger and registry handles on ONE cloud database (as two processes would have), join
// the MQTT 5 shared subscription $share/cloud/agri/v1/gw/+/up/# on a mosquitto that does the authentication and the
// topic ACLs. Real gateways' billing is split between them and charged exactly once into the one ledger; when one
// worker dies mid-stream the other carries on with its share, and the dead one's unacknowledged messages wait in its
// persistent session until it is back (mosquitto 2.0 does not hand them to another member: see the last test).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { startIngest, type IngestSinks, type RunningIngest } from "../../cloud/ingest/ingest.js";
import { openSqliteLedger, type SqliteLedger } from "../../cloud/ledger/store/sqlite-ledger.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { createPrepaidService, type PrepaidService } from "../../cloud/prepaid/service.js";
import { openRegistry, type Registry } from "../../cloud/registry/registry.js";
import { formatTopic } from "../../protocols/mqtt/topics.js";
import { energyCostFen } from "../../protocols/units.js";
import { startMosquitto, type RunningMosquitto } from "../edge/fixtures/mosquitto.js";
import { eventually } from "../harness/broker.js";

const GATEWAYS = ["ext-gw-a", "ext-gw-b"] as const;
const METERS_PER_GATEWAY = 2;
const CLOUD_USER = "cloud-ingest";
const PASSWORDS: Record<string, string> = { "ext-gw-a": "pw-a", "ext-gw-b": "pw-b", [CLOUD_USER]: "pw-cloud" };
const PRICE = 5283;
const INITIAL_WH = 200_000;
const WH_PER_SEQ = 100;
const TOP_UP_FEN = 100_000;
const GROUP = "cloud";
const log = pino({ level: process.env.EXT_LOG ?? "silent" });

const meterIds = GATEWAYS.flatMap((gw) => Array.from({ length: METERS_PER_GATEWAY }, (_, k) => `${gw}-m${k}`));
const householdOf = (meterId: string): string => `hh-${meterId}`;

interface Worker {
  readonly ingest: RunningIngest;
  readonly prepaid: PrepaidService;
  stop(): Promise<void>;
}

let dir: string;
let dbPath: string;
let broker: RunningMosquitto;
let setup: { ledger: SqliteLedger; registry: Registry };
const gateways = new Map<string, MqttClient>();
let commandClient: MqttClient;
const workers: Worker[] = [];

async function startWorker(n: number): Promise<Worker> {
  const ledger = openSqliteLedger({ path: dbPath });
  const registry = openRegistry({ path: dbPath });
  const prepaid = createPrepaidService({
    ledger,
    registry,
    log,
    publishCommand: async (gatewayId, command) => {
      await commandClient.publishAsync(formatTopic("command", { gatewayId }), JSON.stringify(command), { qos: 1 });
    },
  });
  const ignored = (): void => undefined;
  const sinks: IngestSinks = {
    billing: (readings, gatewayId) => prepaid.onBilling(readings, gatewayId),
    billingBatch: (items) => prepaid.onBillingBatch(items),
    telemetry: ignored,
    events: ignored,
    alarm: ignored,
    birth: ignored,
    status: ignored,
    commandAck: (ack, gatewayId) => prepaid.onCommandAck(ack, gatewayId),
  };
  const ingest = await startIngest({
    url: broker.url,
    username: CLOUD_USER,
    password: PASSWORDS[CLOUD_USER] ?? "",
    clientId: `${CLOUD_USER}-${n}`,
    sharedGroup: GROUP,
    sinks,
    // One dedupe file for the group: a gateway's seqs are split between the workers.
    dedupePath: join(dir, "ingest-dedupe.db"),
    log,
    retryDelayMs: 200,
  });
  return {
    ingest,
    prepaid,
    stop: async () => {
      await ingest.stop();
      await prepaid.idle();
      await ledger.close();
      await registry.close();
    },
  };
}

function billing(gatewayId: string, seq: number): string {
  const at = new Date(Date.UTC(2026, 5, 1) + seq * 60_000).toISOString();
  const readings = Array.from({ length: METERS_PER_GATEWAY }, (_, k) => ({
    meterId: `${gatewayId}-m${k}`,
    pointId: "importEnergy",
    role: "import_energy",
    registerSeq: seq,
    at,
    raw: { words: [0, seq], value: seq },
    energyWh: INITIAL_WH + seq * WH_PER_SEQ,
    conversion: { exact: true, droppedWh: 0 },
  }));
  return JSON.stringify({ v: 1, gatewayId, seq, sentAt: at, readings });
}

async function publishSeqs(fromSeq: number, toSeq: number, afterEach?: (seq: number) => Promise<void>): Promise<void> {
  for (let seq = fromSeq; seq <= toSeq; seq++) {
    await Promise.all(
      GATEWAYS.map(async (gw) => {
        const client = gateways.get(gw);
        if (client === undefined) throw new Error(`gateway ${gw} is not connected`);
        await client.publishAsync(formatTopic("billing", { gatewayId: gw }), billing(gw, seq), { qos: 1 });
      }),
    );
    await afterEach?.(seq);
  }
}

async function chargedRegisterWh(meterId: string): Promise<number | undefined> {
  return (await setup.ledger.loadChargeState(meterId))?.state.lastRegisterWh;
}

async function allChargedTo(seq: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const registers = await Promise.all(meterIds.map(chargedRegisterWh));
    if (registers.every((r) => r === INITIAL_WH + seq * WH_PER_SEQ)) return;
    if (Date.now() > deadline) throw new Error(`meters charged to ${JSON.stringify(registers)}, expected ${INITIAL_WH + seq * WH_PER_SEQ}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every household's balance is its top-up minus exactly the price of the energy its meter used, to the fen. */
async function expectExactCharges(seq: number): Promise<void> {
  const chargedFen = energyCostFen(PRICE, seq * WH_PER_SEQ, "half-up").fen;
  for (const meterId of meterIds) expect(await setup.ledger.balance(householdAccountId(householdOf(meterId)))).toBe(TOP_UP_FEN - chargedFen);
}

const accepted = (): number => workers.reduce((sum, w) => sum + w.ingest.counters.accepted, 0);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "external-broker-"));
  dbPath = join(dir, "cloud.db");
  broker = await startMosquitto({
    dir,
    users: PASSWORDS,
    acl: [
      ...GATEWAYS.flatMap((gw) => [`user ${gw}`, `topic write agri/v1/gw/${gw}/up/#`, `topic read agri/v1/gw/${gw}/down/#`]),
      `user ${CLOUD_USER}`,
      "topic read agri/v1/gw/+/up/#",
      "topic write agri/v1/gw/+/down/#",
      "",
    ].join("\n"),
  });
  setup = { ledger: openSqliteLedger({ path: dbPath }), registry: openRegistry({ path: dbPath }) };
  const { registry } = setup;
  const hash = await hashSecret("unused-here: mosquitto authenticates");
  await registry.addVillage({ villageId: "v1", name: "Village" });
  await registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: PRICE } });
  for (const gw of GATEWAYS) await registry.addGateway({ gatewayId: gw, villageId: "v1", secretHash: hash });
  for (const meterId of meterIds) {
    await registry.addHousehold({ householdId: householdOf(meterId), villageId: "v1", name: meterId, overdraftFen: 0 });
    await registry.addMeter({ meterId, gatewayId: meterId.slice(0, meterId.lastIndexOf("-")), householdId: householdOf(meterId), tariffId: "flat", initialWh: INITIAL_WH });
  }
  commandClient = await mqtt.connectAsync(broker.url, { clientId: "cloud-command", username: CLOUD_USER, password: PASSWORDS[CLOUD_USER] ?? "", reconnectPeriod: 200 });
  const topUps = createPrepaidService({ ledger: setup.ledger, registry, log, publishCommand: () => Promise.resolve() });
  for (const meterId of meterIds) await topUps.topUp({ householdId: householdOf(meterId), amountFen: TOP_UP_FEN, officerId: "o1", receiptId: "r1" });
  for (const gw of GATEWAYS) {
    const client = await mqtt.connectAsync(broker.url, { clientId: gw, username: gw, password: PASSWORDS[gw] ?? "", reconnectPeriod: 200 });
    client.on("error", () => undefined);
    gateways.set(gw, client);
  }
  workers.push(await startWorker(1), await startWorker(2));
}, 30_000);

afterAll(async () => {
  for (const w of workers) await w.stop();
  for (const c of gateways.values()) await c.endAsync(true);
  await commandClient?.endAsync(true);
  await setup?.ledger.close();
  await setup?.registry.close();
  await broker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("ingest workers sharing one subscription on Debian's mosquitto", () => {
  it("refuses a shared-subscription group name with MQTT wildcards in it", async () => {
    await expect(startIngest({ url: broker.url, username: CLOUD_USER, password: "x", sharedGroup: "a/+", sinks: {} as IngestSinks, dedupePath: join(dir, "never.db"), log })).rejects.toThrow(/sharedGroup/);
  });

  it("splits the gateways' billing between two workers and charges each reading once into one ledger", async () => {
    await publishSeqs(1, 100);
    await allChargedTo(100, 30_000);
    const [w1, w2] = workers;
    // Both took part: mosquitto hands each message of the group to one member in turn.
    expect(w1?.ingest.counters.accepted).toBeGreaterThan(0);
    expect(w2?.ingest.counters.accepted).toBeGreaterThan(0);
    // Each of the 200 messages was stored by exactly one of them, once.
    await eventually(() => accepted() === 200, 10_000, "200 messages accepted across the group");
    await expectExactCharges(100);
  });

  it("goes on through the survivor when a worker dies mid-stream, and loses nothing once the dead one is back", async () => {
    const dead = workers[0] as Worker;
    const survivor = workers[1] as Worker;
    const survivorBefore = survivor.ingest.counters.accepted;
    // Killed with messages in flight: its unacknowledged ones stay in its persistent session on the broker.
    let acceptedByDead = 0;
    await publishSeqs(101, 200, async (seq) => {
      if (seq !== 130) return;
      await dead.stop();
      acceptedByDead = dead.ingest.counters.accepted;
    });
    // The survivor carries on with its share (and all the charging it implies) while the other is down.
    await eventually(() => survivor.ingest.counters.accepted - survivorBefore >= 70, 20_000, "the survivor to keep ingesting");
    // The dead worker comes back under its client id, resumes its session, and what waited there is stored: every
    // meter reaches its last register, charged to the fen, nothing twice.
    const back = await startWorker(1);
    workers[0] = back;
    await allChargedTo(200, 30_000);
    await expectExactCharges(200);
    // mosquitto 2.0 kept the dead member's share in its session (it queues for an offline persistent member and
    // never re-dispatches to another one), so the one that came back had work waiting…
    await eventually(() => back.ingest.counters.accepted + back.ingest.counters.duplicates > 0, 10_000, "the resumed session to deliver");
    // …and across the three incarnations every one of the 400 messages was stored exactly once.
    await eventually(() => acceptedByDead + survivor.ingest.counters.accepted + back.ingest.counters.accepted === 400, 10_000, "all 400 messages stored once");
  });
});
