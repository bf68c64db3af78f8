// The ingest through real parts: the cloud broker (aedes with the registry policy), the edge runner polling the
// simulator over Modbus TCP and publishing through its outbox, and raw mqtt.js clients playing a duplicating
// network and a misbehaving gateway. The sinks are in memory; everything between them and the meter is real.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgeRunner } from "../../edge/agent/runner.js";
import { parseEdgeConfig } from "../../edge/config/load.js";
import type { BillingReadings, Birth, EventBatch, TelemetryBatch } from "../../protocols/mqtt/messages.js";
import { formatTopic } from "../../protocols/mqtt/topics.js";
import { eventually } from "../../test/harness/broker.js";
import { startField, type RunningField } from "../../test/harness/programs.js";
import { startBroker, type RunningBroker } from "../broker/broker.js";
import type { RegistrySnapshot } from "../broker/policy.js";
import { hashSecret } from "../broker/secrets.js";
import { startIngest, type IngestSinks, type RunningIngest } from "./ingest.js";
import { INGEST_REJECT } from "./route.js";

const GW = "ingest-gw-1";
const GW_SECRET = "gw-1-secret";
const RAW_GW = "ingest-gw-2";
const RAW_SECRET = "gw-2-secret";
const INGEST_USER = "ingest";
const INGEST_SECRET = "ingest-secret";
const silent = pino({ level: process.env.INGEST_LOG ?? "silent" });

interface Stored<T> {
  readonly gatewayId: string;
  readonly message: T;
}

class MemorySinks implements IngestSinks {
  readonly telemetryBatches: Stored<TelemetryBatch>[] = [];
  readonly billingBatches: Stored<BillingReadings>[] = [];
  readonly eventBatches: Stored<EventBatch>[] = [];
  readonly births: Stored<Birth>[] = [];
  readonly other: Stored<unknown>[] = [];
  /** Billing calls for (gatewayId, seq), failed ones included. */
  readonly billingCalls: string[] = [];
  failBillingOnce = new Set<string>();
  private inSink = 0;
  maxInSink = 0;

  telemetry(batch: TelemetryBatch, gatewayId: string): void {
    this.telemetryBatches.push({ gatewayId, message: batch });
  }
  async billing(readings: BillingReadings, gatewayId: string): Promise<void> {
    const key = `${gatewayId}#${readings.seq}`;
    this.billingCalls.push(key);
    this.inSink++;
    this.maxInSink = Math.max(this.maxInSink, this.inSink);
    try {
      await new Promise((r) => setTimeout(r, 5));
      if (this.failBillingOnce.delete(key)) throw new Error(`ledger unavailable for ${key}`);
      this.billingBatches.push({ gatewayId, message: readings });
    } finally {
      this.inSink--;
    }
  }
  events(batch: EventBatch, gatewayId: string): void {
    this.eventBatches.push({ gatewayId, message: batch });
  }
  alarm(message: unknown, gatewayId: string): void {
    this.other.push({ gatewayId, message });
  }
  birth(birth: Birth, gatewayId: string): void {
    this.births.push({ gatewayId, message: birth });
  }
  status(status: unknown, gatewayId: string): void {
    this.other.push({ gatewayId, message: status });
  }
  commandAck(ack: unknown, gatewayId: string): void {
    this.other.push({ gatewayId, message: ack });
  }
  billingSeqCount(gatewayId: string, seq: number): number {
    return this.billingBatches.filter((b) => b.gatewayId === gatewayId && b.message.seq === seq).length;
  }
}

let sim: RunningField;
let broker: RunningBroker;
let runner: EdgeRunner;
let ingest: RunningIngest;
let raw: MqttClient;
const sinks = new MemorySinks();
const dir = mkdtempSync(join(tmpdir(), "ingest-e2e-"));
const dedupePath = join(dir, "dedupe.db");
let url: string;

function ingestOptions(): Parameters<typeof startIngest>[0] {
  return { url, username: INGEST_USER, password: INGEST_SECRET, clientId: `${INGEST_USER}-1`, sinks, dedupePath, log: silent, retryDelayMs: 200 };
}

function billingPayload(seq: number, gatewayId = RAW_GW): Record<string, unknown> {
  const at = new Date().toISOString();
  return {
    v: 1,
    gatewayId,
    seq,
    sentAt: at,
    readings: [{ meterId: "meter-9", pointId: "importEnergy", role: "import_energy", registerSeq: seq, at, raw: { words: [0, seq] , value: seq }, energyWh: seq * 10, conversion: { exact: true, droppedWh: 0 } }],
  };
}

