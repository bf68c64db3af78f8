// Credit grants as limits on the meter's own register (ARCHITECTURE.md invariant 4), the two low-credit warning
// stages, and the stored-credit cap — pure arithmetic in fen, Wh and centi-fen per kWh (protocols/units.ts).
//
// Sizing. The edge keeps the relay closed until the register reaches limitWh, so the farmer can draw at most
// limitWh − registerWh more. That energy is charged (charges.ts) at prices no higher than maxPrice(tariffs, now),
// because energy is attributed to the reading after it. Charges round per segment, and one segment's posting for ΔE
// is at most ceil(price × ΔE) (round(a + b) − round(a) ≤ ceil(b) for round half up); energy split over k segments
// can therefore cost up to k − 1 fen more than ceil(maxPrice × ΔE). sizeGrant holds those k − 1 fen back, so:
//
//     Σ postings for the granted energy ≤ balanceFen + overdraftFen − chargedUncoveredFen.
//
// Overdraft (透支, DL/T 1490-2015): the farmer may run below zero down to −overdraftFen; the next top-up repays it
// first (the balance is a sum of postings, so that is automatic). The grant therefore spends balance + overdraft,
// and a balance already in overdraft still has what remains of the allowance. With no overdraft, a balance of zero
// or less grants nothing more: limitWh = registerWh.
//
// What the limit cannot cover: the edge cuts at the first reading at or past the limit, so a pump overshoots by what
// it draws between two edge polls and the relay's reaction — seconds of pumping, a few Wh; an overdraft allowance
// is what absorbs it. A tariff version published later with a higher price is not in maxPrice: re-size every grant
// of the affected meters when one is published.

import { z } from "zod";
import { energyAffordableWh } from "../../protocols/units.js";
import { requireInteger } from "./errors.js";

// ─── grant sizing ─────────────────────────────────────────────────────────────────────────────────────────────────

export interface GrantSizingInput {
  /** The account balance in fen, charges up to the reading at registerWh included; may be negative. */
  readonly balanceFen: number;
  /** How far below zero the balance may run (≥ 0). */
  readonly overdraftFen: number;
  /** The meter's register (its own, current epoch) at the last charged reading. */
  readonly registerWh: number;
  /** maxPrice(tariffs, now) from tariff.ts. */
  readonly maxPriceCentiFenPerKwh: number;
  /**
   * Money already used but not yet in balanceFen (≥ 0): e.g. a reading held for review, or energy above the last
   * charged register priced at maxPrice rounded up. Deducted before sizing.
   */
  readonly chargedUncoveredFen?: number;
  /**
   * How many tariff segments the granted energy may be charged under: segmentsFrom(tariffs, now).length (default 1,
   * exact for a flat tariff). Each segment beyond the first may round up by one fen more, so that many fen are kept back.
   */
  readonly roundingSegments?: number;
}

/** The money the grant may spend, in fen, after the uncovered amount and the rounding reserve; may be ≤ 0. */
export function spendableFen(input: GrantSizingInput): number {
  const balance = requireInteger(input.balanceFen, "balanceFen");
  const overdraft = requireInteger(input.overdraftFen, "overdraftFen", 0);
  const uncovered = requireInteger(input.chargedUncoveredFen ?? 0, "chargedUncoveredFen", 0);
  const segments = requireInteger(input.roundingSegments ?? 1, "roundingSegments", 1);
  return requireInteger(balance + overdraft - uncovered - (segments - 1), "spendable fen");
}

/**
 * The register value up to which the meter may run: registerWh + the most Wh the spendable money buys at the
 * highest price that can apply, rounded down. Spendable ≤ 0 → registerWh (no more energy).
 */
export function sizeGrant(input: GrantSizingInput): number {
  const registerWh = requireInteger(input.registerWh, "registerWh", 0);
  const price = requireInteger(input.maxPriceCentiFenPerKwh, "maxPriceCentiFenPerKwh", 1);
  const spendable = spendableFen(input);
  if (spendable <= 0) return registerWh;
  return requireInteger(registerWh + energyAffordableWh(spendable, price), "limitWh");
}

