// The prepaid decision, pure: given a household's balance, the meter's last charged register and its tariffs, which
// credit.grant (if any) the cloud should send now (ARCHITECTURE.md invariant 4). No clock, no I/O: nowMs comes in.
//
// Sizing is grants.ts's sizeGrant at maxPrice(tariffs, now), with two amounts held back through chargedUncoveredFen:
// - otherGrantsFen: what the household's OTHER meters may still spend under the grants they hold (their remaining
//   Wh at maxPrice, rounded up). One balance backs every meter of the household, so each grant may spend only what
//   the others have not been promised; otherwise two pumps could each spend the whole balance.
// - cutReserveFen: the edge cuts at the first poll at or past the limit, so a pump overshoots by what it draws in one
//   poll interval. Holding that much back keeps the balance at or above −overdraft even after the overshoot.
//
// When to send: when no grant was ever sent, or when the new limit differs from the one in force by at least
// minChangeWh. Between top-ups the limit drifts by a few Wh with each charge's rounding (±½ fen per reading), and
// the grant in force stays safe through that drift (its own sizing bounded everything it lets the meter spend), so
// a grant per reading would only be noise. A top-up, a tariff change or a debit moves it by much more. A change of
// the village's friendly periods or of its low-credit warning stages (as Wh on this grant) is always sent: the edge
// must know them before the network goes away.
//
// Warning stages: the village policy's lowCredit thresholds are on the balance in fen; the edge warns on remaining
// Wh before the limit. grants.ts's warnAtWhFor converts them at the same maxPrice the limit was sized with, overdraft
// included (the limit spends it too), so the edge's 请购电 comes no later than the balance reaching the stage.

import { z } from "zod";
import type { CommandBody, FriendlyPeriod } from "../../protocols/mqtt/messages.js";
import { energyAffordableWh, energyCostFen } from "../../protocols/units.js";
import { sizeGrant, warnAtWhFor, type LowCreditThresholds } from "../ledger/grants.js";
import { maxPrice, segmentsFrom, type Tariff } from "../ledger/tariff.js";

export type CreditGrantBody = Extract<CommandBody, { type: "credit.grant" }>;

export interface GrantInForce {
  readonly grantSeq: number;
  readonly limitWh: number;
  /** The friendly periods the grant carried (none when absent). */
  readonly friendlyPeriods?: readonly FriendlyPeriod[] | undefined;
  /** The warning stages the grant carried (none when absent). */
  readonly warnAtWh?: WarnAtWh | undefined;
}

/** A credit.grant's warning stages: remaining Wh before the limit, [stage 1, stage 2]. */
export type WarnAtWh = readonly [number, number];

export interface NextGrantInput {
  readonly meterId: string;
  /** The household's balance, with every charge up to the reading at registerWh. May be negative. */
  readonly balanceFen: number;
  readonly overdraftFen: number;
  /** The meter's register at its last charged reading. */
  readonly registerWh: number;
  readonly tariffs: readonly Tariff[];
  readonly nowMs: number;
  /** The last grant sent for this meter (its limit and sequence), if any. */
  readonly lastGrant?: GrantInForce | undefined;
  readonly reconnect: CreditGrantBody["reconnect"];
  /** See the header; default 0. */
  readonly otherGrantsFen?: number;
  /** See the header; default 0. */
  readonly cutReserveFen?: number;
  /** Smallest change of limit worth a new grant; default: the energy 2 fen buy at maxPrice (at least 1 Wh). */
  readonly minChangeWh?: number;
  /** The village policy's windows in which power is never cut (village-policy.ts); sent with every grant. */
  readonly friendlyPeriods?: readonly FriendlyPeriod[];
  /** The village policy's low-credit stages (village-policy.ts); sent with every grant as warnAtWh (see the header). */
  readonly lowCredit?: LowCreditThresholds;
}

export type NextGrantDecision =
  | { readonly send: true; readonly grant: CreditGrantBody }
  | { readonly send: false; readonly reason: "no-tariff" }
  /** limitWh and warnAtWh: what a re-send of the grant in force would carry. */
  | { readonly send: false; readonly reason: "unchanged"; readonly limitWh: number; readonly warnAtWh?: WarnAtWh };

