// The read planner against the spec and against an independent minimum: every built-in profile, hand-written plans
// for the devices we know, and properties over random synthetic profiles. The minimum is computed here by a plain
// register-level check of "can these points share one request" and a DP over sorted points (plus an exhaustive
// search over every partition for small inputs), none of which reuses the planner's greedy or its pair units.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { applyScale, encodePointValue, pointSpan } from "../../protocols/codec/point-codec.js";
import { BUILT_IN_PROFILES, findProfile } from "../../protocols/profiles/index.js";
import type { DeviceLimits, DeviceProfile, Point } from "../../protocols/profiles/schema.js";
import { PLAN_ERROR_CODES, PlanError, decodeReadResult, planReads, type PlanOptions, type ReadRequest } from "./read-planner.js";

// ─── an independent model of what one request may hold ───────────────────────────────────────────────────────────

const SPEC_MAX = { 1: 2000, 2: 2000, 3: 125, 4: 125 } as const; // V1.1b3 §6.1-6.4

const isBitFc = (fcode: number): boolean => fcode === 1 || fcode === 2;
const spanOf = (p: Point): number => (isBitFc(p.fc) ? 1 : pointSpan(p));
const capOf = (fcode: 1 | 2 | 3 | 4, limits: DeviceLimits): number =>
  Math.min(isBitFc(fcode) ? limits.maxBitsPerRead : limits.maxRegistersPerRead, SPEC_MAX[fcode]);
const evenOf = (fcode: number, limits: DeviceLimits): boolean => !isBitFc(fcode) && limits.evenAlignment;

/** Registers (or bits) of a window that are neither covered by `group` nor the pair partner of a covered one. */
function unusedRuns(window: { address: number; quantity: number }, group: readonly Point[], even: boolean): number[] {
  const covered = new Set<number>();
  for (const p of group) for (let a = p.address; a < p.address + spanOf(p); a++) covered.add(a);
  const runs: number[] = [];
  let run = 0;
  for (let a = window.address; a < window.address + window.quantity; a++) {
    if (covered.has(a) || (even && covered.has(a ^ 1))) {
      if (run > 0) runs.push(run);
      run = 0;
    } else run++;
  }
  if (run > 0) runs.push(run);
  return runs;
}

/** Whether one read request can hold exactly this group of points (all of one FC), checked register by register. */
function fitsOneRequest(group: readonly Point[], limits: DeviceLimits, opts: PlanOptions): boolean {
  const first = group[0];
  if (first === undefined) return true;
  const even = evenOf(first.fc, limits);
  let lo = Math.min(...group.map((p) => p.address));
  let hi = Math.max(...group.map((p) => p.address + spanOf(p) - 1));
  if (even) {
    lo -= lo % 2;
    if (hi % 2 === 0) hi += 1;
  }
  if (hi - lo + 1 > capOf(first.fc, limits)) return false;
  const maxGap = (opts.bridgeGaps ?? true) ? limits.maxBridgeGap : 0;
  return unusedRuns({ address: lo, quantity: hi - lo + 1 }, group, even).every((run) => run <= maxGap);
}

const byAddress = (a: Point, b: Point): number => a.address - b.address || (a.bit ?? -1) - (b.bit ?? -1);

/** Fewest requests by DP over the points of each FC sorted by address: fewest[j] covers the first j points. */
function dpMinimum(points: readonly Point[], limits: DeviceLimits, opts: PlanOptions = {}): number {
  let total = 0;
  for (const fcode of [1, 2, 3, 4] as const) {
    const sorted = points.filter((p) => p.fc === fcode).sort(byAddress);
    const fewest = [0];
    for (let j = 1; j <= sorted.length; j++) {
      let best = Number.POSITIVE_INFINITY;
      for (let i = 0; i < j; i++) if (fitsOneRequest(sorted.slice(i, j), limits, opts)) best = Math.min(best, (fewest[i] ?? Infinity) + 1);
      fewest.push(best);
    }
    total += fewest[sorted.length] ?? 0;
  }
  return total;
}

/**
 * Fewest requests by trying every partition of the points into groups (any grouping, not just runs). A group is
 * only judged once complete: {3, 7} may not fit where {3, 4, 7} does, because the middle point closes the gap.
 */
