// The ingest pipeline's verdicts without a broker: a real dedupe file, sinks that record or throw on cue. What a
// gateway is told (stored, duplicate, failed, held) decides whether it deletes a message from its outbox, so each
// case here is a way a message could be acknowledged and lost, or held back for no reason.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatTopic } from "../../protocols/mqtt/topics.js";
import { openDedupeStore, type DedupeStore } from "./dedupe.js";
import { createPipeline, zeroCounters, type IngestSinks, type Judged, type UplinkItem } from "./pipeline.js";

const at = "2026-06-01T06:30:00+08:00";
const alarmRaised = { type: "alarm.raised", deviceId: "smoke-03", cause: "smoke_density", value: 0.21, threshold: 0.15, at, alarmId: "a-1" };

interface Item extends UplinkItem {
  readonly label: string;
}

const events = (gatewayId: string, seq: number, label = `${gatewayId}/events/${seq}`): Item => ({
  label,
  topic: formatTopic("events", { gatewayId }),
  payload: JSON.stringify({ v: 1, gatewayId, seq, sentAt: at, events: [{ type: "device.online", deviceId: "meter-02", at }] }),
});
const alarm = (gatewayId: string, seq: number): Item => ({
  label: `${gatewayId}/alarm/${seq}`,
  topic: formatTopic("alarm", { gatewayId }),
  payload: JSON.stringify({ v: 1, gatewayId, seq, sentAt: at, event: { ...alarmRaised, alarmId: `a-${seq}` } }),
});

let dir: string;
let dedupe: DedupeStore;
let order: string[];
let failOn: Set<string>;
let verdicts: Map<string, string>;

const sinks: IngestSinks = {
  telemetry: () => undefined,
  billing: () => undefined,
  events(batch, gatewayId) {
    const key = `${gatewayId}/events/${batch.seq}`;
    order.push(key);
    if (failOn.has(key)) throw new Error(`sink refused ${key}`);
  },
  alarm(message, gatewayId) {
    order.push(`${gatewayId}/alarm/${message.seq}`);
  },
  birth: () => undefined,
  status: () => undefined,
  commandAck: () => undefined,
};

function pipeline(dedupeStore: DedupeStore = dedupe) {
  return createPipeline<Item>({
    sinks,
    dedupe: dedupeStore,
    log: pino({ level: "silent" }),
    maxPayloadBytes: 64 * 1024,
    counters: zeroCounters(),
    stale: () => false,
    batch: { lingerMs: 20, maxMessages: 100 },
    judge: (batch: readonly Judged<Item>[]) => {
      for (const { item, verdict } of batch) verdicts.set(item.label, verdict.kind);
    },
  });
}

async function run(items: readonly Item[], dedupeStore?: DedupeStore): Promise<void> {
  const p = pipeline(dedupeStore);
  for (const item of items) p.add(item, () => undefined);
  await p.drained();
  p.close();
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "pipeline-"));
  dedupe = openDedupeStore({ path: join(dir, "dedupe.db") });
  order = [];
  failOn = new Set();
  verdicts = new Map();
});

afterEach(() => {
  dedupe.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("ingest pipeline verdicts", () => {
  it("does not acknowledge a second copy of a message as a duplicate when its first copy in the batch failed", async () => {
    failOn.add("gw-a/events/5");
    await run([events("gw-a", 5, "first copy (old connection)"), events("gw-a", 5, "second copy (new connection)")]);
    expect(verdicts.get("first copy (old connection)")).toBe("failed");
    expect(verdicts.get("second copy (new connection)")).toBe("failed");
    expect(dedupe.seen("gw-a", 5)).toBe(false);
  });

  it("answers a second copy as a duplicate when its first copy in the batch was stored", async () => {
    await run([events("gw-a", 6, "first"), events("gw-a", 6, "second")]);
    expect([verdicts.get("first"), verdicts.get("second")]).toEqual(["stored", "duplicate"]);
  });

  it("holds back only the failing gateway's later messages, never another gateway's", async () => {
    failOn.add("gw-a/events/1");
    await run([events("gw-a", 1), events("gw-b", 1), events("gw-a", 2), events("gw-b", 2)]);
    expect(verdicts.get("gw-a/events/1")).toBe("failed");
    expect(verdicts.get("gw-a/events/2")).toBe("failed");
    expect(verdicts.get("gw-b/events/1")).toBe("stored");
    expect(verdicts.get("gw-b/events/2")).toBe("stored");
  });

  it("delivers an alarm before the events that arrived ahead of it in the same batch", async () => {
    await run([events("gw-a", 1), events("gw-b", 1), alarm("gw-c", 1)]);
    expect(order[0]).toBe("gw-c/alarm/1");
    expect([...verdicts.values()]).toEqual(["stored", "stored", "stored"]);
  });

  it("answers every message of a batch when the dedupe store itself fails, instead of leaving them hanging", async () => {
    const broken: DedupeStore = {
      ...dedupe,
      seen: () => {
        throw new Error("SQLITE_IOERR: disk I/O error");
      },
    };
    await run([events("gw-a", 1), alarm("gw-b", 1)], broken);
    expect([...verdicts.values()]).toEqual(["failed", "failed"]);
  });
});
