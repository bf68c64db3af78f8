// The dedupe store over a real SQLite file: out-of-order seqs, duplicates, the long-outage drain order, the bound
// (which forgets, never guesses), durability across a reopen and the conversion of old high-water-mark files.

import Database from "better-sqlite3";
import fc from "fast-check";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openDedupeStore, type DedupeKey } from "./dedupe.js";

const freshPath = (): string => join(mkdtempSync(join(tmpdir(), "ingest-dedupe-")), "dedupe.db");

const MINUTES_PER_DAY = 24 * 60;

/**
 * Seqs a gateway issues while offline for `days`: each minute one billing reading and one telemetry message, an
 * event every 10 minutes and an alarm every 6 hours, in the order they happen (so their seqs interleave).
 */
function outageSeqs(days: number): { alarms: number[]; billing: number[]; events: number[]; telemetry: number[] } {
  const out = { alarms: [] as number[], billing: [] as number[], events: [] as number[], telemetry: [] as number[] };
  let seq = 0;
  for (let minute = 0; minute < days * MINUTES_PER_DAY; minute++) {
    out.billing.push(++seq);
    out.telemetry.push(++seq);
    if (minute % 10 === 0) out.events.push(++seq);
    if (minute % 360 === 0) out.alarms.push(++seq);
  }
  return out;
}

const keysOf = (gatewayId: string, seqs: readonly number[]): DedupeKey[] => seqs.map((seq) => ({ gatewayId, seq }));