function exhaustiveMinimum(points: readonly Point[], limits: DeviceLimits, opts: PlanOptions = {}): number {
  let best = Number.POSITIVE_INFINITY;
  const groups: Point[][] = [];
  const place = (k: number): void => {
    if (groups.length >= best) return;
    const p = points[k];
    if (p === undefined) {
      if (groups.every((g) => fitsOneRequest(g, limits, opts))) best = groups.length;
      return;
    }
    for (const g of groups) {
      if (g[0]?.fc !== p.fc) continue;
      g.push(p);
      place(k + 1);
      g.pop();
    }
    groups.push([p]);
    place(k + 1);
    groups.pop();
  };
  place(0);
  return best;
}

/** Every property a plan must have, checked from the outside. */
function expectValidPlan(plan: readonly ReadRequest[], points: readonly Point[], limits: DeviceLimits, opts: PlanOptions = {}): void {
  const seen = plan.flatMap((r) => r.points.map((pp) => pp.point.id));
  expect([...seen].sort()).toEqual(points.map((p) => p.id).sort());

  const maxGap = (opts.bridgeGaps ?? true) ? limits.maxBridgeGap : 0;
  plan.forEach((req, i) => {
    const even = evenOf(req.fc, limits);
    expect(req.quantity).toBeGreaterThanOrEqual(1);
    expect(req.quantity).toBeLessThanOrEqual(capOf(req.fc, limits));
    expect(req.address + req.quantity - 1).toBeLessThanOrEqual(0xffff);
    if (even) expect([req.address % 2, req.quantity % 2]).toEqual([0, 0]);
    for (const { point, offset } of req.points) {
      expect(point.fc).toBe(req.fc);
      expect(offset).toBe(point.address - req.address);
      expect(offset).toBeGreaterThanOrEqual(0);
      expect(offset + spanOf(point)).toBeLessThanOrEqual(req.quantity); // never split
    }
    const group = req.points.map((pp) => pp.point);
    const runs = unusedRuns(req, group, even);
    expect(runs.every((run) => run <= maxGap)).toBe(true);
    // No waste at the ends: the first and last register read are needed (or the pad of a needed one).
    expect(unusedRuns({ address: req.address, quantity: 1 }, group, even)).toEqual([]);
    expect(unusedRuns({ address: req.address + req.quantity - 1, quantity: 1 }, group, even)).toEqual([]);
    const prev = plan[i - 1];
    if (prev !== undefined) {
      // fc ascending, then address, and requests of one FC never overlap
      expect(prev.fc < req.fc || (prev.fc === req.fc && prev.address + prev.quantity <= req.address)).toBe(true);
    }
  });
}

const shape = (plan: readonly ReadRequest[]) => plan.map((r) => ({ fc: r.fc, address: r.address, quantity: r.quantity, points: r.points.map((pp) => `${pp.point.id}@${pp.offset}`) }));

function profile(id: string): DeviceProfile {
  const p = findProfile(id);
  if (p === undefined) throw new Error(`no built-in profile ${id}`);
  return p;
}

const pollable = (p: DeviceProfile): Point[] => p.points.filter((pt) => pt.poll);

function planError(fn: () => unknown): PlanError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PlanError) return error;
    throw error;
  }
  throw new Error("expected a PlanError");
}

// ─── built-in profiles ───────────────────────────────────────────────────────────────────────────────────────────

