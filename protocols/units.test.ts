// Integer energy and money units: exact where the arithmetic allows, and explicit about every fraction otherwise.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  UNIT_ERROR_CODES,
  UnitError,
  energyAffordableWh,
  energyCostFen,
  fenToYuan,
  floatEnergyToWh,
  integerRegisterToWh,
  yuanPerKwhToPrice,
  yuanToFen,
} from "./units.js";

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof UnitError ? error.code : `not a UnitError: ${String(error)}`;
  }
  return undefined;
}

describe("integerRegisterToWh", () => {
  it("converts the DDS238 import register exactly: raw 123456 × 0.01 kWh = 1,234,560 Wh", () => {
    expect(integerRegisterToWh(123456, -2, "kWh", "exact")).toEqual({ wh: 1_234_560, exact: true, droppedWh: 0 });
  });

  it("converts a register already in Wh unchanged", () => {
    expect(integerRegisterToWh(987654, 0, "Wh", "exact")).toEqual({ wh: 987654, exact: true, droppedWh: 0 });
  });

  it("scales MWh and positive exponents up exactly", () => {
    expect(integerRegisterToWh(5, -3, "MWh", "exact")).toEqual({ wh: 5000, exact: true, droppedWh: 0 });
    expect(integerRegisterToWh(12, 1, "kWh", "exact")).toEqual({ wh: 120_000, exact: true, droppedWh: 0 });
  });

  it("is exact when a finer scale happens to land on a whole Wh", () => {
    expect(integerRegisterToWh(12340, -4, "kWh", "exact")).toEqual({ wh: 1234, exact: true, droppedWh: 0 });
  });

  it("floors 1234.5 Wh to 1234 and reports 0.5 Wh dropped", () => {
    expect(integerRegisterToWh(12345, -4, "kWh", "floor")).toEqual({ wh: 1234, exact: false, droppedWh: 0.5 });
  });

  it("rounds 1234.5 Wh to nearest as 1235 and reports −0.5 Wh dropped", () => {
    expect(integerRegisterToWh(12345, -4, "kWh", "nearest")).toEqual({ wh: 1235, exact: false, droppedWh: -0.5 });
  });

  it("rounds 1234.4 Wh to nearest as 1234", () => {
    expect(integerRegisterToWh(12344, -4, "kWh", "nearest")).toEqual({ wh: 1234, exact: false, droppedWh: 0.4 });
  });

  it("floors a negative (signed) register towards −∞ and rounds its halves towards +∞", () => {
    expect(integerRegisterToWh(-12345, -4, "kWh", "floor")).toEqual({ wh: -1235, exact: false, droppedWh: 0.5 });
    expect(integerRegisterToWh(-12345, -4, "kWh", "nearest")).toEqual({ wh: -1234, exact: false, droppedWh: -0.5 });
  });

  it("throws INEXACT under 'exact' rounding when a fraction of a Wh would be dropped", () => {
    expect(errorCode(() => integerRegisterToWh(12345, -4, "kWh", "exact"))).toBe(UNIT_ERROR_CODES.INEXACT);
  });

  it("throws NOT_INTEGER for a raw value that is not a safe integer", () => {
    expect(errorCode(() => integerRegisterToWh(1.5, -2, "kWh", "exact"))).toBe(UNIT_ERROR_CODES.NOT_INTEGER);
    expect(errorCode(() => integerRegisterToWh(Number.NaN, -2, "kWh", "exact"))).toBe(UNIT_ERROR_CODES.NOT_INTEGER);
  });

  it("throws UNSAFE when the Wh would pass 2^53, in either sign", () => {
    expect(errorCode(() => integerRegisterToWh(2 ** 52, 0, "kWh", "exact"))).toBe(UNIT_ERROR_CODES.UNSAFE);
    expect(errorCode(() => integerRegisterToWh(-(2 ** 52), 0, "kWh", "exact"))).toBe(UNIT_ERROR_CODES.UNSAFE);
  });

  it("always satisfies raw × 10^exp = wh + droppedWh with |droppedWh| < 1", () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }), fc.integer({ min: -6, max: -1 }), fc.constantFrom("floor", "nearest" as const), (raw, exp, rounding) => {
        const r = integerRegisterToWh(raw, exp, "Wh", rounding);
        expect(Number.isSafeInteger(r.wh)).toBe(true);
        expect(Math.abs(r.droppedWh)).toBeLessThan(1);
        if (rounding === "nearest") expect(Math.abs(r.droppedWh)).toBeLessThanOrEqual(0.5);
        if (rounding === "floor") expect(r.droppedWh).toBeGreaterThanOrEqual(0);
        expect(r.exact).toBe(r.droppedWh === 0);
        // Checked in integers: raw = wh × 10^-exp + dropped × 10^-exp.
        expect(r.wh * 10 ** -exp + Math.round(r.droppedWh * 10 ** -exp)).toBe(raw);
      }),
    );
  });
});

