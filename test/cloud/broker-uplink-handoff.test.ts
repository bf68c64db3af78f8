// The embedded broker hands each gateway uplink to the ingest from aedes's authorizePublish hook and completes the
// PUBLISH — PUBACK to the gateway, forwarding to subscribers — only once the ingest has committed it (invariant 8).
// Real aedes (startBroker with the registry policy), real mqtt.js gateways, the real embedded ingest (pipeline,
// dedupe file) and a billing sink that writes to a real SQLite file and can be held shut by the test.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import mqtt, { type MqttClient } from "mqtt";
import { pino } from "pino";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startBroker, type RunningBroker } from "../../cloud/broker/broker.js";
import type { RegistrySnapshot } from "../../cloud/broker/policy.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { startEmbeddedIngest, type EmbeddedIngest } from "../../cloud/ingest/embedded.js";
import type { BillingItem, IngestSinks } from "../../cloud/ingest/pipeline.js";
import { INGEST_REJECT } from "../../cloud/ingest/route.js";
import { formatTopic } from "../../protocols/mqtt/topics.js";
import { eventually } from "../harness/broker.js";

const SECRET = "handoff-secret";
const TAP = "tap-ingest";
const GATEWAYS = ["gw-a", "gw-b", "gw-c", "gw-d"] as const;
const ALARM_GW = "gw-fire";
const silent = pino({ level: process.env.INGEST_LOG ?? "silent" });

let registry: RegistrySnapshot;
beforeAll(async () => {
  const hash = await hashSecret(SECRET);
  registry = {
    gateways: new Map([...GATEWAYS, ALARM_GW].map((id) => [id, { secretHash: hash, enabled: true }])),
    cloudClients: new Map([[TAP, { secretHash: hash, role: "ingest" as const }]]),
  };
});

/** A billing sink over a real SQLite file that the test can hold shut, or make fail. */
class LedgerSink implements IngestSinks {
  readonly db: Database.Database;
  private readonly insert: Database.Statement<[string, number, number]>;
  /** Set while the test holds the sink shut. */
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  failing = false;
  /** Calls of billingBatch so far (entered, not necessarily finished). */
  entered = 0;
  /** What happened, in order: "stored gw/seq" here, "puback gw/seq" from the tests. */
  readonly happened: string[] = [];

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.exec("CREATE TABLE IF NOT EXISTS readings (gateway_id TEXT NOT NULL, seq INTEGER NOT NULL, energy_wh INTEGER NOT NULL)");
    this.insert = this.db.prepare("INSERT INTO readings (gateway_id, seq, energy_wh) VALUES (?, ?, ?)");
  }

  hold(): void {
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  release(): void {
    this.openGate?.();
    this.gate = undefined;
  }

  rows(gatewayId: string, seq: number): number {
    return (this.db.prepare<[string, number], { n: number }>("SELECT COUNT(*) AS n FROM readings WHERE gateway_id = ? AND seq = ?").get(gatewayId, seq)?.n ?? 0);
  }

  async billingBatch(items: readonly BillingItem[]): Promise<readonly (Error | null)[]> {
    this.entered++;
    if (this.gate !== undefined) await this.gate;
    if (this.failing) throw new Error("ledger unavailable");
    this.db.transaction(() => {
      for (const { readings, gatewayId } of items) this.insert.run(gatewayId, readings.seq, readings.readings[0]?.energyWh ?? 0);
    })();
    for (const { readings, gatewayId } of items) this.happened.push(`stored ${gatewayId}/${readings.seq}`);
    return items.map(() => null);
  }
  billing(): void {
    throw new Error("billingBatch is used");
  }
  telemetry(): void {}
  events(): void {}
  alarm(): void {}
  birth(): void {}
  status(): void {}
  commandAck(): void {}
}

function billing(gatewayId: string, seq: number): string {
  const energyWh = 1_000_000 + seq * 1000;
  return JSON.stringify({
    v: 1,
    gatewayId,
    seq,
    sentAt: new Date(Date.UTC(2026, 5, 1) + seq * 60_000).toISOString(),
    readings: [
      {
        meterId: `${gatewayId}-m0`,
        unitId: 1,
        pointId: "importEnergy",
        role: "import_energy",
        registerSeq: seq,
        at: new Date(Date.UTC(2026, 5, 1) + seq * 60_000).toISOString(),
        raw: { words: [Math.floor(energyWh / 10 / 65536), Math.floor(energyWh / 10) % 65536], value: energyWh / 1000 },
        energyWh,
        conversion: { exact: true, droppedWh: 0 },
      },
    ],
  });
}