describe("planReads on the built-in profiles", () => {
  for (const p of BUILT_IN_PROFILES) {
    for (const bridgeGaps of [true, false]) {
      it(`plans ${p.id}'s pollable points within its limits, each once, in the minimum number of requests (bridgeGaps ${bridgeGaps})`, () => {
        const plan = planReads(p, pollable(p), { bridgeGaps });
        expectValidPlan(plan, pollable(p), p.limits, { bridgeGaps });
        expect(plan.length).toBe(dpMinimum(pollable(p), p.limits, { bridgeGaps }));
      });
    }
  }

  it("reads the SDM630's 16 values in 4 pair-aligned requests, bridging 0x3E..0x45 but not 0x12..0x33", () => {
    // FC 04, ≤ 80 registers, even start and count, gaps ≤ 16 registers.
    expect(shape(planReads(profile("eastron-sdm630-v2"), pollable(profile("eastron-sdm630-v2"))))).toEqual([
      {
        fc: 4,
        address: 0x0000, // 30001..30018: voltage, current, active power per phase, no gap
        quantity: 18,
        points: ["voltageL1@0", "voltageL2@2", "voltageL3@4", "currentL1@6", "currentL2@8", "currentL3@10", "activePowerL1@12", "activePowerL2@14", "activePowerL3@16"],
      },
      {
        fc: 4,
        address: 0x0034, // 30053..30076: gaps of 8 (0x36..0x3D) and 6 (0x40..0x45) registers bridged; 0x12..0x33 (34) is not
        quantity: 24,
        points: ["totalActivePower@0", "totalPowerFactor@10", "frequency@18", "importEnergy@20", "exportEnergy@22"],
      },
      { fc: 4, address: 0x00e0, quantity: 2, points: ["neutralCurrent@0"] }, // 30225
      { fc: 4, address: 0x0156, quantity: 2, points: ["totalEnergy@0"] }, // 30343
    ]);
  });

  it("reads the DDS238 from 0x0000 to the relay at 0x001A in one request, bridging gaps of 6 and 8 registers", () => {
    // FC 03, ≤ 32 registers, maxBridgeGap 8: 0x0002..0x0007 (6) and 0x0012..0x0019 (8) are read through.
    expect(shape(planReads(profile("hiking-dds238-2-zn"), pollable(profile("hiking-dds238-2-zn"))))).toEqual([
      {
        fc: 3,
        address: 0x0000,
        quantity: 27,
        points: ["totalEnergy@0", "exportEnergy@8", "importEnergy@10", "voltage@12", "current@13", "activePower@14", "reactivePower@15", "powerFactor@16", "frequency@17", "relay@26"],
      },
    ]);
  });

  it("splits the DDS238 at every unmapped register when bridging is off", () => {
    expect(shape(planReads(profile("hiking-dds238-2-zn"), pollable(profile("hiking-dds238-2-zn")), { bridgeGaps: false }))).toEqual([
      { fc: 3, address: 0x0000, quantity: 2, points: ["totalEnergy@0"] },
      { fc: 3, address: 0x0008, quantity: 10, points: ["exportEnergy@0", "importEnergy@2", "voltage@4", "current@5", "activePower@6", "reactivePower@7", "powerFactor@8", "frequency@9"] },
      { fc: 3, address: 0x001a, quantity: 1, points: ["relay@0"] },
    ]);
  });

  it("reads the eight relay-module coils with one FC 01 request", () => {
    expect(shape(planReads(profile("relay-module-8ch"), pollable(profile("relay-module-8ch"))))).toEqual([
      { fc: 1, address: 0, quantity: 8, points: [1, 2, 3, 4, 5, 6, 7, 8].map((ch) => `relay${ch}@${ch - 1}`) },
    ]);
  });

  it("reads the fire node with one FC 02 request for its flags and one FC 04 request for its measurements", () => {
    expect(shape(planReads(profile("agri-fire-node"), pollable(profile("agri-fire-node"))))).toEqual([
      { fc: 2, address: 0, quantity: 6, points: ["smokeAlarm@0", "heatAlarm@1", "fault@2", "selfTestActive@3", "tamper@4", "lowBattery@5"] },
      { fc: 4, address: 0, quantity: 7, points: ["smokeDensity@0", "temperature@1", "humidity@2", "battery@3", "faultCode@4", "uptime@5"] },
    ]);
  });

  it("reads the SDM120 in 3 requests: 0x00..0x1F, 0x46..0x4B, 0x156..0x157", () => {
    const plan = planReads(profile("eastron-sdm120"), pollable(profile("eastron-sdm120")));
    expect(plan.map((r) => [r.fc, r.address, r.quantity])).toEqual([
      [4, 0x00, 32],
      [4, 0x46, 6],
      [4, 0x156, 2],
    ]);
  });

  it("never reads an address no point covers when bridging is off, except the other half of a register pair", () => {
    for (const p of BUILT_IN_PROFILES) {
      for (const req of planReads(p, pollable(p), { bridgeGaps: false })) {
        const even = evenOf(req.fc, p.limits);
        const covered = new Set(req.points.flatMap(({ point }) => Array.from({ length: spanOf(point) }, (_, k) => point.address + k)));
        for (let a = req.address; a < req.address + req.quantity; a++) {
          expect(covered.has(a) || (even && covered.has(a ^ 1)), `${p.id} FC ${req.fc} register ${a}`).toBe(true);
        }
      }
    }
  });
});

