// The one contract every TelemetryStore must pass (ARCHITECTURE.md §5: one shared suite per interface, run against
// influx v1, v2 and the embedded store): round trip, epoch-aligned downsampling, replays that overwrite instead of
// duplicating, the bounded buffer with its counters, and — for a store behind a server — buffering and retrying
// through a real outage (the server process stopped and started again). An implementation's test file calls
// runTelemetryStoreContract with a target that opens fresh stores.

import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { TelemetrySample } from "../../protocols/mqtt/messages.js";
import type { BufferedStoreOptions } from "./buffered-store.js";
import type { TelemetryStore } from "./sink.js";

export interface TelemetryContractTarget {
  /** A store on the shared server (or a fresh file). Each test uses its own device ids, so stores may share data. */
  open(options: BufferedStoreOptions): Promise<TelemetryStore>;
  /** Make stored samples visible to queries (VictoriaMetrics buffers recent rows for about a second). */
  settle?(): Promise<void>;
  /** Stop and restart the database process; absent for an embedded store, which has no outage to survive. */
  readonly server?: { stop(): Promise<void>; start(): Promise<void> };
}

const MINUTE_MS = 60_000;
/** An hour ago on a minute boundary: inside every retention window, aligned for bucket arithmetic. */
const T0 = Math.floor((Date.now() - 3_600_000) / MINUTE_MS) * MINUTE_MS;
const GATEWAY = "gw-contract-1";

function deviceId(): string {
  return `m-${randomUUID().slice(0, 8)}`;
}

function powerSamples(device: string, count: number, opts: { readonly startMs?: number; readonly stepMs?: number; readonly value?: (i: number) => number } = {}): TelemetrySample[] {
  const startMs = opts.startMs ?? T0;
  const stepMs = opts.stepMs ?? 1000;
  const value = opts.value ?? ((i: number) => i);
  return Array.from({ length: count }, (_, i) => ({
    deviceId: device,
    pointId: "p_active_power",
    role: "active_power" as const,
    value: value(i),
    unit: "W" as const,
    at: new Date(startMs + i * stepMs).toISOString(),
  }));
}