async function rawPublish(client: MqttClient, topic: string, payload: string | Record<string, unknown>): Promise<void> {
  await client.publishAsync(topic, typeof payload === "string" ? payload : JSON.stringify(payload), { qos: 1 });
}

beforeAll(async () => {
  const [gwHash, rawHash, ingestHash] = await Promise.all([hashSecret(GW_SECRET), hashSecret(RAW_SECRET), hashSecret(INGEST_SECRET)]);
  const registry: RegistrySnapshot = {
    gateways: new Map([
      [GW, { secretHash: gwHash, enabled: true }],
      [RAW_GW, { secretHash: rawHash, enabled: true }],
    ]),
    cloudClients: new Map([[INGEST_USER, { secretHash: ingestHash, role: "ingest" as const }]]),
  };
  broker = await startBroker({ host: "127.0.0.1", port: 0, registry: () => registry, maxPacketBytes: 256 * 1024, maxConnectionsPerIpPerMinute: 10_000, log: silent });
  url = `mqtt://127.0.0.1:${broker.port}`;
  ingest = await startIngest(ingestOptions());

  sim = await startField(
    {
      name: "ingest",
      clock: { speed: 60, tickMs: 50 },
      buses: [{ id: "field", tcp: { port: 0 } }],
      devices: [{ id: "pump-li", bus: "field", unit: 3, profile: "hiking-dds238-2-zn", meter: { loads: [{ kind: "constant", watts: 3600 }], initialImportWh: 500_000, relayClosed: false } }],
    },
    { autoTick: true },
  );
  const config = parseEdgeConfig({
    gateway: { id: GW, password: GW_SECRET },
    broker: { url, reconnectMinMs: 200, reconnectMaxMs: 1000 },
    buses: [{ id: "field", tcp: { host: "127.0.0.1", port: sim.tcpPort("field") }, timeoutMs: 300 }],
    devices: [{ id: "pump-li", bus: "field", unit: 3, profile: "hiking-dds238-2-zn", role: "meter", pollIntervalMs: 200, supply: { cut: { kind: "meter-relay" }, warnAtWh: [100, 30] } }],
    outbox: { path: join(dir, "outbox.db") },
    statePath: join(dir, "state.db"),
    telemetry: { intervalMs: 1000, billingIntervalMs: 1000 },
    status: { port: 0 },
  });
  runner = new EdgeRunner(config, { log: silent, version: "0.1.0" });
  await runner.start();
  raw = await mqtt.connectAsync(url, { clientId: RAW_GW, username: RAW_GW, password: RAW_SECRET, protocolVersion: 4, reconnectPeriod: 200 });
  raw.on("error", () => undefined);
}, 30_000);

afterAll(async () => {
  await runner?.stop();
  await raw?.endAsync(true);
  await ingest?.stop();
  await broker?.close();
  await sim?.close();
});