// ─── hand-made cases ─────────────────────────────────────────────────────────────────────────────────────────────

const limits = (over: Partial<DeviceLimits> = {}): DeviceLimits => ({
  maxRegistersPerRead: 125,
  maxBitsPerRead: 2000,
  evenAlignment: false,
  maxWriteRegisters: 123,
  maxBridgeGap: 8,
  ...over,
});

function point(id: string, fcode: 1 | 2 | 3 | 4, address: number, type: Point["type"], extra: { bit?: number; scale?: number; wordOrder?: Point["wordOrder"] } = {}): Point {
  const base = { id, role: "fault", channel: id, fc: fcode, address, type, wordOrder: extra.wordOrder ?? "ABCD", scale: extra.scale ?? 1, unit: "1", description: id, poll: true } as const;
  return extra.bit === undefined ? base : { ...base, bit: extra.bit };
}

describe("planReads limits and errors", () => {
  it("pads a single register at an odd address on a pair device with the register before it", () => {
    const plan = planReads({ limits: limits({ evenAlignment: true }) }, [point("a", 3, 3, "u16")]);
    expect(shape(plan)).toEqual([{ fc: 3, address: 2, quantity: 2, points: ["a@1"] }]);
  });

  it("does not count pad registers as a bridged gap: u16 at 0 and 3 share one request even with bridging off", () => {
    const plan = planReads({ limits: limits({ evenAlignment: true }) }, [point("a", 3, 0, "u16"), point("b", 3, 3, "u16")], { bridgeGaps: false });
    expect(shape(plan)).toEqual([{ fc: 3, address: 0, quantity: 4, points: ["a@0", "b@3"] }]);
  });

  it("keeps bit flags of one register together in a one-register request", () => {
    const flags = [5, 0, 9].map((bit) => point(`f${bit}`, 3, 7, "u16", { bit }));
    expect(shape(planReads({ limits: limits() }, flags))).toEqual([{ fc: 3, address: 7, quantity: 1, points: ["f0@0", "f5@0", "f9@0"] }]);
  });

  it("caps an even-aligned request at an even quantity below an odd limit (125 → 124 registers)", () => {
    const pts = Array.from({ length: 63 }, (_, i) => point(`p${i}`, 4, 2 * i, "f32"));
    const plan = planReads({ limits: limits({ evenAlignment: true }) }, pts);
    expect(plan.map((r) => [r.address, r.quantity])).toEqual([
      [0, 124],
      [124, 2],
    ]);
  });

  it("never asks for more than the spec's 125 registers even if a limit claims more", () => {
    const pts = Array.from({ length: 130 }, (_, i) => point(`p${i}`, 3, i, "u16"));
    const plan = planReads({ limits: limits({ maxRegistersPerRead: 200 }) }, pts);
    expect(plan.map((r) => r.quantity)).toEqual([125, 5]);
  });

  it("plans nothing for no points", () => {
    expect(planReads({ limits: limits() }, [])).toEqual([]);
  });

  it("refuses a point larger than one request with EDGE_PLAN_POINT_TOO_LARGE", () => {
    const err = planError(() => planReads({ limits: limits({ maxRegistersPerRead: 3 }) }, [point("big", 3, 0, "f64")]));
    expect([err.code, err.pointId, err.retryable]).toEqual([PLAN_ERROR_CODES.POINT_TOO_LARGE, "big", false]);
  });

  it("refuses every register point on a pair device that allows one register per request", () => {
    const err = planError(() => planReads({ limits: limits({ evenAlignment: true, maxRegistersPerRead: 1 }) }, [point("a", 4, 0, "u16")]));
    expect(err.code).toBe("EDGE_PLAN_POINT_TOO_LARGE");
  });

  it("refuses a two-register point at an odd address on a pair device with EDGE_PLAN_POINT_MISALIGNED", () => {
    const err = planError(() => planReads({ limits: limits({ evenAlignment: true }) }, [point("f", 4, 5, "f32")]));
    expect([err.code, err.pointId]).toEqual(["EDGE_PLAN_POINT_MISALIGNED", "f"]);
  });

  it("refuses points that share registers unless they are flags of one register", () => {
    expect(planError(() => planReads({ limits: limits() }, [point("a", 3, 0, "u32"), point("b", 3, 1, "u16")])).code).toBe("EDGE_PLAN_POINTS_OVERLAP");
    expect(planReads({ limits: limits() }, [point("a", 3, 1, "u16", { bit: 0 }), point("b", 3, 1, "u16", { bit: 1 })])).toHaveLength(1);
  });

  it("refuses the same point id twice, a point past 65535, a bool on a register FC and nonsense limits", () => {
    expect(planError(() => planReads({ limits: limits() }, [point("a", 3, 0, "u16"), point("a", 3, 9, "u16")])).code).toBe("EDGE_PLAN_DUPLICATE_POINT");
    expect(planError(() => planReads({ limits: limits() }, [point("a", 3, 0xffff, "u32")])).code).toBe("EDGE_PLAN_POINT_OUT_OF_RANGE");
    expect(planError(() => planReads({ limits: limits() }, [point("a", 3, 0, "bool")])).code).toBe("EDGE_PLAN_TYPE_MISMATCH");
    expect(planError(() => planReads({ limits: limits({ maxRegistersPerRead: 0 }) }, [point("a", 3, 0, "u16")])).code).toBe("EDGE_PLAN_BAD_LIMITS");
  });

  it("refuses an answer of the wrong length or kind with EDGE_PLAN_RESULT_MISMATCH", () => {
    const [regs] = planReads({ limits: limits() }, [point("a", 3, 0, "u32")]);
    const [coils] = planReads({ limits: limits() }, [point("c", 1, 0, "bool")]);
    if (regs === undefined || coils === undefined) throw new Error("no plan");
    expect(planError(() => decodeReadResult(regs, [1])).code).toBe("EDGE_PLAN_RESULT_MISMATCH");
    expect(planError(() => decodeReadResult(regs, [true, false])).code).toBe("EDGE_PLAN_RESULT_MISMATCH");
    expect(planError(() => decodeReadResult(coils, [1])).code).toBe("EDGE_PLAN_RESULT_MISMATCH");
    expect(planError(() => decodeReadResult(coils, Array<boolean>(9).fill(false))).code).toBe("EDGE_PLAN_RESULT_MISMATCH");
    expect(decodeReadResult(coils, [true, false, false, false, false, false, false, false])).toEqual([{ ok: true, pointId: "c", value: 1, raw: 1, words: [] }]);
  });

  it("decodes a DDS238 answer into one reading per point: 0x0001E240 × 0.01 kWh = 1234.56 kWh, relay on", () => {
    const [req] = planReads(profile("hiking-dds238-2-zn"), pollable(profile("hiking-dds238-2-zn")));
    if (req === undefined) throw new Error("no plan");
    const words = Array<number>(27).fill(0xffff);
    words.splice(0, 2, 0x0001, 0xe240); // total energy 123456 → 1234.56 kWh
    words.splice(10, 2, 0x0000, 0x3039); // import energy 12345 → 123.45 kWh
    words[12] = 2301; // voltage 230.1 V
    words[14] = 0xfff6; // active power −10 W
    words[26] = 1; // relay closed
    const byId = new Map(decodeReadResult(req, words).map((r) => [r.pointId, r]));
    expect(byId.size).toBe(10);
    expect(byId.get("totalEnergy")).toMatchObject({ ok: true, value: 1234.56, raw: 123456 });
    expect(byId.get("importEnergy")).toMatchObject({ ok: true, value: 123.45 });
    expect(byId.get("voltage")).toMatchObject({ ok: true, value: 230.1 });
    expect(byId.get("activePower")).toMatchObject({ ok: true, value: -10 });
    expect(byId.get("relay")).toMatchObject({ ok: true, value: 1, words: [1] });
  });
});

