// The dedupe store over a real SQLite file: out-of-order seqs, duplicates, the bounded window and durability.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openDedupeStore } from "./dedupe.js";

const freshPath = (): string => join(mkdtempSync(join(tmpdir(), "ingest-dedupe-")), "dedupe.db");

describe("dedupe store", () => {
  it("sees a seq only after it was recorded, per gateway", () => {
    const store = openDedupeStore({ path: freshPath() });
    expect(store.seen("gw-a", 1)).toBe(false);
    store.record("gw-a", 1);
    expect(store.seen("gw-a", 1)).toBe(true);
    expect(store.seen("gw-b", 1)).toBe(false);
    store.close();
  });

  it("accepts seqs out of order and pulls the high-water mark up once the gap fills", () => {
    const store = openDedupeStore({ path: freshPath() });
    for (const seq of [1, 2, 5, 4]) expect(store.checkAndRecord("gw-a", seq)).toBe(true);
    expect(store.stateOf("gw-a")).toEqual({ highWater: 2, windowSize: 2 });
    expect(store.seen("gw-a", 3)).toBe(false);
    expect(store.checkAndRecord("gw-a", 5)).toBe(false);
    expect(store.checkAndRecord("gw-a", 3)).toBe(true);
    expect(store.stateOf("gw-a")).toEqual({ highWater: 5, windowSize: 0 });
    expect(store.checkAndRecord("gw-a", 3)).toBe(false);
    store.close();
  });

  it("keeps the window bounded by giving up the oldest gap, and says how many seqs it gave up", () => {
    const store = openDedupeStore({ path: freshPath(), maxWindow: 3 });
    store.record("gw-a", 1);
    for (const seq of [10, 11, 12]) expect(store.record("gw-a", seq).gaveUpSeqs).toBe(0);
    // A fourth seq above the gap 2..9: the gap is given up (8 seqs) and 10..13 fold into the high-water mark.
    expect(store.record("gw-a", 13)).toEqual({ alreadySeen: false, gaveUpSeqs: 8 });
    expect(store.stateOf("gw-a")).toEqual({ highWater: 13, windowSize: 0 });
    expect(store.seen("gw-a", 5)).toBe(true);
    store.close();
  });

  it("remembers across a reopen of the file", () => {
    const path = freshPath();
    const first = openDedupeStore({ path });
    first.record("gw-a", 1);
    first.record("gw-a", 7);
    first.close();
    const second = openDedupeStore({ path });
    expect(second.seen("gw-a", 1)).toBe(true);
    expect(second.seen("gw-a", 7)).toBe(true);
    expect(second.seen("gw-a", 4)).toBe(false);
    second.close();
  });

  it("refuses a seq that is not a positive safe integer", () => {
    const store = openDedupeStore({ path: freshPath() });
    for (const seq of [0, -1, 1.5, Number.NaN]) expect(() => store.record("gw-a", seq)).toThrow(RangeError);
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
    expect(store.stateOf("gw-a")).toEqual({ highWater: 3, windowSize: 0 });
    expect(store.stateOf("gw-b")).toEqual({ highWater: 1, windowSize: 0 });
    store.close();
  });

  it("refuses a batch with an invalid seq and records none of it", () => {
    const store = openDedupeStore({ path: freshPath() });
    expect(() => store.recordMany([{ gatewayId: "gw-a", seq: 1 }, { gatewayId: "gw-a", seq: 0 }])).toThrow(RangeError);
    expect(store.seen("gw-a", 1)).toBe(false);
    store.close();
  });
});
