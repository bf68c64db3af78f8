// The settlement core: settle(policy, period, usage) → StatementLine[], one line per household × plot with grain
// land in the season. Pure and deterministic: the same inputs give the same lines, byte for byte (ARCHITECTURE.md
// invariant 5; the usage is the ledger's own per-day record of the charges, meter-days.ts).
//
// Per line (the domain notes' rule, refund = min(eligible kWh × rate, cap × grain mu × rate), never more than paid):
//   eligible energy   = energy on days inside both the period and the season, while the plot's crop is grain
//                       (the crop in force when the day begins, from the plot's crop history);
//   capWh             = floor(capWhPerMu × areaMilliMu / 1000);  refundableWh = min(eligibleWh, capWh);
//   paid for those kWh = eligibleChargedFen, apportioned when capped: floor(eligibleChargedFen × refundableWh / eligibleWh);
//   refund            = min(round_half_up(rate applied to refundableWh), paid for those kWh), where the rate is
//                       shareBp / 10000 of the paid amount or centiFenPerKwh × Wh / 100000.
// THE rounding rule: each line's refund is rounded half up once, in exact BigInt arithmetic, then clamped down to
// what was paid; the statement total is the sum of the rounded lines (never a separately rounded total).
//
// A line that needs a human is flagged instead of paid: its refundFen is 0 and proposedRefundFen says what the rule
// gives; the officer accepts or adjusts it (with a reason) in review, up to maxRefundFen (the same rule over all the
// plot's in-period energy, so a correction of a wrong crop record can still be paid, never above cap or cost).
// Usage comes as runs of days (usage-source.ts), summed by the database: a run never spans a day where the answer can
// change (runBoundaries: the season's edges, each crop change), which settle checks, so a run is classified by its
// first day and the result is the same as day by day (tested) — at a cost that grows with meters, not readings.
//
// Flags: above-cap, outside-season (use on period days outside the season), non-grain-crop (use while the plot grew
// no grain), night-use, above-water-quota, tamper, bypass, meter-offline (days in the season with no reading, or an
// offline event), already-refunded (the household × plot was refunded this season by another statement: at most once
// per household × plot × season).

import type { MeterFlag } from "./meter-flags.js";
import type { SubsidyPolicy } from "./policy.js";
import type { MeterUsage } from "./usage-source.js";
import { addDays, dayStartMs, daysBetweenInclusive, localDayOf } from "./local-day.js";

export const LINE_FLAGS = [
  "above-cap",
  "outside-season",
  "non-grain-crop",
  "night-use",
  "above-water-quota",
  "tamper",
  "bypass",
  "meter-offline",
  "already-refunded",
] as const;
export type LineFlagCode = (typeof LINE_FLAGS)[number];

export interface LineFlag {
  readonly code: LineFlagCode;
  readonly detail: string;
}

export interface SettlementPeriod {
  readonly villageId: string;
  readonly seasonId: string;
  /** Inclusive local days; the usage read is [fromDay, toDay]. */
  readonly fromDay: string;
  readonly toDay: string;
}

export interface SettlementHousehold {
  readonly householdId: string;
  readonly name: string;
}
export interface SettlementPlot {
  readonly plotId: string;
  readonly householdId: string;
  readonly areaMilliMu: number;
  /** The plot's crop history, any order. */
  readonly crops: readonly { readonly effectiveFromMs: number; readonly crop: string }[];
}
export interface SettlementMeter {
  readonly meterId: string;
  readonly householdId: string;
  readonly plotId?: string;
  readonly litresPerKwh?: number;
}

export interface SettlementUsage {
  readonly households: readonly SettlementHousehold[];
  readonly plots: readonly SettlementPlot[];
  readonly meters: readonly SettlementMeter[];
  readonly usage: ReadonlyMap<string, MeterUsage>;
  readonly flags: ReadonlyMap<string, readonly MeterFlag[]>;
  /** "householdId/plotId" refunded this season by an earlier, standing statement. */
  readonly alreadyRefunded: ReadonlySet<string>;
}

export interface MeterLine {
  readonly meterId: string;
  readonly energyWh: number;
  readonly eligibleWh: number;
  readonly chargedFen: number;
}

