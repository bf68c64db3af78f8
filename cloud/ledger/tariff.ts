// Versioned electricity tariffs and the two questions the ledger asks of them: which price (and tariff segment) is in
// force at an instant — priceAt — and what is the highest price that can still apply — maxPrice, for sizing grants.
//
// Units (ARCHITECTURE.md invariant 1, protocols/units.ts): prices are integers in centi-fen per kWh, 1/10000 yuan per
// kWh, so ¥0.5283/kWh is 5283. Instants are epoch milliseconds. Time-of-use periods are Shanghai wall-clock times:
// China Standard Time is UTC+8 all year (no daylight saving since 1991), so a fixed offset is exact.
//
// Time of use follows DL/T 1490-2015 practice for cost-control meters: four rates (sharp 尖, peak 峰, flat 平,
// valley 谷), up to 8 periods a day. One rate has one price within a tariff version, so "t1@v2/peak" names one price:
// the charge formula round(price_s × E_s) (charges.ts) needs exactly one price per segment. Holiday schedules are
// not modelled; a holiday price is a new tariff version with its own effectiveFrom.
//
// A schedule is a list of tariff versions; the one in force at t is the one with the latest effectiveFrom ≤ t. A
// published version is immutable and a new one never takes effect in the past: energy already charged stays charged
// under the segment it was attributed to (charges.ts keeps E per segment), and the ledger holds a reading whose
// segment's price differs from the one it charged before rather than re-pricing history.

import { z } from "zod";

// ─── schema ───────────────────────────────────────────────────────────────────────────────────────────────────────

export const TOU_RATES = ["sharp", "peak", "flat", "valley"] as const;
export type TouRate = (typeof TOU_RATES)[number];

/** Up to 8 periods a day (DL/T 1490-2015 cost-control meters; also what the meters themselves can hold). */
export const MAX_TOU_PERIODS = 8;
/** ¥10/kWh: ten to twenty times any Chinese agricultural tariff; a larger number is a typo, not a price. */
export const MAX_PRICE_CENTI_FEN_PER_KWH = 100_000;

const MINUTES_PER_DAY = 1440;
const SHANGHAI_OFFSET_MS = 8 * 3_600_000;
const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

const CLOCK_PATTERN = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** "HH:MM" (00:00..23:59) → minutes after midnight; the schema guarantees the pattern. */
function clockMinutes(hhmm: string): number {
  const m = CLOCK_PATTERN.exec(hhmm);
  if (m === null) return Number.NaN;
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Tariff ids end up inside segment keys ("id@vN/rate"), so they cannot contain '@' or '/'. */
export const tariffIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "tariff ids are 1..64 chars of A-Z, a-z, 0-9, '.', '_' and '-'");
export const priceSchema = z.int().min(1).max(MAX_PRICE_CENTI_FEN_PER_KWH);
const clockSchema = z.string().regex(CLOCK_PATTERN, "a time of day is HH:MM, 00:00..23:59");

/** A half-open window [from, to) of Shanghai local time; from > to crosses midnight (22:00–06:00). */
export const touPeriodSchema = z.strictObject({
  rate: z.enum(TOU_RATES),
  from: clockSchema,
  to: clockSchema,
  priceCentiFenPerKwh: priceSchema,
});

export const flatPricesSchema = z.strictObject({
  kind: z.literal("flat"),
  priceCentiFenPerKwh: priceSchema,
});

