import { describe, expect, it } from "vitest";
import { seededRandom } from "../models/random.js";
import { chooseFault, faultSchema, type Fault } from "./faults.js";

const f = (input: unknown): Fault => faultSchema.parse(input);

describe("fault selection", () => {
  it("applies a fault without probability to every request", () => {
    const faults = [f({ kind: "no-answer" })];
    for (let i = 0; i < 10; i++) expect(chooseFault(faults, seededRandom(i)).fault?.kind).toBe("no-answer");
  });

  it("forgets a counted fault after its last use", () => {
    let faults = [f({ kind: "bad-crc", count: 2 })];
    const rnd = seededRandom(1);
    const first = chooseFault(faults, rnd);
    faults = first.remaining;
    expect(faults).toEqual([{ kind: "bad-crc", probability: 1, count: 1 }]);
    const second = chooseFault(faults, rnd);
    expect(second.fault?.kind).toBe("bad-crc");
    expect(second.remaining).toEqual([]);
    expect(chooseFault(second.remaining, rnd).fault).toBeUndefined();
  });

  it("applies a probabilistic fault to about that share of requests, reproducibly for a seed", () => {
    const faults = [f({ kind: "exception", code: 6, probability: 0.25 })];
    const hits = (seed: number): number => {
      const rnd = seededRandom(seed);
      let n = 0;
      for (let i = 0; i < 4000; i++) if (chooseFault(faults, rnd).fault) n++;
      return n;
    };
    expect(hits(5)).toBe(hits(5));
    expect(hits(5) / 4000).toBeGreaterThan(0.2);
    expect(hits(5) / 4000).toBeLessThan(0.3);
  });

  it("refuses unknown fault kinds and exception codes the simulator does not play", () => {
    expect(faultSchema.safeParse({ kind: "explode" }).success).toBe(false);
    expect(faultSchema.safeParse({ kind: "exception", code: 3 }).success).toBe(false);
    expect(faultSchema.safeParse({ kind: "slow", delayMs: 0 }).success).toBe(false);
    expect(faultSchema.safeParse({ kind: "no-answer", probability: 1.5 }).success).toBe(false);
  });
});