export interface StatementLine {
  readonly lineNo: number;
  readonly householdId: string;
  readonly plotId: string;
  readonly meters: readonly MeterLine[];
  /** The crops seen on the plot in the period, in order. */
  readonly crops: readonly string[];
  readonly grainMilliMu: number;
  readonly energyWh: number;
  readonly chargedFen: number;
  readonly eligibleWh: number;
  readonly eligibleChargedFen: number;
  readonly capWh: number;
  readonly refundableWh: number;
  readonly nightWh: number;
  readonly outsideSeasonWh: number;
  readonly nonGrainWh: number;
  readonly waterLitres?: number;
  readonly proposedRefundFen: number;
  readonly maxRefundFen: number;
  /** What is paid: proposedRefundFen for a clean line, 0 for a flagged one until review sets it. */
  readonly refundFen: number;
  readonly status: "payable" | "flagged";
  readonly flags: readonly LineFlag[];
}

export class SettlementInputError extends RangeError {}

/** round half up of n / d for n ≥ 0, d > 0. */
function roundHalfUp(n: bigint, d: bigint): bigint {
  return (2n * n + d) / (2n * d);
}

/** The rule for one line: refund for `refundableWh` out of `energyWh` that cost `chargedFen`. */
export function refundFor(policy: SubsidyPolicy, energyWh: number, chargedFen: number, refundableWh: number): number {
  if (energyWh <= 0 || refundableWh <= 0 || chargedFen <= 0) return 0;
  const paid = (BigInt(chargedFen) * BigInt(refundableWh)) / BigInt(energyWh);
  const rate = policy.policy.refund;
  const raw =
    rate.kind === "share"
      ? roundHalfUp(BigInt(chargedFen) * BigInt(refundableWh) * BigInt(rate.shareBp), BigInt(energyWh) * 10_000n)
      : roundHalfUp(BigInt(rate.centiFenPerKwh) * BigInt(refundableWh), 100_000n);
  return Number(raw < paid ? raw : paid);
}

function cropAt(crops: SettlementPlot["crops"], atMs: number): string | undefined {
  let best: { effectiveFromMs: number; crop: string } | undefined;
  for (const c of crops) if (c.effectiveFromMs <= atMs && (best === undefined || c.effectiveFromMs > best.effectiveFromMs)) best = c;
  return best?.crop;
}

/**
 * Days in [fromDay, toDay] (the season inside the period) on which the meter was not read: the gateway reports every
 * meter's register at least every billing interval, so a day with no applied reading is a day the meter was offline.
 * Counted from fromDay when the meter was read before it, else from its first reading (a meter installed mid-season
 * is not offline before it existed); a meter never read has no use to flag.
 */
function silentDayCount(usage: MeterUsage | undefined, fromDay: string, toDay: string): number {
  if (usage === undefined) return 0;
  const inside = usage.runs.filter((r) => r.fromDay >= fromDay && r.toDay <= toDay);
  const readBefore = usage.countBeforeWh !== undefined || usage.runs.some((r) => r.toDay < fromDay);
  const first = readBefore ? fromDay : inside[0]?.firstReadDay;
  if (first === undefined) return 0;
  return daysBetweenInclusive(first, toDay) - inside.reduce((n, r) => n + r.daysRead, 0);
}

/**
 * Where settlement's answer for a day can change inside the period: the season's first day and the day after its
 * last, and the first day each recorded crop is in force for (the crop counts from the start of a day: a crop
 * recorded at 09:00 counts from the next day). A usage source must not let a run span one of these (settle checks).
 */
export function runBoundaries(policy: SubsidyPolicy, period: SettlementPeriod, plots: readonly SettlementPlot[]): string[] {
  const season = policy.policy.seasons.find((s) => s.seasonId === period.seasonId);
  const days = new Set<string>();
  if (season !== undefined) {
    days.add(season.fromDay);
    days.add(addDays(season.toDay, 1));
  }
  for (const plot of plots) {
    for (const c of plot.crops) {
      const day = localDayOf(c.effectiveFromMs);
      days.add(dayStartMs(day) === c.effectiveFromMs ? day : addDays(day, 1));
    }
  }
  return [...days].filter((d) => d > period.fromDay && d <= period.toDay).sort();
}

const kWh = (wh: number): string => `${Math.floor(wh / 1000)}.${String(wh % 1000).padStart(3, "0")} kWh`;