describe("floatEnergyToWh", () => {
  it("rounds 1234.5678 kWh to 1,234,568 Wh and reports about −0.2 Wh dropped", () => {
    const r = floatEnergyToWh(1234.5678, "kWh", "nearest");
    expect(r.wh).toBe(1_234_568);
    expect(r.exact).toBe(false);
    expect(r.droppedWh).toBeCloseTo(-0.2, 6);
  });

  it("floors 1234.5678 kWh to 1,234,567 Wh and reports about 0.8 Wh dropped", () => {
    const r = floatEnergyToWh(1234.5678, "kWh", "floor");
    expect(r.wh).toBe(1_234_567);
    expect(r.droppedWh).toBeCloseTo(0.8, 6);
  });

  it("reports what an f32 register's own rounding dropped", () => {
    // 1234.567 is not representable in f32; the nearest f32 is 1234.5670166015625.
    const r = floatEnergyToWh(Math.fround(1234.567), "kWh", "nearest");
    expect(r).toEqual({ wh: 1_234_567, exact: false, droppedWh: 0.0166015625 });
  });

  it("is exact for a value that is a whole Wh", () => {
    expect(floatEnergyToWh(1.5, "kWh", "exact")).toEqual({ wh: 1500, exact: true, droppedWh: 0 });
    expect(floatEnergyToWh(250, "Wh", "exact")).toEqual({ wh: 250, exact: true, droppedWh: 0 });
  });

  it("throws INEXACT under 'exact' rounding when there is a fraction", () => {
    expect(errorCode(() => floatEnergyToWh(1234.5678, "kWh", "exact"))).toBe(UNIT_ERROR_CODES.INEXACT);
  });

  it("throws for NaN and infinities, which a broken register can decode to", () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(errorCode(() => floatEnergyToWh(value, "kWh", "nearest"))).toBe(UNIT_ERROR_CODES.NOT_INTEGER);
    }
  });

  it("throws for an energy beyond 2^53 Wh (as NOT_INTEGER, where integerRegisterToWh says UNSAFE)", () => {
    expect(errorCode(() => floatEnergyToWh(1e13, "kWh", "nearest"))).toBe(UNIT_ERROR_CODES.NOT_INTEGER);
  });
});

describe("yuanToFen and fenToYuan", () => {
  it.each([
    ["12.34", 1234],
    ["-0.5", -50],
    ["100", 10000],
    ["0.05", 5],
    [" 7.1 ", 710],
    ["0", 0],
    ["9999999999999.99", 999_999_999_999_999],
  ])("parses %j as %i fen", (text, fen) => {
    expect(yuanToFen(text)).toBe(fen);
  });

  it("parses a negative zero as plain 0, not −0", () => {
    expect(Object.is(yuanToFen("-0.00"), 0)).toBe(true);
  });

  it.each(["1.234", "abc", "1e5", "", "1.", ".5", "+1", "1,00", "¥1", "0x10", "12345678901234"])("refuses %j", (text) => {
    expect(errorCode(() => yuanToFen(text))).toBe(UNIT_ERROR_CODES.BAD_DECIMAL);
  });

  it.each([
    [1234, "12.34"],
    [-5, "-0.05"],
    [0, "0.00"],
    [100, "1.00"],
    [-123456, "-1234.56"],
  ])("formats %i fen as %j", (fen, text) => {
    expect(fenToYuan(fen)).toBe(text);
  });

  it("refuses to format a fractional fen", () => {
    expect(errorCode(() => fenToYuan(1.5))).toBe(UNIT_ERROR_CODES.NOT_INTEGER);
  });

  it("round-trips every fen amount up to 13 digits of yuan", () => {
    fc.assert(fc.property(fc.integer({ min: -(10 ** 15) + 1, max: 10 ** 15 - 1 }), (fen) => yuanToFen(fenToYuan(fen)) === fen));
  });
});

describe("yuanPerKwhToPrice", () => {
  it("parses ¥0.5283/kWh as 5283 centi-fen per kWh", () => {
    expect(yuanPerKwhToPrice("0.5283")).toBe(5283);
    expect(yuanPerKwhToPrice("1.2")).toBe(12000);
  });

  it("refuses more than 4 decimals and negative prices", () => {
    expect(errorCode(() => yuanPerKwhToPrice("0.52831"))).toBe(UNIT_ERROR_CODES.BAD_DECIMAL);
    expect(errorCode(() => yuanPerKwhToPrice("-0.5"))).toBe(UNIT_ERROR_CODES.BAD_DECIMAL);
  });
});

