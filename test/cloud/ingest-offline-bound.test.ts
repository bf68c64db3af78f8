// While the cloud ingest is away, aedes would queue every uplink for its persistent session in memory and acknowledge
// the gateways regardless. With the broker's session bound (session-queue-bound.ts) the queue stops at maxMessages:
// the flooding gateway's publishes wait unacknowledged (its backlog stays in its own outbox), and when the ingest is
// back everything is delivered, each message stored once.

import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type RunningBroker } from "../../cloud/broker/broker.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { startIngest, type BillingItem, type IngestSinks, type RunningIngest } from "../../cloud/ingest/ingest.js";
import { eventually } from "../harness/broker.js";
import type { FloodSpec, FromFlood } from "./ingest-flood-publisher.fixture.js";

const GW = "offline-gw";
const GW_SECRET = "offline-secret";
const INGEST_USER = "ingest";
const INGEST_SECRET = "ingest-secret";
const MESSAGES = 2000;
const MAX_QUEUED = 200;
const silent = pino({ level: process.env.INGEST_LOG ?? "silent" });

const storedPerSeq = new Map<number, number>();
const sinks: IngestSinks = {
  billingBatch(items: readonly BillingItem[]) {
    for (const { readings } of items) storedPerSeq.set(readings.seq, (storedPerSeq.get(readings.seq) ?? 0) + 1);
    return Promise.resolve(items.map(() => null));
  },
  billing(readings) {
    storedPerSeq.set(readings.seq, (storedPerSeq.get(readings.seq) ?? 0) + 1);
  },
  telemetry: () => undefined,
  events: () => undefined,
  alarm: () => undefined,
  birth: () => undefined,
  status: () => undefined,
  commandAck: () => undefined,
};

let dir: string;
let broker: RunningBroker;
let ingest: RunningIngest | undefined;
let child: ChildProcess;
let acked = 0;
let done: Promise<void>;
let ackedWhileAway = 0;

const ingestOptions = (): Parameters<typeof startIngest>[0] => ({
  url: `mqtt://127.0.0.1:${broker.port}`,
  username: INGEST_USER,
  password: INGEST_SECRET,
  clientId: INGEST_USER,
  sinks,
  dedupePath: join(dir, "dedupe.db"),
  log: silent,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ingest-offline-bound-"));
  const [gwHash, ingestHash] = await Promise.all([hashSecret(GW_SECRET), hashSecret(INGEST_SECRET)]);
  const registry = {
    gateways: new Map([[GW, { secretHash: gwHash, enabled: true }]]),
    cloudClients: new Map([[INGEST_USER, { secretHash: ingestHash, role: "ingest" as const }]]),
  };
  broker = await startBroker({
    host: "127.0.0.1",
    port: 0,
    registry: () => registry,
    maxPacketBytes: 256 * 1024,
    maxConnectionsPerIpPerMinute: 10_000,
    log: silent,
    boundedSessions: { maxMessages: MAX_QUEUED, appliesTo: (clientId) => clientId === INGEST_USER },
  });
  // The ingest subscribes once (its persistent session now exists on the broker) and goes away.
  await (await startIngest(ingestOptions())).stop();

  const fixture = join(dirname(fileURLToPath(import.meta.url)), "ingest-flood-publisher.fixture.ts");
  child = fork(fixture, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  done = new Promise<void>((resolve, reject) => {
    child.on("message", (m: FromFlood) => {
      if (m.type === "error") reject(new Error(m.message));
      else acked = m.acked;
      if (m.type === "done") resolve();
    });
  });
  const spec: FloodSpec = { port: broker.port, gatewayId: GW, password: GW_SECRET, count: MESSAGES, readingsPerMessage: 1, reportEvery: 1 };
  child.send(spec);
  // The bound is reached when a publish has to wait for room.
  await eventually(() => (broker.sessionQueues?.waiting() ?? 0) > 0, 30_000, "a publish waiting for the offline session's queue");
  ackedWhileAway = acked;
}, 60_000);

afterAll(async () => {
  child?.kill();
  await ingest?.stop();
  await broker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the broker's bound on the offline ingest session", () => {
  it("stops queueing at the bound, so the flooding gateway is left waiting for its acknowledgements", () => {
    expect(broker.sessionQueues?.queued(INGEST_USER)).toBe(MAX_QUEUED);
    // aedes acknowledges the packets of one socket read before it publishes them, so a few beyond the bound.
    expect(ackedWhileAway).toBeLessThan(MESSAGES / 2);
  });

  it("delivers everything, each message once, when the ingest is back", async () => {
    ingest = await startIngest(ingestOptions());
    // Each wait names what it waited for: under a loaded CI machine this is the slowest test of its file.
    await eventually(() => storedPerSeq.size === MESSAGES || undefined, 60_000, "every message stored");
    await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`the flooding gateway saw only ${acked} of ${MESSAGES} PUBACKs`)), 30_000))]);
    expect([...storedPerSeq.values()].every((n) => n === 1)).toBe(true);
    await eventually(() => broker.sessionQueues?.queued(INGEST_USER) === 0, 10_000, "the session queue drained");
  }, 120_000);
});
