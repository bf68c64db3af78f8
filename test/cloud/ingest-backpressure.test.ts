// Back-pressure through the real broker and ingest: a gateway floods the cloud broker (aedes with the registry
// policy) far faster than a deliberately slow billing sink can store. The ingest keeps at most maxPendingMessages
// queued, stops reading its socket beyond that, aedes waits for that socket to drain before acknowledging the
// publisher, and so the publisher's QoS 1 acknowledgements keep pace with the sink: the flood waits in the
// publisher (a child process), not in the cloud's heap — and every message is stored, exactly once.

import { fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type RunningBroker } from "../../cloud/broker/broker.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { startIngest, type BillingItem, type IngestSinks, type RunningIngest } from "../../cloud/ingest/ingest.js";
import { eventually } from "../harness/broker.js";
import type { FloodSpec, FromFlood } from "./ingest-flood-publisher.fixture.js";

const GW = "flood-gw";
const GW_SECRET = "flood-secret";
const INGEST_USER = "ingest";
const INGEST_SECRET = "ingest-secret";
const MESSAGES = 6000;
const READINGS_PER_MESSAGE = 60;
const MAX_BATCH = 25;
const MAX_PENDING = 50;
const SINK_DELAY_MS = 10;
const silent = pino({ level: process.env.INGEST_LOG ?? "silent" });

let broker: RunningBroker;
let ingest: RunningIngest;
let dir: string;

/** Stores billing slowly (SINK_DELAY_MS per batch) and counts what it stored per seq. */
class SlowSinks implements IngestSinks {
  readonly storedPerSeq = new Map<number, number>();
  stored = 0;
  private async store(items: readonly BillingItem[]): Promise<void> {
    await new Promise((r) => setTimeout(r, SINK_DELAY_MS));
    for (const { readings } of items) this.storedPerSeq.set(readings.seq, (this.storedPerSeq.get(readings.seq) ?? 0) + 1);
    this.stored += items.length;
  }
  async billingBatch(items: readonly BillingItem[]): Promise<readonly (Error | null)[]> {
    await this.store(items);
    return items.map(() => null);
  }
  billing(readings: BillingItem["readings"], gatewayId: string): Promise<void> {
    return this.store([{ readings, gatewayId }]);
  }
  telemetry(): void {}
  events(): void {}
  alarm(): void {}
  birth(): void {}
  status(): void {}
  commandAck(): void {}
}

const sinks = new SlowSinks();

interface FloodOutcome {
  /** The most the publisher's acknowledgements ran ahead of what the sink had stored. */
  readonly maxAckedAheadOfStored: number;
  /** Peak growth of live heapUsed + external (Buffers) in this process, in bytes, sampled after a full GC. */
  readonly peakGrowthBytes: number;
  readonly floodBytes: number;
}

async function runFlood(): Promise<FloodOutcome> {
  const fixture = join(dirname(fileURLToPath(import.meta.url)), "ingest-flood-publisher.fixture.ts");
  const child: ChildProcess = fork(fixture, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  // Live memory, not garbage waiting for the collector: a full GC before each sample (Node's documented way to reach
  // gc() without the --expose-gc flag on the command line).
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const used = (): number => {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  const baseline = used();
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, used());
  }, 250);
  let maxAhead = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      child.on("message", (m: FromFlood) => {
        if (m.type === "error") reject(new Error(m.message));
        else {
          maxAhead = Math.max(maxAhead, m.acked - sinks.stored);
          if (m.type === "done") resolve();
        }
      });
      child.once("exit", (code) => reject(new Error(`flood publisher exited with ${String(code)}`)));
      const spec: FloodSpec = { port: broker.port, gatewayId: GW, password: GW_SECRET, count: MESSAGES, readingsPerMessage: READINGS_PER_MESSAGE, reportEvery: 100 };
      child.send(spec);
    });
    // The last acknowledgements run a little ahead of the sink (that is the bounded part): let it finish.
    await eventually(() => sinks.stored >= MESSAGES, 60_000, "the sink to store the whole flood");
    if (process.env.INGEST_LOG !== undefined) process.stderr.write(`flood: max acked ahead ${maxAhead}, peak live growth ${Math.round((peak - baseline) / 1e6)} MB\n`);
  } finally {
    clearInterval(sampler);
    child.kill();
  }
  const { floodMessage } = await import("./ingest-flood-publisher.fixture.js");
  return { maxAckedAheadOfStored: maxAhead, peakGrowthBytes: peak - baseline, floodBytes: MESSAGES * floodMessage(GW, MESSAGES, READINGS_PER_MESSAGE).length };
}

let outcome: FloodOutcome;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ingest-backpressure-"));
  const [gwHash, ingestHash] = await Promise.all([hashSecret(GW_SECRET), hashSecret(INGEST_SECRET)]);
  const registry = {
    gateways: new Map([[GW, { secretHash: gwHash, enabled: true }]]),
    cloudClients: new Map([[INGEST_USER, { secretHash: ingestHash, role: "ingest" as const }]]),
  };
  broker = await startBroker({ host: "127.0.0.1", port: 0, registry: () => registry, maxPacketBytes: 256 * 1024, maxConnectionsPerIpPerMinute: 10_000, log: silent });
  ingest = await startIngest({
    url: `mqtt://127.0.0.1:${broker.port}`,
    username: INGEST_USER,
    password: INGEST_SECRET,
    clientId: INGEST_USER,
    sinks,
    dedupePath: join(dir, "dedupe.db"),
    log: silent,
    batch: { maxMessages: MAX_BATCH, maxPendingMessages: MAX_PENDING, lingerMs: 1 },
  });
  outcome = await runFlood();
}, 120_000);

afterAll(async () => {
  await ingest?.stop();
  await broker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("ingest back-pressure under a flood faster than the sink", () => {
  it("stores every flooded message exactly once", () => {
    expect(sinks.storedPerSeq.size).toBe(MESSAGES);
    expect([...sinks.storedPerSeq.values()].every((n) => n === 1)).toBe(true);
    expect(ingest.counters.sinkErrors).toBe(0);
  });

  it("never queues more than maxPendingMessages in the ingest", () => {
    expect(ingest.maxPendingSeen).toBeGreaterThan(MAX_BATCH);
    expect(ingest.maxPendingSeen).toBeLessThanOrEqual(MAX_PENDING);
  });

  it("holds the publisher's acknowledgements close behind what the sink stored", () => {
    // Ahead by at most the ingest's queue plus what the sockets and aedes hold in between; without back-pressure
    // the broker would acknowledge the whole flood long before the slow sink got through it.
    expect(outcome.maxAckedAheadOfStored).toBeLessThan(MESSAGES / 4);
  });

  it("keeps the cloud's heap growth far below the size of the flood", () => {
    expect(outcome.peakGrowthBytes).toBeLessThan(outcome.floodBytes / 3);
  });
});