// ─── low-credit warnings ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * DL/T 1490-2015's two warning stages (请购电, "please buy power"): stage 1 when the balance falls to stage1Fen,
 * stage 2 (more urgent) at stage2Fen; stage1Fen > stage2Fen ≥ 0. Both are on the balance, before any overdraft.
 */
export const lowCreditThresholdsSchema = z
  .strictObject({
    stage1Fen: z.int().nonnegative(),
    stage2Fen: z.int().nonnegative(),
  })
  .refine((t) => t.stage1Fen > t.stage2Fen, { path: ["stage2Fen"], message: "stage 2 warns later than stage 1: stage2Fen < stage1Fen" });

export type LowCreditThresholds = z.infer<typeof lowCreditThresholdsSchema>;
export type LowCreditStage = 0 | 1 | 2;

function checkThresholds(t: LowCreditThresholds): void {
  requireInteger(t.stage2Fen, "stage2Fen", 0);
  requireInteger(t.stage1Fen, "stage1Fen", t.stage2Fen + 1);
}

/** The warning stage a balance is in: 2 at or below stage2Fen, 1 at or below stage1Fen, else 0. */
export function lowCreditStage(balanceFen: number, thresholds: LowCreditThresholds): LowCreditStage {
  requireInteger(balanceFen, "balanceFen");
  checkThresholds(thresholds);
  if (balanceFen <= thresholds.stage2Fen) return 2;
  if (balanceFen <= thresholds.stage1Fen) return 1;
  return 0;
}

/**
 * The same stages on the meter's grant, as the edge guard's warnAtWh [stage1Wh, stage2Wh] (remaining Wh before the
 * limit): the remaining energy at which the balance would have fallen to the stage if everything drawn so far cost
 * the highest price. Energy drawn at a lower price leaves the real balance higher, so a warning is early, never late.
 */
export function warnAtWhFor(thresholds: LowCreditThresholds, overdraftFen: number, maxPriceCentiFenPerKwh: number): readonly [number, number] {
  checkThresholds(thresholds);
  requireInteger(overdraftFen, "overdraftFen", 0);
  requireInteger(maxPriceCentiFenPerKwh, "maxPriceCentiFenPerKwh", 1);
  return [energyAffordableWh(thresholds.stage1Fen + overdraftFen, maxPriceCentiFenPerKwh), energyAffordableWh(thresholds.stage2Fen + overdraftFen, maxPriceCentiFenPerKwh)];
}

// ─── stored-credit cap ────────────────────────────────────────────────────────────────────────────────────────────

export type TopUpCheck =
  | { readonly ok: true; readonly balanceAfterFen: number }
  | { readonly ok: false; readonly reason: "not-positive" | "over-cap"; readonly maxTopUpFen: number };

/**
 * Whether a top-up may be accepted under the cap on stored credit (DL/T 1490-2015 cost-control meters cap it too): the balance after it must not
 * exceed capFen. A balance in overdraft is repaid first, which the sum already does. maxTopUpFen says how much would
 * be accepted (0 when the balance is at or above the cap).
 */
export function checkTopUp(balanceFen: number, topUpFen: number, capFen: number): TopUpCheck {
  requireInteger(balanceFen, "balanceFen");
  requireInteger(topUpFen, "topUpFen");
  requireInteger(capFen, "capFen", 0);
  const maxTopUpFen = Math.max(0, capFen - balanceFen);
  if (topUpFen <= 0) return { ok: false, reason: "not-positive", maxTopUpFen };
  if (topUpFen > maxTopUpFen) return { ok: false, reason: "over-cap", maxTopUpFen };
  return { ok: true, balanceAfterFen: balanceFen + topUpFen };
}