const billingTopic = (gatewayId: string): string => `agri/v1/gw/${gatewayId}/up/billing`;

let dir: string;
let broker: RunningBroker;
let ingest: EmbeddedIngest;
let sink: LedgerSink;
const clients: MqttClient[] = [];

async function start(batch?: { maxMessages: number; maxPendingMessages: number; lingerMs: number }): Promise<void> {
  sink = new LedgerSink(join(dir, "ledger.db"));
  broker = await startBroker({
    host: "127.0.0.1",
    port: 0,
    registry: () => registry,
    maxPacketBytes: 64 * 1024,
    maxConnectionsPerIpPerMinute: 10_000,
    log: silent,
    handOffUplinks: true,
    boundedSessions: { maxMessages: 5, appliesTo: (id) => !registry.gateways.has(id) },
  });
  ingest = startEmbeddedIngest({ sinks: sink, dedupePath: join(dir, "dedupe.db"), log: silent, ...(batch === undefined ? {} : { batch }) });
  broker.attachUplinks((uplink, done) => ingest.handle(uplink, done));
}

/** A gateway as mqtt.js with a persistent session: it resends its unacknowledged QoS 1 publishes when it reconnects. */
async function gateway(id: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: id, username: id, password: SECRET, clean: false, protocolVersion: 4, reconnectPeriod: 100 });
  clients.push(client);
  return client;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "broker-handoff-"));
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true);
  sink?.release();
  await ingest?.stop();
  await broker?.close();
  sink?.db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the embedded broker hands gateway uplinks to the ingest", () => {
  it("does not acknowledge a gateway's publish until its reading is committed", async () => {
    await start();
    sink.hold();
    const gw = await gateway("gw-a");
    let acked = false;
    const published = gw.publishAsync(billingTopic("gw-a"), billing("gw-a", 1), { qos: 1 }).then(() => {
      acked = true;
      sink.happened.push("puback gw-a/1");
    });
    await eventually(() => sink.entered === 1, 10_000, "the sink to receive the reading");
    // A full round trip through the same broker on another connection (a SUBSCRIBE, which does not queue behind the
    // held batch): the broker is answering, yet gw-a still has no PUBACK while its reading waits in the sink.
    const other = await gateway("gw-b");
    await other.subscribeAsync(formatTopic("command", { gatewayId: "gw-b" }), { qos: 1 });
    expect(acked).toBe(false);
    expect(sink.rows("gw-a", 1)).toBe(0);

    sink.release();
    await published;
    expect(sink.rows("gw-a", 1)).toBe(1);
    expect(sink.happened).toEqual(["stored gw-a/1", "puback gw-a/1"]);
  });

  it("commits the publishes of many gateways waiting on one batch together", async () => {
    await start({ maxMessages: 1000, maxPendingMessages: 2000, lingerMs: 8 });
    sink.hold();
    const gws = await Promise.all(GATEWAYS.map((id) => gateway(id)));
    const published = gws.flatMap((gw, g) => Array.from({ length: 10 }, (_, k) => gw.publishAsync(billingTopic(GATEWAYS[g] as string), billing(GATEWAYS[g] as string, k + 1), { qos: 1 })));
    await eventually(() => sink.entered === 1 && ingest.pending === 40, 10_000, "every publish handed over while the first batch is held");
    sink.release();
    await Promise.all(published);
    for (const id of GATEWAYS) for (let seq = 1; seq <= 10; seq++) expect(sink.rows(id, seq)).toBe(1);
    // 40 publishes, one PUBACK each, from far fewer commits.
    expect(ingest.counters.batches).toBeLessThanOrEqual(3);
    expect(ingest.counters.accepted).toBe(40);
  });

  it("acknowledges an invalid uplink, counts it and stores nothing, as the subscribing ingest does", async () => {
    await start();
    const gw = await gateway("gw-a");
    await gw.publishAsync(billingTopic("gw-a"), JSON.stringify({ v: 1, gatewayId: "gw-a", seq: 1, readings: "not a list" }), { qos: 1 });
    expect(ingest.counters.rejected[INGEST_REJECT.INVALID_PAYLOAD]).toBe(1);
    expect(sink.rows("gw-a", 1)).toBe(0);
    expect(broker.counters.uplinksRefused).toBe(0);
  });

  it("acknowledges a gateway's publishes in the order it sent them, an invalid one among them (MQTT-4.6.0-2)", async () => {
    await start();
    const gw = await gateway("gw-a");
    const order: string[] = [];
    gw.stream.cork();
    const published = [
      gw.publishAsync(billingTopic("gw-a"), billing("gw-a", 1), { qos: 1 }).then(() => order.push("billing 1")),
      gw.publishAsync(billingTopic("gw-a"), "{ not json", { qos: 1 }).then(() => order.push("invalid")),
      gw.publishAsync(billingTopic("gw-a"), billing("gw-a", 2), { qos: 1 }).then(() => order.push("billing 2")),
    ];
    process.nextTick(() => gw.stream.uncork());
    await Promise.all(published);
    expect(order).toEqual(["billing 1", "invalid", "billing 2"]);
    expect(ingest.counters.rejected[INGEST_REJECT.NOT_JSON]).toBe(1);
  });

  it("closes the connection without a PUBACK when the sink fails, and stores the resend once after the failure clears", async () => {
    await start();
    sink.failing = true;
    const gw = await gateway("gw-a");
    let acked = false;
    const closed = new Promise<void>((resolve) => gw.once("close", () => resolve()));
    const published = gw.publishAsync(billingTopic("gw-a"), billing("gw-a", 7), { qos: 1 }).then(() => {
      acked = true;
    });
    await closed;
    expect(acked).toBe(false);
    expect(broker.counters.uplinksRefused).toBeGreaterThanOrEqual(1);
    expect(ingest.counters.sinkErrors).toBeGreaterThanOrEqual(1);

    sink.failing = false;
    // mqtt.js reconnects with the same session and resends the unacknowledged publish.
    await published;
    expect(sink.rows("gw-a", 7)).toBe(1);
  });

  it("refuses unprocessed what a gateway sent behind a failed uplink, so its backlog does not skip ahead", async () => {
    // One message per batch, so the second waits in the queue while the first is in the sink.
    await start({ maxMessages: 1, maxPendingMessages: 2, lingerMs: 1 });
    sink.failing = true;
    sink.hold();
    const gw = await gateway("gw-a");
    // Both in one TCP segment: aedes hands over the publishes of one socket read together, and reads no more from
    // that socket until all of them are answered.
    gw.stream.cork();
    const first = gw.publishAsync(billingTopic("gw-a"), billing("gw-a", 1), { qos: 1 });
    const second = gw.publishAsync(billingTopic("gw-a"), billing("gw-a", 2), { qos: 1 });
    process.nextTick(() => gw.stream.uncork());
    await eventually(() => sink.entered === 1 && ingest.pending === 2, 10_000, "the second reading queued behind the first, held in the sink");
    const heldBefore = ingest.counters.held;
    sink.release();
    await eventually(() => ingest.counters.held > heldBefore, 10_000, "the second reading refused unprocessed");
    expect(sink.rows("gw-a", 2)).toBe(0);
    sink.failing = false;
    await Promise.all([first, second]);
    expect(sink.rows("gw-a", 1)).toBe(1);
    expect(sink.rows("gw-a", 2)).toBe(1);
  });

  it("refuses an MQTT 5 gateway, so no PUBACK can carry a failure reason code the edge might take for success", async () => {
    await start();
    // aedes 1.2 speaks MQTT 3.1.1 only: CONNACK 0x01, unacceptable protocol version (MQTT 3.1.1 §3.2.2.3).
    await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: "gw-a", username: "gw-a", password: SECRET, protocolVersion: 5, reconnectPeriod: 0 })).rejects.toThrow();
    expect(broker.counters.connections).toBe(0);
  });

  it("forwards an uplink to a subscriber only once it is committed", async () => {
    await start();
    const tap = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: TAP, username: TAP, password: SECRET, clean: true, protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(tap);
    await tap.subscribeAsync("agri/v1/gw/+/up/#", { qos: 1 });
    const seen: number[] = [];
    tap.on("message", (_topic, payload) => seen.push((JSON.parse(payload.toString()) as { seq: number }).seq));
    sink.hold();
    const gw = await gateway("gw-a");
    const published = gw.publishAsync(billingTopic("gw-a"), billing("gw-a", 3), { qos: 1 });
    await eventually(() => sink.entered === 1, 10_000, "the sink to receive the reading");
    const other = await gateway("gw-b");
    await other.subscribeAsync(formatTopic("command", { gatewayId: "gw-b" }), { qos: 1 });
    expect(seen).toEqual([]);
    sink.release();
    await published;
    await eventually(() => seen.length === 1, 10_000, "the tap to get the committed uplink");
    expect(seen).toEqual([3]);
  });

  it("drops, beyond its bound, the copies for a persistent tap that went away, and keeps acknowledging the gateways", async () => {
    await start();
    const tap = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { clientId: TAP, username: TAP, password: SECRET, clean: false, protocolVersion: 4, reconnectPeriod: 0 });
    await tap.subscribeAsync("agri/v1/gw/+/up/#", { qos: 1 });
    await tap.endAsync(true);
    const gw = await gateway("gw-a");
    for (let seq = 1; seq <= 12; seq++) await gw.publishAsync(billingTopic("gw-a"), billing("gw-a", seq), { qos: 1 });
    expect(ingest.counters.accepted).toBe(12);
    // aedes forwards a publish just after its PUBACK, so the last copy may still be on its way.
    await eventually(() => broker.sessionQueues?.dropped() === 7, 10_000, "the copies beyond the bound dropped");
    expect(broker.sessionQueues?.queued(TAP)).toBe(5);
  });

  it("keeps at most maxPendingMessages in the ingest while the sink is held, the rest waiting unacknowledged", async () => {
    await start({ maxMessages: 4, maxPendingMessages: 8, lingerMs: 1 });
    sink.hold();
    const gws = await Promise.all(GATEWAYS.map((id) => gateway(id)));
    let acked = 0;
    const published = gws.flatMap((gw, g) =>
      Array.from({ length: 10 }, (_, k) => gw.publishAsync(billingTopic(GATEWAYS[g] as string), billing(GATEWAYS[g] as string, k + 1), { qos: 1 }).then(() => acked++)),
    );
    await eventually(() => ingest.pending === 8 && ingest.waiting > 0, 10_000, "the ingest queue full and publishes waiting");
    expect(acked).toBe(0);
    sink.release();
    await Promise.all(published);
    expect(ingest.maxPendingSeen).toBe(8);
    for (const id of GATEWAYS) for (let seq = 1; seq <= 10; seq++) expect(sink.rows(id, seq)).toBe(1);
  });

  it("takes a fire alarm into the ingest while its queue is full, ahead of the other gateways' waiting backlog", async () => {
    await start({ maxMessages: 4, maxPendingMessages: 8, lingerMs: 1 });
    sink.hold();
    const gws = await Promise.all(GATEWAYS.map((id) => gateway(id)));
    const published = gws.flatMap((gw, g) => Array.from({ length: 10 }, (_, k) => gw.publishAsync(billingTopic(GATEWAYS[g] as string), billing(GATEWAYS[g] as string, k + 1), { qos: 1 })));
    await eventually(() => ingest.pending === 8 && ingest.waiting > 0, 10_000, "the ingest queue full and publishes waiting");
    const waitingBefore = ingest.waiting;
    const fire = await gateway(ALARM_GW);
    const alarm = fire.publishAsync(formatTopic("alarm", { gatewayId: ALARM_GW }), JSON.stringify({ v: 1, gatewayId: ALARM_GW, seq: 1 }), { qos: 1 });
    await eventually(() => ingest.pending === 9, 10_000, "the alarm queued past the bound");
    expect(ingest.waiting).toBe(waitingBefore);
    sink.release();
    await Promise.all([...published, alarm]);
  });

  it("holds a gateway's publish that arrives before the ingest is attached, and stores it once attached", async () => {
    sink = new LedgerSink(join(dir, "ledger.db"));
    broker = await startBroker({ host: "127.0.0.1", port: 0, registry: () => registry, maxPacketBytes: 64 * 1024, maxConnectionsPerIpPerMinute: 10_000, log: silent, handOffUplinks: true });
    const gw = await gateway("gw-a");
    let acked = false;
    const published = gw.publishAsync(billingTopic("gw-a"), billing("gw-a", 1), { qos: 1 }).then(() => (acked = true));
    await eventually(() => broker.counters.uplinksHandedOff === 1, 10_000, "the publish to be handed over");
    expect(acked).toBe(false);
    ingest = startEmbeddedIngest({ sinks: sink, dedupePath: join(dir, "dedupe.db"), log: silent });
    broker.attachUplinks((uplink, done) => ingest.handle(uplink, done));
    await published;
    expect(sink.rows("gw-a", 1)).toBe(1);
  });
});