async function waitUntil(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function runTelemetryStoreContract(name: string, target: () => TelemetryContractTarget): void {
  describe(`TelemetryStore contract: ${name}`, () => {
    const opened: TelemetryStore[] = [];
    const open = async (options: BufferedStoreOptions = {}): Promise<TelemetryStore> => {
      const store = await target().open({ flushIntervalMs: 50, retryInitialMs: 50, retryMaxMs: 400, closeFlushTimeoutMs: 2000, ...options });
      opened.push(store);
      return store;
    };
    const flushed = async (store: TelemetryStore): Promise<void> => {
      await store.flush({ timeoutMs: 20_000 });
      await target().settle?.();
    };
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });

    it("returns the samples it was given, at the edge's timestamps, for one device and point only", async () => {
      const store = await open();
      const device = deviceId();
      await store.write(GATEWAY, powerSamples(device, 10, { value: (i) => 100 + i * 0.5 }));
      await store.write(GATEWAY, [{ deviceId: device, pointId: "p_voltage", role: "voltage", value: 230, unit: "V", at: new Date(T0).toISOString() }]);
      await store.write("gw-contract-2", powerSamples(deviceId(), 3));
      await flushed(store);
      const points = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0, toMs: T0 + 10_000 });
      expect(points.map((p) => p.atMs)).toEqual(Array.from({ length: 10 }, (_, i) => T0 + i * 1000));
      expect(points.map((p) => p.last)).toEqual(Array.from({ length: 10 }, (_, i) => 100 + i * 0.5));
      expect(points.every((p) => p.count === 1 && p.min === p.max && p.mean === p.last)).toBe(true);
      expect(store.stats()).toMatchObject({ buffered: 0, written: 14, droppedForBound: 0 });
    });

    it("treats the query range as [fromMs, toMs) and filters by gateway when asked", async () => {
      const store = await open();
      const device = deviceId();
      await store.write(GATEWAY, powerSamples(device, 5));
      await store.write("gw-contract-2", powerSamples(device, 5, { startMs: T0 + 500, value: () => -1 }));
      await flushed(store);
      const mine = await store.query({ deviceId: device, pointId: "p_active_power", gatewayId: GATEWAY, fromMs: T0 + 1000, toMs: T0 + 4000 });
      expect(mine.map((p) => [p.atMs, p.last])).toEqual([
        [T0 + 1000, 1],
        [T0 + 2000, 2],
        [T0 + 3000, 3],
      ]);
      const all = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0, toMs: T0 + 10_000 });
      expect(all).toHaveLength(10);
    });

    it("downsamples into epoch-aligned buckets with mean, min, max, last and count", async () => {
      const store = await open();
      const device = deviceId();
      // 18 samples every 10 s from T0: values 0..17 → buckets [0..5], [6..11], [12..17].
      await store.write(GATEWAY, powerSamples(device, 18, { stepMs: 10_000, value: (i) => (i % 2 === 0 ? i : i * 10) }));
      await flushed(store);
      const points = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0, toMs: T0 + 3 * MINUTE_MS, everyMs: MINUTE_MS });
      const expected = [0, 1, 2].map((b) => {
        const values = Array.from({ length: 6 }, (_, k) => b * 6 + k).map((i) => (i % 2 === 0 ? i : i * 10));
        return { atMs: T0 + b * MINUTE_MS, mean: values.reduce((a, v) => a + v, 0) / 6, min: Math.min(...values), max: Math.max(...values), last: values[5], count: 6 };
      });
      expect(points).toHaveLength(3);
      for (const [i, p] of points.entries()) {
        const e = expected[i];
        expect(p).toMatchObject({ atMs: e?.atMs, min: e?.min, max: e?.max, last: e?.last, count: e?.count });
        expect(p.mean).toBeCloseTo(e?.mean ?? NaN, 9);
      }
      // A range that starts mid-bucket still labels the bucket by its aligned start, holding only samples in range.
      const partial = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0 + 30_000, toMs: T0 + MINUTE_MS, everyMs: MINUTE_MS });
      expect(partial).toEqual([{ atMs: T0, mean: (30 + 4 + 50) / 3, min: 4, max: 50, last: 50, count: 3 }]);
    });

    it("stores a replayed batch once: the same series and timestamp overwrite", async () => {
      const store = await open();
      const device = deviceId();
      const batch = powerSamples(device, 50, { value: (i) => i * 2 });
      await store.write(GATEWAY, batch);
      await flushed(store);
      await store.write(GATEWAY, batch);
      await store.write(GATEWAY, batch.slice(10, 20));
      await flushed(store);
      const points = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0, toMs: T0 + MINUTE_MS });
      expect(points).toHaveLength(50);
      expect(points.every((p) => p.count === 1)).toBe(true);
      const bucket = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0, toMs: T0 + MINUTE_MS, everyMs: MINUTE_MS });
      expect(bucket).toMatchObject([{ atMs: T0, count: 50, min: 0, max: 98, last: 98 }]);
      expect(store.stats().written).toBe(110);
    });

    it("writes large volumes in batches and reports them written", async () => {
      const store = await open();
      const device = deviceId();
      const count = 12_000;
      const started = performance.now();
      await store.write(GATEWAY, powerSamples(device, count, { stepMs: 100 }));
      await store.flush({ timeoutMs: 20_000 });
      const elapsedMs = performance.now() - started;
      await target().settle?.();
      expect(store.stats()).toMatchObject({ buffered: 0, written: count, failedWrites: 0 });
      const perMinute = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0, toMs: T0 + count * 100, everyMs: MINUTE_MS });
      expect(perMinute.reduce((n, p) => n + p.count, 0)).toBe(count);
      console.log(`[telemetry ${name}] wrote ${count} samples in ${elapsedMs.toFixed(0)} ms (${Math.round((count / elapsedMs) * 1000)} samples/s)`);
    });

    it("bounds its buffer: the oldest queued samples are dropped and counted, the newest are kept", async () => {
      const store = await open({ maxBufferedSamples: 100, flushIntervalMs: 60_000 });
      const device = deviceId();
      const samples = powerSamples(device, 250);
      // No await between the writes: they queue synchronously, before any batch can leave.
      const writes = [store.write(GATEWAY, samples.slice(0, 90)), store.write(GATEWAY, samples.slice(90, 180)), store.write(GATEWAY, samples.slice(180))];
      await Promise.all(writes);
      expect(store.stats()).toMatchObject({ buffered: 100, droppedForBound: 150 });
      await flushed(store);
      const points = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0, toMs: T0 + MINUTE_MS * 5 });
      expect(points.map((p) => p.last)).toEqual(Array.from({ length: 100 }, (_, i) => 150 + i));
      expect(store.stats()).toMatchObject({ buffered: 0, written: 100, droppedForBound: 150 });
    });

    const server = target().server;
    if (server) {
      describe("while the server is down", () => {
        afterEach(async () => {
          await server.start(); // idempotent: a test that failed mid-outage must not leave it stopped
        });

        it("buffers, retries with back-off, and delivers everything once the server is back", async () => {
          const store = await open();
          const device = deviceId();
          await server.stop();
          await store.write(GATEWAY, powerSamples(device, 30));
          await waitUntil(() => store.stats().failedWrites >= 3, 10_000, "three failed write attempts");
          expect(store.stats()).toMatchObject({ buffered: 30, written: 0, droppedForBound: 0 });
          await store.write(GATEWAY, powerSamples(device, 30, { startMs: T0 + 30_000, value: (i) => 30 + i }));
          expect(store.stats().buffered).toBe(60);
          await server.start();
          await flushed(store);
          const points = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0, toMs: T0 + MINUTE_MS });
          expect(points.map((p) => p.last)).toEqual(Array.from({ length: 60 }, (_, i) => i));
          expect(store.stats()).toMatchObject({ buffered: 0, written: 60, droppedForBound: 0 });
        });

        it("keeps only the newest samples up to its bound through a long outage, counting what it dropped", async () => {
          const store = await open({ maxBufferedSamples: 40 });
          const device = deviceId();
          await server.stop();
          for (let k = 0; k < 5; k++) {
            await store.write(GATEWAY, powerSamples(device, 20, { startMs: T0 + k * 20_000, value: (i) => k * 20 + i }));
            await waitUntil(() => store.stats().failedWrites >= k + 1, 10_000, "a failed write attempt");
          }
          // Two more failed attempts after the last write: the newest rows have certainly met the bound by then.
          const failedAfterLastWrite = store.stats().failedWrites;
          await waitUntil(() => store.stats().failedWrites >= failedAfterLastWrite + 2, 10_000, "two more failed write attempts");
          expect(store.stats()).toMatchObject({ buffered: 40, droppedForBound: 60, written: 0 });
          await server.start();
          await flushed(store);
          const points = await store.query({ deviceId: device, pointId: "p_active_power", fromMs: T0, toMs: T0 + 2 * MINUTE_MS });
          expect(points.map((p) => p.last)).toEqual(Array.from({ length: 40 }, (_, i) => 60 + i));
          expect(store.stats()).toMatchObject({ buffered: 0, written: 40, droppedForBound: 60 });
        });

        it("gives up flushing on close after its timeout and counts what it could not deliver", async () => {
          const store = await open({ closeFlushTimeoutMs: 300 });
          await server.stop();
          await store.write(GATEWAY, powerSamples(deviceId(), 7));
          await store.close();
          expect(store.stats()).toMatchObject({ droppedOnClose: 7, written: 0 });
          await expect(store.write(GATEWAY, powerSamples(deviceId(), 1))).rejects.toMatchObject({ code: "CLOUD_TELEMETRY_CLOSED" });
        });
      });
    }
  });
}
