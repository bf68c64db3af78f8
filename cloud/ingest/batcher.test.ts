// The group-commit queue on its own: batch sizes, the pending bound that withholds `resume`, and carrying on after
// a failed flush. Flushes are real promises resolved by the test, so the order of events is explicit.

import { describe, expect, it } from "vitest";
import { createBatcher } from "./batcher.js";

interface Gate {
  readonly batches: number[][];
  release(): void;
}

/** A flush that records each batch and waits until the test releases it. */
function gatedFlush(): { gate: Gate; flush: (items: number[]) => Promise<void> } {
  const batches: number[][] = [];
  const waiting: (() => void)[] = [];
  return {
    gate: { batches, release: () => waiting.shift()?.() },
    flush: (items) => {
      batches.push(items);
      return new Promise((resolve) => waiting.push(resolve));
    },
  };
}

/** Lets the batcher run its timers and immediates (a flush resolved now starts the next one on a later turn). */
const turn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 5));

describe("ingest batcher", () => {
  it("hands the items that arrived together to one flush, never more than maxBatch", async () => {
    const { gate, flush } = gatedFlush();
    const batcher = createBatcher<number>({ maxBatch: 3, maxPending: 10, lingerMs: 0, flush });
    for (let i = 1; i <= 5; i++) batcher.add(i, () => undefined);
    await turn();
    expect(gate.batches).toEqual([[1, 2, 3]]);
    gate.release();
    await turn();
    expect(gate.batches).toEqual([[1, 2, 3], [4, 5]]);
    gate.release();
    await batcher.drained();
  });

  it("withholds resume at maxPending, so a reader that waits for it never queues more", async () => {
    const { gate, flush } = gatedFlush();
    const batcher = createBatcher<number>({ maxBatch: 2, maxPending: 4, lingerMs: 0, flush });
    // Like mqtt.js: the next item is read only once the previous one's resume was called.
    let next = 1;
    const read = (): void => {
      if (next > 8) return;
      const item = next++;
      batcher.add(item, read);
    };
    read();
    await turn();
    expect(next).toBe(5);
    expect(batcher.pending).toBe(4);
    while (gate.batches.flat().length < 8) {
      gate.release();
      await turn();
    }
    gate.release();
    await batcher.drained();
    expect(gate.batches.flat()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(batcher.maxPendingSeen).toBe(4);
  });

  it("lets a batch linger for company, but not one with an urgent item in it", async () => {
    const { gate, flush } = gatedFlush();
    const batcher = createBatcher<number>({ maxBatch: 10, maxPending: 20, lingerMs: 60_000, flush, urgent: (n) => n < 0 });
    batcher.add(1, () => undefined);
    await turn();
    expect(gate.batches).toEqual([]);
    batcher.add(-1, () => undefined);
    await turn();
    expect(gate.batches).toEqual([[1, -1]]);
    gate.release();
    batcher.close();
  });

  it("goes on with the next batch when a flush rejects", async () => {
    const batches: number[][] = [];
    const batcher = createBatcher<number>({
      maxBatch: 1,
      maxPending: 4,
      lingerMs: 0,
      flush: (items) => {
        batches.push(items);
        return items[0] === 1 ? Promise.reject(new Error("sink down")) : Promise.resolve();
      },
    });
    batcher.add(1, () => undefined);
    batcher.add(2, () => undefined);
    await batcher.drained();
    expect(batches).toEqual([[1], [2]]);
  });

  it("refuses a pending bound smaller than the batch", () => {
    expect(() => createBatcher<number>({ maxBatch: 10, maxPending: 5, lingerMs: 0, flush: () => Promise.resolve() })).toThrow(RangeError);
  });
});
