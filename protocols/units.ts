// Integer units for energy and money, and conversions that never round silently. Energy is counted in watt-hours
// (Wh), money in fen (分, 1/100 yuan) and prices in centi-fen per kWh (1/10000 yuan per kWh). Every function that
// could lose a fraction either proves the result exact or says how it rounded and by how much.

import { AgriError } from "./errors.js";

export type Wh = number;
export type Fen = number;
/** Price unit: 1/10000 yuan (1/100 fen) per kWh. ¥0.5283/kWh = 5283. */
export type CentiFenPerKwh = number;

export class UnitError extends AgriError {
  constructor(code: string, message: string) {
    super(code, false, message);
  }
}

export const UNIT_ERROR_CODES = {
  NOT_INTEGER: "PROTO_UNIT_NOT_INTEGER",
  INEXACT: "PROTO_UNIT_INEXACT",
  BAD_DECIMAL: "PROTO_UNIT_BAD_DECIMAL",
  UNSAFE: "PROTO_UNIT_UNSAFE",
} as const;

export function assertSafeInteger(value: number, what: string): number {
  if (!Number.isSafeInteger(value)) throw new UnitError(UNIT_ERROR_CODES.NOT_INTEGER, `${what} must be a safe integer, got ${value}`);
  return value;
}

export const ENERGY_UNIT_EXPONENT = { Wh: 0, kWh: 3, MWh: 6 } as const;
export type EnergyUnit = keyof typeof ENERGY_UNIT_EXPONENT;

export type Rounding = "exact" | "floor" | "nearest";

export interface WhConversion {
  readonly wh: Wh;
  /** True when no fraction of a Wh was dropped. */
  readonly exact: boolean;
  /** What was dropped, in Wh (value − wh); 0 when exact. */
  readonly droppedWh: number;
}

/**
 * Convert an integer register value with a power-of-ten scale (raw × 10^scaleExp unit) to Wh with integer
 * arithmetic. Example: DDS238 import energy raw 123456 × 0.01 kWh → 1,234,560 Wh, exactly.
 */