describe("energyCostFen", () => {
  // 1 kWh at ¥0.5283 is 52.83 fen: numerator 5283 × 1000, denominator 100,000.
  it.each([
    ["floor", 52],
    ["ceil", 53],
    ["half-up", 53],
  ] as const)("prices 1 kWh at ¥0.5283 as 52.83 fen, %s → %i", (rounding, fen) => {
    expect(energyCostFen(5283, 1000, rounding)).toEqual({ fen, numerator: 5_283_000n, denominator: 100_000n });
  });

  it.each([
    ["floor", -53],
    ["ceil", -52],
    ["half-up", -53],
  ] as const)("prices −1 kWh (a refund) at ¥0.5283 as −52.83 fen, %s → %i", (rounding, fen) => {
    expect(energyCostFen(5283, -1000, rounding)).toEqual({ fen, numerator: -5_283_000n, denominator: 100_000n });
  });

  it.each([
    ["floor", 0],
    ["ceil", 1],
    ["half-up", 1],
  ] as const)("rounds exactly half a fen (0.5) %s → %i", (rounding, fen) => {
    expect(energyCostFen(1, 50_000, rounding)).toEqual({ fen, numerator: 50_000n, denominator: 100_000n });
  });

  it.each([
    ["floor", -1],
    ["ceil", 0],
    ["half-up", -1],
  ] as const)("rounds exactly minus half a fen (−0.5) %s → %i, half-up going away from zero", (rounding, fen) => {
    const r = energyCostFen(1, -50_000, rounding);
    expect(r).toEqual({ fen, numerator: -50_000n, denominator: 100_000n });
    expect(Object.is(r.fen, -0)).toBe(false);
  });

  it("rounds 26.415 fen half-up to 26", () => {
    expect(energyCostFen(5283, 500, "half-up")).toEqual({ fen: 26, numerator: 2_641_500n, denominator: 100_000n });
  });

  it("charges whole fen exactly under every rounding: 100 kWh at ¥1/kWh is ¥100", () => {
    for (const rounding of ["floor", "ceil", "half-up"] as const) expect(energyCostFen(10_000, 100_000, rounding).fen).toBe(10_000);
  });

  it("refuses a fractional price or energy", () => {
    expect(errorCode(() => energyCostFen(52.83, 1000, "floor"))).toBe(UNIT_ERROR_CODES.NOT_INTEGER);
    expect(errorCode(() => energyCostFen(5283, 0.5, "floor"))).toBe(UNIT_ERROR_CODES.NOT_INTEGER);
  });

  it("throws UNSAFE rather than return a fen that Number cannot hold", () => {
    expect(errorCode(() => energyCostFen(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, "floor"))).toBe(UNIT_ERROR_CODES.UNSAFE);
  });

  it("keeps floor ≤ exact ≤ ceil, one fen apart at most, and half-up within half a fen", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 ** 7 }), fc.integer({ min: -(10 ** 9), max: 10 ** 9 }), (price, wh) => {
        const floor = energyCostFen(price, wh, "floor");
        const ceil = energyCostFen(price, wh, "ceil");
        const half = energyCostFen(price, wh, "half-up");
        const { numerator: n, denominator: d } = floor;
        expect(BigInt(floor.fen) * d <= n && n <= BigInt(ceil.fen) * d).toBe(true);
        expect(ceil.fen - floor.fen).toBe(n % d === 0n ? 0 : 1);
        const off = BigInt(half.fen) * d - n;
        expect((off < 0n ? -off : off) * 2n <= d).toBe(true);
      }),
    );
  });
});

describe("energyAffordableWh", () => {
  it("buys 189,286 Wh with ¥100 at ¥0.5283/kWh", () => {
    expect(energyAffordableWh(10_000, 5283)).toBe(189_286);
  });

  it("buys nothing with a zero or negative balance", () => {
    expect(energyAffordableWh(0, 5283)).toBe(0);
    expect(energyAffordableWh(-500, 5283)).toBe(0);
  });

  it("refuses a zero or negative price", () => {
    expect(errorCode(() => energyAffordableWh(100, 0))).toBeDefined();
    expect(errorCode(() => energyAffordableWh(100, -1))).toBeDefined();
  });

  it("throws UNSAFE rather than return a Wh that Number cannot hold", () => {
    expect(errorCode(() => energyAffordableWh(Number.MAX_SAFE_INTEGER, 1))).toBe(UNIT_ERROR_CODES.UNSAFE);
  });

  it("never grants energy that costs more than the balance, even rounded up, and is the most that does not", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 ** 9 }), fc.integer({ min: 1, max: 10 ** 6 }), (balanceFen, price) => {
        const wh = energyAffordableWh(balanceFen, price);
        expect(energyCostFen(price, wh, "ceil").fen).toBeLessThanOrEqual(balanceFen);
        expect(energyCostFen(price, wh + 1, "ceil").fen).toBeGreaterThan(balanceFen);
      }),
    );
  });
});
