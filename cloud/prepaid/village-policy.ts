// A village's prepaid policy (issue #4: "two-stage low-credit warnings, an optional overdraft limit recovered
// first from the next top-up, a stored-credit cap, friendly periods in which power is never cut — all per village
// policy"). Pure: the schema, the defaults, and which version is in force. Versions are immutable and stored by the
// registry; a change is a new version with its own effectiveFrom, so a dispute about last spring's cut can be
// answered with the policy that was in force then.
//
// The overdraft is "recovered first from the next top-up" by the ledger's arithmetic itself: a balance of −30 fen
// topped up by 100 fen is 70 fen; nothing else has to happen.

import { z } from "zod";
import { friendlyPeriodSchema } from "../../protocols/mqtt/messages.js";
import { lowCreditThresholdsSchema } from "../ledger/grants.js";

/** ¥10,000 of stored credit: far above a season's pumping, low enough that a typo of extra zeros is refused. */
export const DEFAULT_MAX_BALANCE_FEN = 1_000_000;

export const villagePolicyBodySchema = z.strictObject({
  /** 请购电 warnings on the balance (DL/T 1490-2015's two stages). */
  lowCredit: lowCreditThresholdsSchema.default({ stage1Fen: 2_000, stage2Fen: 500 }),
  /** The stored-credit cap: a top-up that would take the balance above it is refused, saying how much would fit. */
  maxBalanceFen: z.int().min(0).max(100_000_000).default(DEFAULT_MAX_BALANCE_FEN),
  /** The largest overdraft a household of this village may be given (0: none). */
  maxOverdraftFen: z.int().min(0).max(1_000_000).default(0),
  /** Windows in which the relay is never cut (sent with every grant; the edge enforces them offline too). */
  friendlyPeriods: z.array(friendlyPeriodSchema).max(16).default([]),
});

export const villagePolicySchema = z.strictObject({
  villageId: z.string().min(1).max(64),
  version: z.int().min(1),
  /** Epoch ms from which this version applies. */
  effectiveFrom: z.int().min(0),
  policy: villagePolicyBodySchema,
});

export type VillagePolicyBody = z.output<typeof villagePolicyBodySchema>;
export type VillagePolicy = z.output<typeof villagePolicySchema>;

/** What applies where a village never set a policy. */
export const DEFAULT_VILLAGE_POLICY: VillagePolicyBody = villagePolicyBodySchema.parse({});

/**
 * The version in force at `atMs`: the highest version whose effectiveFrom ≤ atMs. Versions must rise with
 * effectiveFrom (checked by checkPolicySchedule), so "latest effective" and "highest version" agree.
 */
export function policyAt(versions: readonly VillagePolicy[], atMs: number): VillagePolicyBody {
  let best: VillagePolicy | undefined;
  for (const v of versions) if (v.effectiveFrom <= atMs && (best === undefined || v.version > best.version)) best = v;
  return best?.policy ?? DEFAULT_VILLAGE_POLICY;
}

/** Why a schedule of versions is not acceptable, or undefined: versions 1..n without gaps, effectiveFrom rising. */
export function checkPolicySchedule(versions: readonly VillagePolicy[]): string | undefined {
  const sorted = [...versions].sort((a, b) => a.version - b.version);
  for (const [i, v] of sorted.entries()) {
    if (v.version !== i + 1) return `versions must be 1..${sorted.length} without gaps; found v${v.version} at position ${i + 1}`;
    const prev = sorted[i - 1];
    if (prev !== undefined && v.effectiveFrom <= prev.effectiveFrom) return `v${v.version} must take effect after v${prev.version}`;
  }
  return undefined;
}
