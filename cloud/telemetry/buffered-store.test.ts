// The shared buffered writer over a scripted backend: batch sizes, back-off growth, refusal of invalid batches, and
// flush's time limit — the mechanics the contract suite can only observe from outside.

import { describe, expect, it } from "vitest";
import type { TelemetrySample } from "../../protocols/mqtt/messages.js";
import { createBufferedStore, retryDelayMs } from "./buffered-store.js";
import { TELEMETRY_ERROR_CODES as C, TelemetryStoreError } from "./errors.js";
import { MAX_BATCH_LINES, type TelemetryBackend, type TelemetryRow } from "./sink.js";

function samples(count: number): TelemetrySample[] {
  return Array.from({ length: count }, (_, i) => ({ deviceId: "m-1", pointId: "p_active_power", role: "active_power" as const, value: i, unit: "W" as const, at: new Date(1_800_000_000_000 + i).toISOString() }));
}

function scriptedBackend(fail: (attempt: number, rows: readonly TelemetryRow[]) => Error | undefined) {
  const batches: number[] = [];
  const attemptsAtMs: number[] = [];
  let attempt = 0;
  const backend: TelemetryBackend = {
    name: "scripted",
    writeBatch: (rows) => {
      attemptsAtMs.push(performance.now());
      const err = fail(++attempt, rows);
      if (err) return Promise.reject(err);
      batches.push(rows.length);
      return Promise.resolve();
    },
    query: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
  return { backend, batches, attemptsAtMs };
}

describe("buffered telemetry store", () => {
  it("never hands the backend more than 5,000 lines at once", async () => {
    const { backend, batches } = scriptedBackend(() => undefined);
    const store = createBufferedStore(backend, { flushIntervalMs: 10 });
    await store.write("gw-1", samples(12_345));
    await store.flush({ timeoutMs: 5000 });
    expect(batches).toEqual([MAX_BATCH_LINES, MAX_BATCH_LINES, 2345]);
    expect(store.stats()).toMatchObject({ written: 12_345, buffered: 0 });
    await store.close();
  });

  it("doubles its retry delay per failed attempt up to the cap", () => {
    const noJitter = () => 1;
    expect([1, 2, 3, 4, 5, 6].map((a) => retryDelayMs(a, 100, 1000, noJitter))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(retryDelayMs(3, 100, 1000, () => 0)).toBe(200);
  });

  it("waits longer between each failed attempt and recovers when the backend does", async () => {
    const { backend, attemptsAtMs } = scriptedBackend((attempt) => (attempt <= 4 ? new Error("ECONNREFUSED") : undefined));
    const store = createBufferedStore(backend, { flushIntervalMs: 1, retryInitialMs: 40, retryMaxMs: 1000, random: () => 1 });
    await store.write("gw-1", samples(3));
    await store.flush({ timeoutMs: 5000 });
    const gaps = attemptsAtMs.slice(1).map((t, i) => t - (attemptsAtMs[i] ?? 0));
    expect(gaps).toHaveLength(4);
    for (const [i, want] of [40, 80, 160, 320].entries()) expect(gaps[i]).toBeGreaterThanOrEqual(want - 5);
    expect(store.stats()).toMatchObject({ written: 3, failedWrites: 4, buffered: 0 });
    await store.close();
  });

  it("drops and counts a batch the backend refuses as invalid instead of retrying it forever", async () => {
    const { backend } = scriptedBackend((attempt) => (attempt === 1 ? new TelemetryStoreError(C.writeRejected, false, "400 field type conflict") : undefined));
    const store = createBufferedStore(backend, { flushIntervalMs: 1, batchLines: 10 });
    await store.write("gw-1", samples(25));
    await store.flush({ timeoutMs: 5000 });
    expect(store.stats()).toMatchObject({ rejected: 10, written: 15, failedWrites: 1, buffered: 0 });
    await store.close();
  });

  it("rejects flush after its time limit while the backend stays down, keeping the samples buffered", async () => {
    const { backend } = scriptedBackend(() => new Error("ECONNREFUSED"));
    const store = createBufferedStore(backend, { flushIntervalMs: 1, retryInitialMs: 20, retryMaxMs: 50, closeFlushTimeoutMs: 50 });
    await store.write("gw-1", samples(5));
    await expect(store.flush({ timeoutMs: 200 })).rejects.toMatchObject({ code: C.flushTimeout });
    expect(store.stats().buffered).toBe(5);
    await store.close();
    expect(store.stats()).toMatchObject({ droppedOnClose: 5 });
  });
});