// ─── properties over synthetic profiles ──────────────────────────────────────────────────────────────────────────

const limitsArb = fc.record({
  maxRegistersPerRead: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 125 })),
  maxBitsPerRead: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 2000 })),
  evenAlignment: fc.boolean(),
  maxWriteRegisters: fc.constant(123),
  maxBridgeGap: fc.integer({ min: 0, max: 10 }),
});

const REGISTER_TYPES = ["u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bcd16", "flag"] as const;

const candidateArb = fc.record({
  fc: fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const),
  address: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 24 }) }, { weight: 1, arbitrary: fc.integer({ min: 0xffc0, max: 0xffff }) }),
  type: fc.constantFrom(...REGISTER_TYPES),
  bit: fc.integer({ min: 0, max: 15 }),
  wordOrder: fc.constantFrom("ABCD" as const, "CDAB" as const, "BADC" as const, "DCBA" as const),
  scaleExponent: fc.integer({ min: -3, max: 3 }),
  seed: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  float: fc.float({ noNaN: true, noDefaultInfinity: true }),
  double: fc.double({ noNaN: true, noDefaultInfinity: true }),
});
type Candidate = (typeof candidateArb extends fc.Arbitrary<infer T> ? T : never);

interface Synthetic {
  readonly limits: DeviceLimits;
  readonly opts: PlanOptions;
  readonly points: Point[];
  /** The raw value each point holds in the register image. */
  readonly raw: Map<string, number>;
}