describe("dedupe store", () => {
  it("sees a seq only after it was recorded, per gateway", () => {
    const store = openDedupeStore({ path: freshPath() });
    expect(store.seen("gw-a", 1)).toBe(false);
    store.record("gw-a", 1);
    expect(store.seen("gw-a", 1)).toBe(true);
    expect(store.seen("gw-b", 1)).toBe(false);
    store.close();
  });

  it("accepts seqs out of order and leaves a gap unseen until it is recorded", () => {
    const store = openDedupeStore({ path: freshPath() });
    for (const seq of [1, 2, 5, 4]) expect(store.checkAndRecord("gw-a", seq)).toBe(true);
    expect(store.stateOf("gw-a")).toEqual({ ranges: 2, highestSeq: 5 });
    expect(store.seen("gw-a", 3)).toBe(false);
    expect(store.checkAndRecord("gw-a", 5)).toBe(false);
    expect(store.checkAndRecord("gw-a", 3)).toBe(true);
    expect(store.stateOf("gw-a")).toEqual({ ranges: 1, highestSeq: 5 });
    expect(store.checkAndRecord("gw-a", 3)).toBe(false);
    store.close();
  });

  it("keeps a gateway whose outbox starts above 1 in one range, with the seqs below it unseen", () => {
    const store = openDedupeStore({ path: freshPath() });
    for (const seq of [500, 501, 502]) store.record("gw-a", seq);
    expect(store.stateOf("gw-a")).toEqual({ ranges: 1, highestSeq: 502 });
    expect(store.seen("gw-a", 499)).toBe(false);
    store.close();
  });

  it("drains a 3-day outage alarms first, then billing and events, then telemetry, losing nothing", () => {
    const store = openDedupeStore({ path: freshPath() });
    const { alarms, billing, events, telemetry } = outageSeqs(3);
    const firstDrain = [...alarms, ...[...billing, ...events].sort((a, b) => a - b)];
    expect(store.recordMany(keysOf("gw-a", firstDrain))).toEqual({ gaveUpSeqs: 0, alreadySeen: 0 });
    // The reviewer's case: telemetry not yet delivered must not look seen while billing has run far ahead of it.
    expect(telemetry.filter((seq) => store.seen("gw-a", seq))).toEqual([]);
    for (const seq of telemetry) expect(store.checkAndRecord("gw-a", seq)).toBe(true);
    const all = firstDrain.length + telemetry.length;
    expect(store.stateOf("gw-a")).toEqual({ ranges: 1, highestSeq: all });
    store.close();
  });

  it("after the long-outage drain reports every redelivered seq as a duplicate, recording none twice", () => {
    const store = openDedupeStore({ path: freshPath() });
    const { alarms, billing, events, telemetry } = outageSeqs(3);
    store.recordMany(keysOf("gw-a", [...alarms, ...billing, ...events]));
    store.recordMany(keysOf("gw-a", telemetry));
    const everything = [...alarms, ...billing, ...events, ...telemetry];
    expect(store.recordMany(keysOf("gw-a", everything))).toEqual({ gaveUpSeqs: 0, alreadySeen: everything.length });
    store.close();
  });

  it("never reports seen a seq the edge thinned away, however far later seqs run ahead", () => {
    const store = openDedupeStore({ path: freshPath(), maxWindow: 8 });
    // Every third seq never arrives (thinned telemetry): 3334 permanent gaps against a bound of 8 ranges.
    const delivered = Array.from({ length: 10_000 }, (_, i) => i + 1).filter((seq) => seq % 3 !== 0);
    store.recordMany(keysOf("gw-a", delivered));
    expect(Array.from({ length: 3333 }, (_, i) => 3 * (i + 1)).filter((seq) => store.seen("gw-a", seq))).toEqual([]);
    expect(store.stateOf("gw-a").ranges).toBe(8);
    store.close();
  });

  it("stays within its bound by forgetting the least recently extended range, and says how many seqs it forgot", () => {
    const store = openDedupeStore({ path: freshPath(), maxWindow: 3 });
    for (const seq of [1, 2, 3, 10, 20]) expect(store.record("gw-a", seq).gaveUpSeqs).toBe(0);
    store.record("gw-a", 4); // [1..4] is now the most recently extended range; [10] the least.
    expect(store.record("gw-a", 30)).toEqual({ alreadySeen: false, gaveUpSeqs: 1 });
    expect(store.stateOf("gw-a").ranges).toBe(3);
    expect(store.seen("gw-a", 10)).toBe(false);
    expect([1, 2, 3, 4, 20, 30].every((seq) => store.seen("gw-a", seq))).toBe(true);
    store.close();
  });

  it("records a forgotten seq again as new when it is redelivered", () => {
    const store = openDedupeStore({ path: freshPath(), maxWindow: 1 });
    store.record("gw-a", 1);
    expect(store.record("gw-a", 5).gaveUpSeqs).toBe(1);
    expect(store.checkAndRecord("gw-a", 1)).toBe(true);
    expect(store.seen("gw-a", 1)).toBe(true);
    store.close();
  });

  it("remembers ranges and gaps across a reopen of the file", () => {
    const path = freshPath();
    const first = openDedupeStore({ path });
    for (const seq of [1, 3, 5]) first.record("gw-a", seq);
    first.close();
    const second = openDedupeStore({ path });
    expect([1, 2, 3, 4, 5, 6].map((seq) => second.seen("gw-a", seq))).toEqual([true, false, true, false, true, false]);
    second.record("gw-a", 2);
    second.record("gw-a", 4);
    expect(second.stateOf("gw-a")).toEqual({ ranges: 1, highestSeq: 5 });
    second.close();
  });

  it("forgets in the same least-recent order after a reopen as without one", () => {
    const path = freshPath();
    const first = openDedupeStore({ path, maxWindow: 2 });
    for (const seq of [10, 20, 11]) first.record("gw-a", seq); // [20] is now the least recently extended.
    first.close();
    const second = openDedupeStore({ path, maxWindow: 2 });
    expect(second.record("gw-a", 30).gaveUpSeqs).toBe(1);
    expect([10, 11, 20, 30].map((seq) => second.seen("gw-a", seq))).toEqual([true, true, false, true]);
    second.close();
  });

  it("converts a file of the old high-water-mark schema into ranges without seeing anything new", () => {
    const path = freshPath();
    const old = new Database(path);
    old.exec(`
      CREATE TABLE dedupe_gateway (gateway_id TEXT PRIMARY KEY, high_water INTEGER NOT NULL, window_size INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE dedupe_window (gateway_id TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (gateway_id, seq)) WITHOUT ROWID;
      INSERT INTO dedupe_gateway VALUES ('gw-a', 5, 3), ('gw-b', 0, 1);
      INSERT INTO dedupe_window VALUES ('gw-a', 7), ('gw-a', 8), ('gw-a', 10), ('gw-b', 4);
    `);
    old.close();
    const store = openDedupeStore({ path });
    const seenA = Array.from({ length: 11 }, (_, i) => (store.seen("gw-a", i + 1) ? i + 1 : 0)).filter((seq) => seq > 0);
    expect(seenA).toEqual([1, 2, 3, 4, 5, 7, 8, 10]);
    expect([3, 4, 5].map((seq) => store.seen("gw-b", seq))).toEqual([false, true, false]);
    expect(store.stateOf("gw-a")).toEqual({ ranges: 3, highestSeq: 10 });
    store.record("gw-a", 6);
    expect(store.stateOf("gw-a")).toEqual({ ranges: 2, highestSeq: 10 });
    store.close();
  });

  it("refuses a seq that is not a positive safe integer", () => {
    const store = openDedupeStore({ path: freshPath() });
    for (const seq of [0, -1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1]) expect(() => store.record("gw-a", seq)).toThrow(RangeError);
    expect(() => store.seen("gw-a", 0)).toThrow(RangeError);
    store.close();
  });

  it("refuses an empty gateway id", () => {
    const store = openDedupeStore({ path: freshPath() });
    expect(() => store.record("", 1)).toThrow(RangeError);
    store.close();
  });

  it("refuses a bound that is not a positive integer", () => {
    for (const maxWindow of [0, -3, 2.5]) expect(() => openDedupeStore({ path: freshPath(), maxWindow })).toThrow(RangeError);
  });

  it("records the largest safe seq", () => {
    const store = openDedupeStore({ path: freshPath() });
    expect(store.checkAndRecord("gw-a", Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(store.seen("gw-a", Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(store.seen("gw-a", Number.MAX_SAFE_INTEGER - 1)).toBe(false);
    store.close();
  });

  it("records a whole batch of keys in one call, across gateways and out of order", () => {
    const store = openDedupeStore({ path: freshPath() });
    store.record("gw-a", 1);
    const outcome = store.recordMany([
      { gatewayId: "gw-a", seq: 3 },
      { gatewayId: "gw-b", seq: 1 },
      { gatewayId: "gw-a", seq: 2 },
      { gatewayId: "gw-a", seq: 1 },
    ]);
    expect(outcome).toEqual({ gaveUpSeqs: 0, alreadySeen: 1 });
    expect(store.stateOf("gw-a")).toEqual({ ranges: 1, highestSeq: 3 });
    expect(store.stateOf("gw-b")).toEqual({ ranges: 1, highestSeq: 1 });
    store.close();
  });

  it("refuses a batch with an invalid seq and records none of it", () => {
    const store = openDedupeStore({ path: freshPath() });
    expect(() => store.recordMany([{ gatewayId: "gw-a", seq: 1 }, { gatewayId: "gw-a", seq: 0 }])).toThrow(RangeError);
    expect(store.seen("gw-a", 1)).toBe(false);
    store.close();
  });

  describe("over random arrival orders (fast-check)", () => {
    const MAX_SEQ = 40;
    const arrival = fc.array(fc.record({ gatewayId: fc.constantFrom("gw-a", "gw-b"), seq: fc.integer({ min: 1, max: MAX_SEQ }) }), { maxLength: 120 });
    /** Arrivals cut into batches at the given points, some batches split by a reopen of the file. */
    const scenario = fc.record({ arrivals: arrival, cuts: fc.array(fc.integer({ min: 0, max: 120 }), { maxLength: 6 }), reopenEvery: fc.integer({ min: 1, max: 4 }) });

    function run(maxWindow: number, s: { arrivals: DedupeKey[]; cuts: number[]; reopenEvery: number }) {
      const path = freshPath();
      let store = openDedupeStore({ path, maxWindow });
      const recorded = new Set<string>();
      let newRecords = 0;
      let gaveUp = 0;
      const bounds = [...new Set([0, ...s.cuts.filter((c) => c < s.arrivals.length), s.arrivals.length])].sort((a, b) => a - b);
      for (let b = 1; b < bounds.length; b++) {
        const batch = s.arrivals.slice(bounds[b - 1], bounds[b]);
        // Safety at every step: whatever the store calls seen was recorded before.
        for (const { gatewayId, seq } of batch) if (store.seen(gatewayId, seq)) expect(recorded.has(`${gatewayId}/${seq}`)).toBe(true);
        const outcome = store.recordMany(batch);
        newRecords += batch.length - outcome.alreadySeen;
        gaveUp += outcome.gaveUpSeqs;
        // Until something is forgotten, the batch's new records are exactly its distinct keys not recorded before.
        const unrecorded = new Set(batch.map(({ gatewayId, seq }) => `${gatewayId}/${seq}`).filter((key) => !recorded.has(key)));
        if (gaveUp === 0) expect(batch.length - outcome.alreadySeen).toBe(unrecorded.size);
        for (const { gatewayId, seq } of batch) recorded.add(`${gatewayId}/${seq}`);
        if (b % s.reopenEvery === 0) {
          store.close();
          store = openDedupeStore({ path, maxWindow });
        }
      }
      let seenCount = 0;
      for (const gatewayId of ["gw-a", "gw-b"]) {
        for (let seq = 1; seq <= MAX_SEQ; seq++) {
          const seen = store.seen(gatewayId, seq);
          if (seen) seenCount++;
          if (seen) expect(recorded.has(`${gatewayId}/${seq}`)).toBe(true);
          if (gaveUp === 0) expect(seen).toBe(recorded.has(`${gatewayId}/${seq}`));
        }
        expect(store.stateOf(gatewayId).ranges).toBeLessThanOrEqual(maxWindow);
      }
      // Exact accounting: each new record adds one seen seq, each forgotten seq takes one away.
      expect(seenCount).toBe(newRecords - gaveUp);
      store.close();
      return gaveUp;
    }

    it("with room for every gap reports a seq seen exactly when it was recorded, across batches and reopens", () => {
      fc.assert(
        fc.property(scenario, (s) => {
          expect(run(MAX_SEQ, s)).toBe(0);
        }),
        { numRuns: 150 },
      );
    });

    it("under a tight bound never reports seen a seq that was not recorded, and accounts for every forgotten seq", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 4 }), scenario, (maxWindow, s) => {
          run(maxWindow, s);
        }),
        { numRuns: 150 },
      );
    });
  });
});