export function integerRegisterToWh(raw: number, scaleExp: number, unit: EnergyUnit, rounding: Rounding): WhConversion {
  assertSafeInteger(raw, "register value");
  const exp = scaleExp + ENERGY_UNIT_EXPONENT[unit];
  if (exp >= 0) {
    const wh = BigInt(raw) * 10n ** BigInt(exp);
    // Signed registers (s32/s64) scale downwards too: check the magnitude, not just the upper bound.
    if ((wh < 0n ? -wh : wh) > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnitError(UNIT_ERROR_CODES.UNSAFE, `${raw}e${exp} Wh exceeds 2^53`);
    return { wh: Number(wh), exact: true, droppedWh: 0 };
  }
  const div = 10n ** BigInt(-exp);
  const big = BigInt(raw);
  let q = big / div;
  let r = big % div;
  if (r < 0n) { q -= 1n; r += div; }
  if (r === 0n) return { wh: Number(q), exact: true, droppedWh: 0 };
  if (rounding === "exact") throw new UnitError(UNIT_ERROR_CODES.INEXACT, `${raw}e${exp} Wh is not a whole Wh`);
  if (rounding === "nearest" && r * 2n >= div) q += 1n;
  const wh = Number(q);
  return { wh, exact: false, droppedWh: Number(big - q * div) / Number(div) };
}

/**
 * Convert a floating-point energy reading (f32/f64 registers) to Wh. Floats carry ~7 (f32) significant digits, so
 * the conversion rounds to the nearest Wh and reports what it dropped; "exact" throws when there is a fraction.
 */
export function floatEnergyToWh(value: number, unit: EnergyUnit, rounding: Rounding): WhConversion {
  if (!Number.isFinite(value)) throw new UnitError(UNIT_ERROR_CODES.NOT_INTEGER, `energy ${value} is not finite`);
  const exact = value * 10 ** ENERGY_UNIT_EXPONENT[unit];
  const wh = rounding === "floor" ? Math.floor(exact) : Math.round(exact);
  assertSafeInteger(wh, "energy in Wh");
  const dropped = exact - wh;
  if (dropped !== 0 && rounding === "exact") throw new UnitError(UNIT_ERROR_CODES.INEXACT, `${value} ${unit} is not a whole Wh`);
  return { wh, exact: dropped === 0, droppedWh: dropped };
}

/** Parse a decimal yuan amount ("12.34", "-0.5", "100") into fen exactly; more than two decimals is an error. */
export function yuanToFen(text: string): Fen {
  const m = /^(-?)(\d{1,13})(?:\.(\d{1,2}))?$/.exec(text.trim());
  if (!m) throw new UnitError(UNIT_ERROR_CODES.BAD_DECIMAL, `"${text}" is not a yuan amount with at most 2 decimals`);
  const fen = Number(m[2]) * 100 + Number((m[3] ?? "").padEnd(2, "0"));
  // "-0.00" is zero, not -0 (which Object.is, and so the tests and Map keys, tell apart from 0).
  return m[1] === "-" && fen !== 0 ? -fen : fen;
}

/** Format fen as a yuan string with exactly two decimals (1234 → "12.34", -5 → "-0.05"). */
export function fenToYuan(fen: Fen): string {
  assertSafeInteger(fen, "fen");
  const sign = fen < 0 ? "-" : "";
  const abs = Math.abs(fen);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/** Parse a price in yuan per kWh with up to 4 decimals ("0.5283") into centi-fen per kWh exactly. */
export function yuanPerKwhToPrice(text: string): CentiFenPerKwh {
  const m = /^(\d{1,6})(?:\.(\d{1,4}))?$/.exec(text.trim());
  if (!m) throw new UnitError(UNIT_ERROR_CODES.BAD_DECIMAL, `"${text}" is not a price with at most 4 decimals`);
  return Number(m[1]) * 10000 + Number((m[2] ?? "").padEnd(4, "0"));
}

export type MoneyRounding = "half-up" | "floor" | "ceil";

/**
 * Cost of `energyWh` at `price` in fen: price × Wh / 100,000 (centi-fen per kWh × Wh → fen), computed in BigInt and
 * rounded as asked. Returns the exact fraction too, so callers can show or carry it.
 */
export function energyCostFen(price: CentiFenPerKwh, energyWh: Wh, rounding: MoneyRounding): { fen: Fen; numerator: bigint; denominator: bigint } {
  assertSafeInteger(price, "price");
  assertSafeInteger(energyWh, "energy");
  const numerator = BigInt(price) * BigInt(energyWh);
  const denominator = 100_000n;
  let q = numerator / denominator;
  const r = numerator % denominator;
  if (r !== 0n) {
    const positive = r > 0n;
    if (rounding === "ceil" && positive) q += 1n;
    if (rounding === "floor" && !positive) q -= 1n;
    if (rounding === "half-up") {
      const twice = (positive ? r : -r) * 2n;
      if (twice >= denominator) q += positive ? 1n : -1n;
    }
  }
  // price × Wh can pass 2^53 × 10^5; a fen that Number cannot hold exactly must not reach the ledger rounded.
  if ((q < 0n ? -q : q) > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnitError(UNIT_ERROR_CODES.UNSAFE, `cost ${q} fen exceeds 2^53`);
  return { fen: Number(q), numerator, denominator };
}

/** Most Wh that `balanceFen` buys at `price`, rounded down (a farmer is never granted energy they cannot pay for). */
export function energyAffordableWh(balanceFen: Fen, price: CentiFenPerKwh): Wh {
  assertSafeInteger(balanceFen, "balance");
  assertSafeInteger(price, "price");
  if (price <= 0) throw new UnitError(UNIT_ERROR_CODES.NOT_INTEGER, "price must be positive");
  if (balanceFen <= 0) return 0;
  const wh = (BigInt(balanceFen) * 100_000n) / BigInt(price);
  // A rounded (unsafe) Wh could be more than the balance buys; refuse instead.
  if (wh > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnitError(UNIT_ERROR_CODES.UNSAFE, `${wh} Wh exceeds 2^53`);
  return Number(wh);
}
