// The bus budget in exact figures: frame sizes and line times worked out by hand from Modbus over Serial Line
// V1.02 §2.5.1 (start bit, 8 data bits, parity, stop bits; 3.5-character silence) and cross-checked with frames.ts,
// then the warning and refusal thresholds, and the requests lower bound against the planner.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { rtuTransactionLimitPerSecond } from "../../protocols/modbus/frames.js";
import { BUILT_IN_PROFILES, findProfile } from "../../protocols/profiles/index.js";
import type { DeviceProfile, Point } from "../../protocols/profiles/schema.js";
import { BUS_UTILISATION_LIMITS, BusBudgetError, busBudget, requestsLowerBound, transactionCost, type BusLine } from "./bus-budget.js";
import { planReads } from "./read-planner.js";

const line9600n1: BusLine = { baud: 9600, parity: "none", stopBits: 1, turnaroundMs: 0 };
const line9600e1: BusLine = { baud: 9600, parity: "even", stopBits: 1, turnaroundMs: 0 };

function profile(id: string): DeviceProfile {
  const p = findProfile(id);
  if (p === undefined) throw new Error(`no built-in profile ${id}`);
  return p;
}
const pollable = (p: DeviceProfile): Point[] => p.points.filter((pt) => pt.poll);

describe("transactionCost", () => {
  it("costs one SDM120 read of 10 registers at 9600 8N1 41.667 ms: 8 + 25 bytes and two silences", () => {
    // request: unit, fc 04, address ×2, quantity ×2, CRC ×2 = 8 bytes; answer: unit, fc, byte count, 20 data, CRC ×2 = 25.
    // 33 bytes × 10 bits / 9600 baud = 34.375 ms; 2 × 3.5 chars × 10 bits / 9600 = 7.292 ms; total 125/3 ms.
    const t = transactionCost({ fc: 4, address: 0, quantity: 10 }, line9600n1);
    expect([t.requestBytes, t.responseBytes]).toEqual([8, 25]);
    expect(t.timeMs).toBeCloseTo(125 / 3, 9);
    expect(1000 / t.timeMs).toBeCloseTo(rtuTransactionLimitPerSecond(4, 10, line9600n1), 9); // 24 txn/s
  });

  it("costs the same read at 9600 8E1 45.833 ms, the 21.8 txn/s of the performance notes", () => {
    // 11 bits per character: 33 × 11 / 9.6 = 37.8125 ms + 2 × 38.5 / 9.6 = 8.0208 ms.
    const t = transactionCost({ fc: 4, address: 0, quantity: 10 }, line9600e1);
    expect(t.timeMs).toBeCloseTo(45.8333333, 6);
    expect(1000 / t.timeMs).toBeCloseTo(21.818, 3);
  });

  it("adds the device turnaround once per transaction", () => {
    const t = transactionCost({ fc: 4, address: 0, quantity: 10 }, { ...line9600n1, turnaroundMs: 5 });
    expect(t.timeMs).toBeCloseTo(125 / 3 + 5, 9);
  });

  it("uses the fixed 1.75 ms silence above 19200 baud: 60 registers at 115200 8N1 take 16.21 ms", () => {
    // 8 + 125 bytes × 10 bits / 115200 = 11.545 ms, + 2 × 1.75 ms (§2.5.1.1).
    const line: BusLine = { baud: 115200, parity: "none", stopBits: 1, turnaroundMs: 0 };
    const t = transactionCost({ fc: 3, address: 0, quantity: 60 }, line);
    expect(t.responseBytes).toBe(125);
    expect(t.timeMs).toBeCloseTo((133 * 10 * 1000) / 115200 + 3.5, 9);
    expect(1000 / t.timeMs).toBeCloseTo(rtuTransactionLimitPerSecond(3, 60, line), 9);
  });

  it("counts coils as bits packed eight to a byte: 8 relay coils answer in 6 bytes", () => {
    const t = transactionCost({ fc: 1, address: 0, quantity: 8 }, line9600n1);
    expect([t.requestBytes, t.responseBytes]).toEqual([8, 6]);
    expect(transactionCost({ fc: 2, address: 0, quantity: 9 }, line9600n1).responseBytes).toBe(7);
  });

  it("refuses quantities that have no frame and lines that cannot exist", () => {
    expect(() => transactionCost({ fc: 3, address: 0, quantity: 126 }, line9600n1)).toThrow(BusBudgetError);
    expect(() => transactionCost({ fc: 1, address: 0, quantity: 0 }, line9600n1)).toThrow(BusBudgetError);
    expect(() => transactionCost({ fc: 3, address: 0, quantity: 1 }, { ...line9600n1, turnaroundMs: -1 })).toThrow(/turnaround/);
    expect(() => busBudget(line9600n1, [{ deviceId: "m", requests: [], pollIntervalMs: 0 }])).toThrow(BusBudgetError);
  });
});