const inputSchema = z.object({
  balanceFen: z.int(),
  overdraftFen: z.int().nonnegative(),
  registerWh: z.int().nonnegative(),
  nowMs: z.int().nonnegative(),
  otherGrantsFen: z.int().nonnegative().optional(),
  cutReserveFen: z.int().nonnegative().optional(),
  minChangeWh: z.int().positive().optional(),
});

/** The full decision, with why nothing is sent. */
export function decideGrant(input: NextGrantInput): NextGrantDecision {
  inputSchema.parse(input);
  const price = maxPrice(input.tariffs, input.nowMs);
  if (price === undefined) return { send: false, reason: "no-tariff" };
  const limitWh = sizeGrant({
    balanceFen: input.balanceFen,
    overdraftFen: input.overdraftFen,
    registerWh: input.registerWh,
    maxPriceCentiFenPerKwh: price,
    chargedUncoveredFen: (input.otherGrantsFen ?? 0) + (input.cutReserveFen ?? 0),
    roundingSegments: Math.max(1, segmentsFrom(input.tariffs, input.nowMs).length),
  });
  const last = input.lastGrant;
  const minChangeWh = input.minChangeWh ?? Math.max(1, energyAffordableWh(2, price));
  const periods = input.friendlyPeriods ?? [];
  const warnAtWh = input.lowCredit === undefined ? undefined : warnAtWhFor(input.lowCredit, input.overdraftFen, price);
  const samePolicy = last === undefined || (samePeriodList(last.friendlyPeriods ?? [], periods) && sameStages(last.warnAtWh, warnAtWh));
  if (last !== undefined && samePolicy && Math.abs(limitWh - last.limitWh) < minChangeWh) {
    return warnAtWh === undefined ? { send: false, reason: "unchanged", limitWh } : { send: false, reason: "unchanged", limitWh, warnAtWh };
  }
  return { send: true, grant: grantBody(input.meterId, (last?.grantSeq ?? 0) + 1, limitWh, input.reconnect, periods, warnAtWh) };
}

/** A credit.grant body; friendlyPeriods only when there are any, warnAtWh only when given (both fields are optional). */
export function grantBody(
  meterId: string,
  grantSeq: number,
  limitWh: number,
  reconnect: CreditGrantBody["reconnect"],
  friendlyPeriods: readonly FriendlyPeriod[],
  warnAtWh?: WarnAtWh,
): CreditGrantBody {
  const base: CreditGrantBody = { type: "credit.grant" as const, meterId, grantSeq, limitWh, reconnect };
  const withPeriods = friendlyPeriods.length === 0 ? base : { ...base, friendlyPeriods: friendlyPeriods.map((p) => ({ ...p })) };
  return warnAtWh === undefined ? withPeriods : { ...withPeriods, warnAtWh: [warnAtWh[0], warnAtWh[1]] };
}

function sameStages(a: WarnAtWh | undefined, b: WarnAtWh | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a[0] === b[0] && a[1] === b[1];
}

function samePeriodList(a: readonly FriendlyPeriod[], b: readonly FriendlyPeriod[]): boolean {
  return a.length === b.length && a.every((p, i) => JSON.stringify(p) === JSON.stringify(b[i]));
}

/** The credit.grant body to send now, or undefined when no grant is due (see decideGrant for why). */
export function nextGrant(input: NextGrantInput): CreditGrantBody | undefined {
  const decision = decideGrant(input);
  return decision.send ? decision.grant : undefined;
}

/**
 * What a meter may still spend under the grant it holds: its remaining Wh (limit − last charged register) at the
 * highest price, rounded up; 0 when it is at or past the limit or no tariff applies.
 */
export function outstandingGrantFen(limitWh: number, registerWh: number, tariffs: readonly Tariff[], nowMs: number): number {
  const price = maxPrice(tariffs, nowMs);
  const remainingWh = limitWh - registerWh;
  if (price === undefined || remainingWh <= 0) return 0;
  return energyCostFen(price, remainingWh, "ceil").fen;
}

/** The fen a cut may overshoot by: one poll interval of the meter's largest draw at the highest price, rounded up. */
export function cutReserveFenFor(maxPowerW: number, pollIntervalMs: number, priceCentiFenPerKwh: number): number {
  const wh = Math.ceil((maxPowerW * pollIntervalMs) / 3_600_000);
  return energyCostFen(priceCentiFenPerKwh, wh, "ceil").fen;
}