/** Turn candidates into a plannable point list: no overlaps, nothing too large or misaligned, flags on distinct bits. */
function synthesise(limits: DeviceLimits, candidates: readonly Candidate[], bridgeGaps: boolean): Synthetic {
  const points: Point[] = [];
  const raw = new Map<string, number>();
  const owners = new Map<string, "whole" | Set<number>>();
  candidates.forEach((c, i) => {
    const id = `p${i}`;
    const bitFc = isBitFc(c.fc);
    const isFlag = !bitFc && c.type === "flag";
    const type: Point["type"] = bitFc ? "bool" : c.type === "flag" ? "u16" : c.type;
    const floaty = type === "f32" || type === "f64";
    const scale = isFlag || floaty || bitFc ? 1 : 10 ** c.scaleExponent;
    const p = point(id, c.fc, c.address, type, isFlag ? { bit: c.bit, wordOrder: c.wordOrder } : { scale, wordOrder: c.wordOrder });
    const span = spanOf(p);
    const even = evenOf(c.fc, limits);
    if (c.address + span - 1 > 0xffff) return;
    if (even && span > 1 && c.address % 2 !== 0) return;
    const windowNeeded = even ? span + (span === 1 ? 1 : 0) : span;
    if (windowNeeded > capOf(c.fc, limits) - (even ? capOf(c.fc, limits) % 2 : 0)) return;
    const keys = Array.from({ length: span }, (_, k) => `${c.fc}:${c.address + k}`);
    const clash = keys.some((key) => {
      const owner = owners.get(key);
      return owner !== undefined && (!isFlag || owner === "whole" || owner.has(c.bit));
    });
    if (clash) return;
    for (const key of keys) {
      if (isFlag) {
        const owner = owners.get(key);
        owners.set(key, owner instanceof Set ? owner.add(c.bit) : new Set([c.bit]));
      } else owners.set(key, "whole");
    }
    points.push(p);
    raw.set(id, rawValue(type, isFlag || bitFc, c));
  });
  return { limits, opts: { bridgeGaps }, points, raw };
}

/** A raw value in the type's range, derived from the candidate's random seeds. */
function rawValue(type: Point["type"], oneBit: boolean, c: Candidate): number {
  const s = c.seed;
  if (oneBit) return s & 1;
  switch (type) {
    case "u16":
      return s & 0xffff;
    case "i16":
      return (s << 16) >> 16;
    case "u32":
      return s >>> 0;
    case "i32":
      return s | 0;
    case "u64":
      return Math.abs(s) * 0x10000 + (s & 0xffff); // < 2^47, so exact after scaling and back
    case "i64":
      return s * 0x10000 + (s & 0xffff);
    case "bcd16":
      return Math.abs(s) % 10000;
    case "f32":
      return c.float;
    case "f64":
      return c.double;
    case "bool":
      return s & 1;
  }
}

const syntheticArb = fc
  .tuple(limitsArb, fc.array(candidateArb, { minLength: 0, maxLength: 30, size: "large" }), fc.boolean())
  .map(([l, candidates, bridgeGaps]) => synthesise(l, candidates, bridgeGaps));