export function settle(policy: SubsidyPolicy, period: SettlementPeriod, usage: SettlementUsage): StatementLine[] {
  const body = policy.policy;
  const season = body.seasons.find((s) => s.seasonId === period.seasonId);
  if (season === undefined) throw new SettlementInputError(`policy ${policy.programmeId}@v${policy.version} has no season ${period.seasonId}`);
  if (period.fromDay > period.toDay) throw new SettlementInputError(`the period ends (${period.toDay}) before it begins (${period.fromDay})`);
  const grain = new Set(body.grainCrops);
  // Every meter of a village has the same days: convert each day once.
  const startOf = new Map<string, number>();
  const dayMs = (day: string): number => {
    let ms = startOf.get(day);
    if (ms === undefined) startOf.set(day, (ms = dayStartMs(day)));
    return ms;
  };
  const nightExempt = new Set(body.night?.exemptCrops ?? []);
  const boundaries = runBoundaries(policy, period, usage.plots);
  const windowFromMs = dayStartMs(period.fromDay);
  const metersByPlot = new Map<string, SettlementMeter[]>();
  for (const m of usage.meters) {
    if (m.plotId === undefined) continue;
    const list = metersByPlot.get(m.plotId) ?? [];
    list.push(m);
    metersByPlot.set(m.plotId, list);
  }
  const plots = [...usage.plots].sort((a, b) => (a.householdId < b.householdId ? -1 : a.householdId > b.householdId ? 1 : a.plotId < b.plotId ? -1 : a.plotId > b.plotId ? 1 : 0));
  const lines: StatementLine[] = [];
  for (const plot of plots) {
    const meters = (metersByPlot.get(plot.plotId) ?? []).filter((m) => m.householdId === plot.householdId).sort((a, b) => (a.meterId < b.meterId ? -1 : 1));
    // A grain plot in this period: grain at the start of the window, or from some record inside it.
    const seasonFrom = season.fromDay > period.fromDay ? season.fromDay : period.fromDay;
    const seasonTo = season.toDay < period.toDay ? season.toDay : period.toDay;
    if (seasonFrom > seasonTo) continue;
    const fromMs = dayStartMs(seasonFrom);
    const toMs = dayStartMs(seasonTo) + 86_400_000;
    const cropsInPeriod = [cropAt(plot.crops, windowFromMs), ...[...plot.crops].sort((a, b) => a.effectiveFromMs - b.effectiveFromMs).filter((c) => c.effectiveFromMs > windowFromMs && c.effectiveFromMs < dayStartMs(period.toDay) + 86_400_000).map((c) => c.crop)].filter((c): c is string => c !== undefined);
    const grainAtSomePoint = [cropAt(plot.crops, fromMs), ...plot.crops.filter((c) => c.effectiveFromMs > fromMs && c.effectiveFromMs < toMs).map((c) => c.crop)].some((c) => c !== undefined && grain.has(c));
    if (!grainAtSomePoint || meters.length === 0) continue;

    const flags: LineFlag[] = [];
    const meterLines: MeterLine[] = [];
    let energyWh = 0, chargedFen = 0, eligibleWh = 0, eligibleChargedFen = 0, nightWh = 0, outsideSeasonWh = 0, nonGrainWh = 0, inSeasonWh = 0, inSeasonChargedFen = 0;
    let waterLitres: number | undefined;
    const nightCrops = new Set<string>();
    for (const m of meters) {
      let mEnergy = 0, mEligible = 0, mCharged = 0, mEligibleCharged = 0;
      for (const d of usage.usage.get(m.meterId)?.runs ?? []) {
        if (d.fromDay < period.fromDay || d.toDay > period.toDay) throw new SettlementInputError(`${m.meterId}: run ${d.fromDay}..${d.toDay} is outside the period`);
        if (boundaries.some((b) => b > d.fromDay && b <= d.toDay)) throw new SettlementInputError(`${m.meterId}: run ${d.fromDay}..${d.toDay} spans a boundary (runBoundaries)`);
        mEnergy += d.energyWh;
        mCharged += d.chargedFen;
        if (d.fromDay < season.fromDay || d.fromDay > season.toDay) {
          outsideSeasonWh += d.energyWh;
          continue;
        }
        inSeasonWh += d.energyWh;
        inSeasonChargedFen += d.chargedFen;
        const crop = cropAt(plot.crops, dayMs(d.fromDay));
        if (crop === undefined || !grain.has(crop)) {
          nonGrainWh += d.energyWh;
          continue;
        }
        mEligible += d.energyWh;
        mEligibleCharged += d.chargedFen;
        nightWh += d.nightWh;
        if (d.nightWh > 0) nightCrops.add(crop);
      }
      energyWh += mEnergy;
      chargedFen += mCharged;
      eligibleWh += mEligible;
      eligibleChargedFen += mEligibleCharged;
      if (m.litresPerKwh !== undefined) waterLitres = (waterLitres ?? 0) + Math.floor((m.litresPerKwh * mEligible) / 1000);
      meterLines.push({ meterId: m.meterId, energyWh: mEnergy, eligibleWh: mEligible, chargedFen: mCharged });
      const silent = silentDayCount(usage.usage.get(m.meterId), seasonFrom, seasonTo);
      if (silent > 0) flags.push({ code: "meter-offline", detail: `${m.meterId} was not read on ${silent} day(s) of the season` });
      for (const f of usage.flags.get(m.meterId) ?? []) {
        const at = new Date(f.atMs).toISOString();
        if (f.kind === "offline") flags.push({ code: "meter-offline", detail: `${m.meterId} offline from ${at} to ${new Date(f.untilMs ?? f.atMs).toISOString()}: ${f.detail}` });
        else flags.push({ code: f.kind, detail: `${m.meterId} at ${at}: ${f.detail}` });
      }
    }
    const capWh = Number((BigInt(body.capWhPerMu) * BigInt(plot.areaMilliMu)) / 1000n);
    const refundableWh = Math.min(eligibleWh, capWh);
    if (eligibleWh > capWh) flags.push({ code: "above-cap", detail: `${kWh(eligibleWh)} eligible, cap ${kWh(capWh)} for ${plot.areaMilliMu / 1000} mu` });
    if (outsideSeasonWh > 0) flags.push({ code: "outside-season", detail: `${kWh(outsideSeasonWh)} outside ${season.fromDay}..${season.toDay}` });
    if (nonGrainWh > 0) flags.push({ code: "non-grain-crop", detail: `${kWh(nonGrainWh)} while the plot grew no grain` });
    if (body.night !== undefined && eligibleWh > 0 && [...nightCrops].some((c) => !nightExempt.has(c)) && BigInt(nightWh) * 10_000n > BigInt(body.night.maxShareBp) * BigInt(eligibleWh)) {
      flags.push({ code: "night-use", detail: `${kWh(nightWh)} of ${kWh(eligibleWh)} at night (22:00–06:00), above ${body.night.maxShareBp / 100}%` });
    }
    if (body.waterQuotaM3PerMu !== undefined && waterLitres !== undefined && waterLitres > body.waterQuotaM3PerMu * plot.areaMilliMu) {
      flags.push({ code: "above-water-quota", detail: `${Math.floor(waterLitres / 1000)} m³ above ${body.waterQuotaM3PerMu} m³/mu × ${plot.areaMilliMu / 1000} mu` });
    }
    const refunded = usage.alreadyRefunded.has(`${plot.householdId}/${plot.plotId}`);
    if (refunded) flags.push({ code: "already-refunded", detail: `${plot.householdId}/${plot.plotId} was refunded for season ${season.seasonId} already` });
    const proposedRefundFen = refunded ? 0 : refundFor(policy, eligibleWh, eligibleChargedFen, refundableWh);
    const maxRefundFen = refunded ? 0 : refundFor(policy, inSeasonWh, inSeasonChargedFen, Math.min(inSeasonWh, capWh));
    const status = flags.length === 0 ? "payable" : "flagged";
    lines.push({
      lineNo: lines.length + 1,
      householdId: plot.householdId,
      plotId: plot.plotId,
      meters: meterLines,
      crops: [...new Set(cropsInPeriod)],
      grainMilliMu: plot.areaMilliMu,
      energyWh,
      chargedFen,
      eligibleWh,
      eligibleChargedFen,
      capWh,
      refundableWh,
      nightWh,
      outsideSeasonWh,
      nonGrainWh,
      ...(waterLitres === undefined ? {} : { waterLitres }),
      proposedRefundFen,
      maxRefundFen: Math.max(maxRefundFen, proposedRefundFen),
      refundFen: status === "payable" ? proposedRefundFen : 0,
      status,
      flags,
    });
  }
  return lines;
}

/** Σ refundFen of the lines: the statement total (never rounded again). */
export const statementTotalFen = (lines: readonly Pick<StatementLine, "refundFen">[]): number => lines.reduce((sum, l) => sum + l.refundFen, 0);