export const touPricesSchema = z
  .strictObject({
    kind: z.literal("time-of-use"),
    periods: z.array(touPeriodSchema).min(1).max(MAX_TOU_PERIODS),
  })
  .superRefine((prices, ctx) => {
    // Every minute of the day has exactly one period: no gap (priceAt is total) and no overlap (it is unambiguous).
    const owner = new Array<number>(MINUTES_PER_DAY).fill(-1);
    const priceOfRate = new Map<TouRate, number>();
    prices.periods.forEach((p, i) => {
      const known = priceOfRate.get(p.rate);
      if (known !== undefined && known !== p.priceCentiFenPerKwh) {
        ctx.addIssue({ code: "custom", path: ["periods", i, "priceCentiFenPerKwh"], message: `rate ${p.rate} already costs ${known}; one rate has one price per tariff version` });
      }
      priceOfRate.set(p.rate, p.priceCentiFenPerKwh);
      const from = clockMinutes(p.from);
      const to = clockMinutes(p.to);
      if (Number.isNaN(from) || Number.isNaN(to)) return; // the clock schema reported it
      if (from === to) {
        ctx.addIssue({ code: "custom", path: ["periods", i, "to"], message: "a period needs from ≠ to (use a flat tariff for one price all day)" });
        return;
      }
      let overlapReported = false;
      for (let m = from; m !== to; m = (m + 1) % MINUTES_PER_DAY) {
        const previous = owner[m];
        if (previous === undefined || previous < 0) {
          owner[m] = i;
        } else if (!overlapReported) {
          ctx.addIssue({ code: "custom", path: ["periods", i], message: `overlaps period ${previous} at ${formatMinutes(m)}` });
          overlapReported = true;
        }
      }
    });
    const gap = owner.indexOf(-1);
    if (gap >= 0) {
      ctx.addIssue({ code: "custom", path: ["periods"], message: `the periods leave ${formatMinutes(gap)} without a price; they must cover the whole day` });
    }
  });

export const tariffPricesSchema = z.discriminatedUnion("kind", [flatPricesSchema, touPricesSchema]);

export const tariffSchema = z.strictObject({
  tariffId: tariffIdSchema,
  version: z.int().positive(),
  /** Epoch ms from which this version applies (a reading at exactly effectiveFrom is priced by it). */
  effectiveFrom: z.int().nonnegative(),
  prices: tariffPricesSchema,
});

export type TouPeriod = z.infer<typeof touPeriodSchema>;
export type TariffPrices = z.infer<typeof tariffPricesSchema>;
export type Tariff = z.infer<typeof tariffSchema>;

/** Bound on the versions one schedule holds (a tariff changes a few times a year). */
export const MAX_TARIFF_VERSIONS = 256;

/**
 * The tariff versions that apply to one meter, in any order. effectiveFrom values are distinct (one version in force
 * at a time), (tariffId, version) pairs are unique, and within one tariffId a higher version takes effect later.
 */
export const tariffScheduleSchema = z
  .array(tariffSchema)
  .min(1)
  .max(MAX_TARIFF_VERSIONS)
  .superRefine((tariffs, ctx) => {
    const byStart = new Map<number, number>();
    const byVersion = new Map<string, number>();
    tariffs.forEach((t, i) => {
      const sameStart = byStart.get(t.effectiveFrom);
      if (sameStart !== undefined) ctx.addIssue({ code: "custom", path: [i, "effectiveFrom"], message: `tariff ${sameStart} takes effect at the same instant` });
      byStart.set(t.effectiveFrom, i);
      const key = `${t.tariffId}@v${t.version}`;
      const sameVersion = byVersion.get(key);
      if (sameVersion !== undefined) ctx.addIssue({ code: "custom", path: [i, "version"], message: `${key} appears twice (entries ${sameVersion} and ${i})` });
      byVersion.set(key, i);
    });
    tariffs.forEach((t, i) => {
      for (const other of tariffs) {
        if (other.tariffId === t.tariffId && other.version < t.version && other.effectiveFrom > t.effectiveFrom) {
          ctx.addIssue({ code: "custom", path: [i, "effectiveFrom"], message: `${t.tariffId} v${t.version} takes effect before v${other.version}` });
          return;
        }
      }
    });
  });

// ─── queries ──────────────────────────────────────────────────────────────────────────────────────────────────────

export interface PriceAt {
  /** "tariffId@vN/rate": one price of one tariff version; the unit charges.ts accumulates energy and money under. */
  readonly segmentKey: string;
  readonly priceCentiFenPerKwh: number;
  readonly tariffId: string;
  readonly version: number;
  readonly rate: TouRate;
}

export function segmentKeyOf(tariff: Pick<Tariff, "tariffId" | "version">, rate: TouRate): string {
  return `${tariff.tariffId}@v${tariff.version}/${rate}`;
}