describe("cloud ingest", () => {
  it("receives the edge runner's birth, billing readings and telemetry into the sinks", async () => {
    const birth = await eventually(() => sinks.births.find((b) => b.gatewayId === GW), 15_000, "birth");
    expect(birth.message).toMatchObject({ v: 1, gatewayId: GW, version: "0.1.0" });
    const billing = await eventually(() => sinks.billingBatches.find((b) => b.gatewayId === GW), 15_000, "billing");
    expect(billing.message.readings.find((r) => r.pointId === "importEnergy")?.energyWh).toBe(500_000);
    await eventually(() => sinks.telemetryBatches.find((b) => b.gatewayId === GW), 15_000, "telemetry");
    await eventually(() => sinks.other.some((s) => s.gatewayId === GW && (s.message as { state?: string }).state === "online"), 15_000, "online status");
    expect(ingest.counters.rejected).toEqual(Object.fromEntries(Object.values(INGEST_REJECT).map((r) => [r, 0])));
    expect(ingest.counters.sinkErrors).toBe(0);
  });

  it("hands a republished message (same gateway, same seq) to the sinks once", async () => {
    const first = sinks.billingBatches.find((b) => b.gatewayId === GW);
    if (first === undefined) throw new Error("no billing from the runner yet");
    const seq = first.message.seq;
    const duplicatesBefore = ingest.counters.duplicates;
    // The network duplicating a delivery: the same bytes again, from a client holding the gateway's credentials.
    const dup = await mqtt.connectAsync(url, { clientId: GW, username: GW, password: GW_SECRET, protocolVersion: 4, reconnectPeriod: 0 });
    dup.on("error", () => undefined);
    await rawPublish(dup, formatTopic("billing", { gatewayId: GW }), JSON.stringify(first.message));
    await dup.endAsync();
    await eventually(() => ingest.counters.duplicates > duplicatesBefore, 10_000, "duplicate counted");
    expect(sinks.billingSeqCount(GW, seq)).toBe(1);
  });

  it("rejects and counts a malformed payload and one speaking for another gateway, and keeps going", async () => {
    const topic = formatTopic("billing", { gatewayId: RAW_GW });
    await rawPublish(raw, topic, "{ this is not json");
    await rawPublish(raw, topic, { ...billingPayload(1), readings: [] });
    await rawPublish(raw, topic, billingPayload(1, GW));
    await eventually(() => ingest.counters.rejected[INGEST_REJECT.GATEWAY_MISMATCH] === 1, 10_000, "gateway mismatch counted");
    expect(ingest.counters.rejected[INGEST_REJECT.NOT_JSON]).toBe(1);
    expect(ingest.counters.rejected[INGEST_REJECT.INVALID_PAYLOAD]).toBe(1);
    expect(sinks.billingBatches.some((b) => b.gatewayId === RAW_GW || (b.gatewayId === GW && b.message.readings[0]?.meterId === "meter-9"))).toBe(false);
    // Still ingesting afterwards.
    await rawPublish(raw, topic, billingPayload(1));
    await eventually(() => sinks.billingSeqCount(RAW_GW, 1) === 1, 10_000, "valid billing after the bad ones");
    expect(ingest.connected).toBe(true);
  });

  it("gets a message again when its sink threw, because the PUBACK was withheld", async () => {
    sinks.failBillingOnce.add(`${RAW_GW}#2`);
    const errorsBefore = ingest.counters.sinkErrors;
    const connectsBefore = ingest.counters.connects;
    await rawPublish(raw, formatTopic("billing", { gatewayId: RAW_GW }), billingPayload(2));
    await eventually(() => sinks.billingSeqCount(RAW_GW, 2) === 1, 15_000, "billing seq 2 stored after redelivery");
    expect(ingest.counters.sinkErrors).toBe(errorsBefore + 1);
    expect(sinks.billingCalls.filter((c) => c === `${RAW_GW}#2`)).toHaveLength(2);
    // The redelivery came on the resumed session.
    expect(ingest.counters.connects).toBeGreaterThan(connectsBefore);
    // And the runner's stream kept flowing through all of it.
    const gwBefore = sinks.billingBatches.filter((b) => b.gatewayId === GW).length;
    await eventually(() => sinks.billingBatches.filter((b) => b.gatewayId === GW).length > gwBefore, 10_000, "more runner billing");
  });

  it("hands the sinks one message at a time however fast they arrive, out of order included", async () => {
    const topic = formatTopic("billing", { gatewayId: RAW_GW });
    const seqs = Array.from({ length: 30 }, (_, i) => 40 - i);
    await Promise.all(seqs.map((seq) => rawPublish(raw, topic, billingPayload(seq))));
    await eventually(() => seqs.every((seq) => sinks.billingSeqCount(RAW_GW, seq) === 1), 15_000, "all 30 stored");
    expect(sinks.maxInSink).toBe(1);
  });

  it("keeps its dedupe state across a restart: the same seq is still a duplicate", async () => {
    await ingest.stop();
    ingest = await startIngest(ingestOptions());
    expect(ingest.counters.duplicates).toBe(0);
    await rawPublish(raw, formatTopic("billing", { gatewayId: RAW_GW }), billingPayload(2));
    await rawPublish(raw, formatTopic("billing", { gatewayId: RAW_GW }), billingPayload(3));
    await eventually(() => sinks.billingSeqCount(RAW_GW, 3) === 1, 10_000, "seq 3 after restart");
    expect(ingest.counters.duplicates).toBeGreaterThanOrEqual(1);
    expect(sinks.billingSeqCount(RAW_GW, 2)).toBe(1);
  });
});