/** Fill each table's image: planned values where points are, a fixed pattern where none is. */
function registerImage(s: Synthetic): { words: (fcode: number, address: number) => number; bit: (fcode: number, address: number) => boolean } {
  const words = new Map<string, number>();
  const bits = new Map<string, boolean>();
  for (const p of s.points) {
    const raw = s.raw.get(p.id) ?? 0;
    if (isBitFc(p.fc)) bits.set(`${p.fc}:${p.address}`, raw === 1);
    else if (p.bit !== undefined) words.set(`${p.fc}:${p.address}`, (words.get(`${p.fc}:${p.address}`) ?? 0) | (raw << p.bit));
    else encodePointValue(p, applyScale(raw, p.scale)).forEach((w, k) => words.set(`${p.fc}:${p.address + k}`, w));
  }
  return {
    words: (fcode, address) => words.get(`${fcode}:${address}`) ?? (address * 7919 + fcode) & 0xffff,
    bit: (fcode, address) => bits.get(`${fcode}:${address}`) ?? (address + fcode) % 3 === 0,
  };
}

describe("planReads properties over random synthetic profiles", () => {
  it("covers every point exactly once, within every limit, never splitting a point", () => {
    fc.assert(
      fc.property(syntheticArb, (s) => {
        expectValidPlan(planReads({ limits: s.limits }, s.points, s.opts), s.points, s.limits, s.opts);
      }),
      { numRuns: 400 },
    );
  });

  it("uses exactly as many requests as the DP minimum over sorted points", () => {
    fc.assert(
      fc.property(syntheticArb, (s) => {
        expect(planReads({ limits: s.limits }, s.points, s.opts).length).toBe(dpMinimum(s.points, s.limits, s.opts));
      }),
      { numRuns: 400 },
    );
  });

  it("uses exactly as many requests as the best of every possible grouping of up to 7 points", () => {
    const small = fc
      .tuple(limitsArb, fc.array(candidateArb.map((c) => ({ ...c, address: c.address % 24 })), { maxLength: 7 }), fc.boolean())
      .map(([l, candidates, bridgeGaps]) => synthesise(l, candidates, bridgeGaps));
    fc.assert(
      fc.property(small, (s) => {
        expect(planReads({ limits: s.limits }, s.points, s.opts).length).toBe(exhaustiveMinimum(s.points, s.limits, s.opts));
      }),
      { numRuns: 300 },
    );
  });

  it("returns one reading per planned point with the value encoded into the register image", () => {
    fc.assert(
      fc.property(syntheticArb, (s) => {
        const image = registerImage(s);
        const readings = planReads({ limits: s.limits }, s.points, s.opts).flatMap((req) => {
          const answer = isBitFc(req.fc)
            ? Array.from({ length: Math.ceil(req.quantity / 8) * 8 }, (_, k) => k < req.quantity && image.bit(req.fc, req.address + k))
            : Array.from({ length: req.quantity }, (_, k) => image.words(req.fc, req.address + k));
          const out = decodeReadResult(req, answer);
          expect(out.map((r) => r.pointId)).toEqual(req.points.map((pp) => pp.point.id));
          return out;
        });
        expect(readings.map((r) => r.pointId).sort()).toEqual(s.points.map((p) => p.id).sort());
        const byId = new Map(s.points.map((p) => [p.id, p]));
        for (const r of readings) {
          const p = byId.get(r.pointId);
          const raw = s.raw.get(r.pointId);
          if (p === undefined || raw === undefined) throw new Error(`unknown reading ${r.pointId}`);
          expect(r.ok).toBe(true);
          if (r.ok) {
            expect(r.raw).toBe(raw);
            expect(r.value).toBe(applyScale(raw, p.scale));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("refuses a random point larger than the request limit with EDGE_PLAN_POINT_TOO_LARGE", () => {
    fc.assert(
      fc.property(fc.constantFrom("u32" as const, "f32" as const, "u64" as const, "f64" as const), fc.boolean(), fc.integer({ min: 0, max: 100 }), (type, even, half) => {
        const words = type === "u32" || type === "f32" ? 2 : 4;
        const err = planError(() => planReads({ limits: limits({ maxRegistersPerRead: words - 1, evenAlignment: even }) }, [point("x", 3, 2 * half, type)]));
        expect(err.code).toBe("EDGE_PLAN_POINT_TOO_LARGE");
      }),
    );
  });
});