describe("busBudget", () => {
  const sdm630Plan = planReads(profile("eastron-sdm630-v2"), pollable(profile("eastron-sdm630-v2")));
  const line5ms: BusLine = { ...line9600n1, turnaroundMs: 5 };

  it("costs an SDM630 poll cycle at 9600 8N1 with 5 ms turnaround 199.17 ms: 144 bytes, 8 silences, 4 turnarounds", () => {
    // 4 requests × 8 bytes + answers 41 + 53 + 9 + 9 = 144 bytes → 150 ms; 8 × 3.6458 = 29.167 ms; 4 × 5 = 20 ms.
    const b = busBudget(line5ms, [{ deviceId: "sdm630", requests: sdm630Plan, pollIntervalMs: 1000 }]);
    const d = b.perDevice[0];
    expect(d?.transactions.map((t) => t.responseBytes)).toEqual([41, 53, 9, 9]);
    expect(d?.cycleMs).toBeCloseTo(150 + 175 / 6 + 20, 9);
    expect(b.busyMsPerSecond).toBeCloseTo(199.1666667, 6);
    expect(b.utilisation).toBeCloseTo(0.1991666667, 9);
    expect(b).toMatchObject({ ok: true, warnings: [] });
    expect(b.refusal).toBeUndefined();
  });

  it("adds up every device on the line, scaled by each one's poll interval", () => {
    const one = { requests: sdm630Plan, pollIntervalMs: 1000 };
    const b = busBudget(line5ms, [
      { deviceId: "a", ...one },
      { deviceId: "b", ...one, pollIntervalMs: 2000 },
    ]);
    expect(b.perDevice.map((d) => d.busyMsPerSecond)).toEqual([expect.closeTo(199.1667, 3), expect.closeTo(99.5833, 3)]);
    expect(b.utilisation).toBeCloseTo(0.29875, 9);
  });

  it("warns above 70 % of the line: four SDM630s polled every second use 80 %", () => {
    const b = busBudget(line5ms, ["a", "b", "c", "d"].map((deviceId) => ({ deviceId, requests: sdm630Plan, pollIntervalMs: 1000 })));
    expect(b.ok).toBe(true);
    expect(b.utilisation).toBeGreaterThan(BUS_UTILISATION_LIMITS.warnAbove);
    expect(b.warnings).toEqual(["poll plan uses 80 % of the line at 9600 baud 8N1, turnaround 5 ms: little room left for retries and commands"]);
  });

  it("refuses a plan that needs 1.3 s of line time per second", () => {
    // 10 registers every 32 ms: (125/3) × 1000 / 32 = 1302 ms per second.
    const b = busBudget(line9600n1, [{ deviceId: "sdm120", requests: [{ fc: 4, address: 0, quantity: 10 }], pollIntervalMs: 32 }]);
    expect(b.ok).toBe(false);
    expect(b.utilisation).toBeCloseTo(1.3020833, 6);
    expect(b.refusal).toContain("poll plan needs 1.3 s of line time per second at 9600 baud");
    expect(b.warnings).toEqual(["device sdm120 needs 42 ms of line time per cycle but is polled every 32 ms"]);
  });

  it("accepts, with a warning, a plan that fills the line exactly", () => {
    // At 1000 baud 8N1 a character is 10 ms: 8-byte request 80 ms + 7-byte answer 70 ms + 2 × 35 ms + 30 ms = 250 ms.
    const line: BusLine = { baud: 1000, parity: "none", stopBits: 1, turnaroundMs: 30 };
    const full = busBudget(line, [{ deviceId: "m", requests: [{ fc: 3, address: 0, quantity: 1 }], pollIntervalMs: 250 }]);
    expect([full.ok, full.utilisation, full.warnings.length]).toEqual([true, 1, 1]);
    const half = busBudget(line, [{ deviceId: "m", requests: [{ fc: 3, address: 0, quantity: 1 }], pollIntervalMs: 500 }]);
    expect([half.ok, half.utilisation, half.warnings]).toEqual([true, 0.5, []]);
  });

  it("says the refusal exactly when ok is false, for any plan", () => {
    const req = fc.record({ fc: fc.constantFrom(1 as const, 2 as const, 3 as const, 4 as const), address: fc.constant(0), quantity: fc.integer({ min: 1, max: 125 }) });
    fc.assert(
      fc.property(fc.array(fc.record({ deviceId: fc.string(), requests: fc.array(req, { maxLength: 6 }), pollIntervalMs: fc.integer({ min: 100, max: 10_000 }) }), { maxLength: 8 }), (devices) => {
        const b = busBudget(line5ms, devices);
        expect(b.ok).toBe(b.utilisation <= BUS_UTILISATION_LIMITS.refuseAbove);
        expect(b.refusal === undefined).toBe(b.ok);
        expect(b.busyMsPerSecond).toBeCloseTo(b.perDevice.reduce((s, d) => s + d.busyMsPerSecond, 0), 6);
      }),
    );
  });
});

describe("requestsLowerBound", () => {
  it("equals the planner's request count for every built-in profile, with and without bridging", () => {
    for (const p of BUILT_IN_PROFILES) {
      for (const bridgeGaps of [true, false]) {
        expect(requestsLowerBound(p, pollable(p), { bridgeGaps }), p.id).toBe(planReads(p, pollable(p), { bridgeGaps }).length);
      }
    }
  });

  it("is 4 for the SDM630 against 16 requests read one value at a time", () => {
    const p = profile("eastron-sdm630-v2");
    expect([requestsLowerBound(p, pollable(p)), pollable(p).length]).toEqual([4, 16]);
  });

  it("is 1 for the DDS238 with bridging and 3 without", () => {
    const p = profile("hiking-dds238-2-zn");
    expect([requestsLowerBound(p, pollable(p)), requestsLowerBound(p, pollable(p), { bridgeGaps: false })]).toEqual([1, 3]);
  });

  it("is 0 for no points", () => {
    expect(requestsLowerBound(profile("eastron-sdm120"), [])).toBe(0);
  });
});