/** Minutes since Shanghai midnight, 0..1439, for any epoch ms (floor arithmetic, so instants before 1970 work too). */
export function shanghaiMinuteOfDay(epochMs: number): number {
  const local = epochMs + SHANGHAI_OFFSET_MS;
  return Math.floor((((local % DAY_MS) + DAY_MS) % DAY_MS) / MINUTE_MS);
}

function formatMinutes(m: number): string {
  return `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
}

/** The version in force at atMs: latest effectiveFrom ≤ atMs (ties — which the schedule schema refuses — by version). */
export function tariffInForce(tariffs: readonly Tariff[], atMs: number): Tariff | undefined {
  let best: Tariff | undefined;
  for (const t of tariffs) {
    if (t.effectiveFrom > atMs) continue;
    if (best === undefined || t.effectiveFrom > best.effectiveFrom || (t.effectiveFrom === best.effectiveFrom && t.version > best.version)) best = t;
  }
  return best;
}

function inPeriod(p: TouPeriod, minute: number): boolean {
  const from = clockMinutes(p.from);
  const to = clockMinutes(p.to);
  return from < to ? minute >= from && minute < to : minute >= from || minute < to;
}

/**
 * The price and segment in force at atMs, or undefined when no version has taken effect yet (or, for an invalid
 * time-of-use table the schema would have refused, when no period covers the minute): the caller must not charge.
 */
export function priceAt(tariffs: readonly Tariff[], atMs: number): PriceAt | undefined {
  const tariff = tariffInForce(tariffs, atMs);
  if (tariff === undefined) return undefined;
  const base = { tariffId: tariff.tariffId, version: tariff.version };
  if (tariff.prices.kind === "flat") {
    return { ...base, rate: "flat", segmentKey: segmentKeyOf(tariff, "flat"), priceCentiFenPerKwh: tariff.prices.priceCentiFenPerKwh };
  }
  const minute = shanghaiMinuteOfDay(atMs);
  const period = tariff.prices.periods.find((p) => inPeriod(p, minute));
  if (period === undefined) return undefined;
  return { ...base, rate: period.rate, segmentKey: segmentKeyOf(tariff, period.rate), priceCentiFenPerKwh: period.priceCentiFenPerKwh };
}

/** Every segment (and its price) of one tariff version. */
export function segmentsOf(tariff: Tariff): { segmentKey: string; priceCentiFenPerKwh: number }[] {
  if (tariff.prices.kind === "flat") return [{ segmentKey: segmentKeyOf(tariff, "flat"), priceCentiFenPerKwh: tariff.prices.priceCentiFenPerKwh }];
  const seen = new Map<string, number>();
  for (const p of tariff.prices.periods) seen.set(segmentKeyOf(tariff, p.rate), p.priceCentiFenPerKwh);
  return [...seen].map(([segmentKey, priceCentiFenPerKwh]) => ({ segmentKey, priceCentiFenPerKwh }));
}

/**
 * The segments that energy used from fromMs on can be charged under: every segment of the version in force at
 * fromMs and of every later version. Energy is attributed to the segment in force at the reading that follows it
 * (charges.ts), and that reading is never earlier than the energy, so nothing earlier can apply.
 */
export function segmentsFrom(tariffs: readonly Tariff[], fromMs: number): { segmentKey: string; priceCentiFenPerKwh: number }[] {
  const current = tariffInForce(tariffs, fromMs);
  const versions = tariffs.filter((t) => t === current || t.effectiveFrom > fromMs);
  return versions.flatMap(segmentsOf);
}

/**
 * The highest price that can apply to energy used from fromMs on (see segmentsFrom), or undefined when no tariff is
 * in force or scheduled — then nothing can be priced and no credit may be granted. A version published later with a
 * higher price is not known here: publishing one must re-size every grant (grants.ts).
 */
export function maxPrice(tariffs: readonly Tariff[], fromMs: number): number | undefined {
  let max: number | undefined;
  for (const s of segmentsFrom(tariffs, fromMs)) if (max === undefined || s.priceCentiFenPerKwh > max) max = s.priceCentiFenPerKwh;
  return max;
}
