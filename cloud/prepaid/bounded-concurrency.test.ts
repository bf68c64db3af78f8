// forEachBounded: every item once, never more than `limit` at a time, and a failure reported only after the rest.

import { describe, expect, it } from "vitest";
import { forEachBounded } from "./bounded-concurrency.js";

/** A step the test releases by hand, so "how many run at once" is observed, not timed. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe("forEachBounded", () => {
  it("runs every item once and never more than the limit at a time", async () => {
    const gates = Array.from({ length: 7 }, gate);
    let running = 0;
    let most = 0;
    const seen: number[] = [];
    const done = forEachBounded([0, 1, 2, 3, 4, 5, 6], 3, async (i) => {
      running++;
      most = Math.max(most, running);
      seen.push(i);
      await gates[i]!.promise;
      running--;
    });
    await Promise.resolve();
    expect(seen).toEqual([0, 1, 2]);
    for (const g of gates) {
      g.open();
      await new Promise((r) => setImmediate(r));
    }
    await done;
    expect(seen.sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(most).toBe(3);
  });

  it("finishes the other items before rejecting with the first failure", async () => {
    const finished: number[] = [];
    const result = forEachBounded([1, 2, 3, 4], 2, async (i) => {
      await new Promise((r) => setImmediate(r));
      if (i === 2) throw new Error("meter 2 refused");
      if (i === 3) throw new Error("meter 3 refused");
      finished.push(i);
    });
    await expect(result).rejects.toThrow("meter 2 refused");
    expect(finished.sort()).toEqual([1, 4]);
  });

  it("accepts an empty list and refuses a limit that is not a positive integer", async () => {
    await expect(forEachBounded([], 4, () => Promise.reject(new Error("never called")))).resolves.toBeUndefined();
    await expect(forEachBounded([1], 0, () => Promise.resolve())).rejects.toThrow(RangeError);
    await expect(forEachBounded([1], 1.5, () => Promise.resolve())).rejects.toThrow(RangeError);
  });
});
