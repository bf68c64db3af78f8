// kWh per day for a household's statement of account, pure. Days are Asia/Shanghai calendar days (UTC+8, no daylight
// saving since 1991), the days a farmer's receipt speaks of.
//
// Two sources, best first:
// - "telemetry": the meter's cumulative import-energy register from the telemetry store, in hourly buckets; a day's
//   energy is the last register of that day minus the last register before it (the first sample of the range when
//   nothing came before). A register that went backwards (a replaced meter) counts 0 for that step, never negative.
// - "charges": the energy of the charge postings themselves (their memo's "<n> Wh"), summed by the day of the
//   reading. Exact to the Wh the household was charged for, but a reading whose charge rounded to 0 fen posted
//   nothing, so a day can read a few Wh low. Used only when the telemetry store has no series for the meter.

export const SHANGHAI_OFFSET_MS = 8 * 3_600_000;
export const DAY_MS = 86_400_000;

export interface DailyEnergy {
  /** YYYY-MM-DD, Asia/Shanghai. */
  readonly day: string;
  readonly energyWh: number;
}

export const shanghaiDay = (atMs: number): string => new Date(atMs + SHANGHAI_OFFSET_MS).toISOString().slice(0, 10);

/**
 * Hourly buckets of a cumulative register (their first and last value, converted to Wh by the caller) → energy per
 * day. Energy inside a bucket counts on the bucket's day; the gap between one bucket's last sample and the next one's
 * first counts on the EARLIER bucket's day — with a sample on each hour, the energy up to 16:00 UTC (Shanghai
 * midnight) then lands on the day it was drawn. The error of either rule is at most one hour's energy at a day's edge.
 * Buckets before fromMs set the baseline only.
 */
export function dailyEnergyFromRegister(buckets: readonly { atMs: number; firstWh: number; lastWh: number }[], fromMs: number, toMs: number): DailyEnergy[] {
  const sorted = [...buckets].sort((a, b) => a.atMs - b.atMs);
  const byDay = new Map<string, number>();
  const add = (atMs: number, wh: number): void => {
    if (atMs < fromMs || atMs >= toMs) return;
    const day = shanghaiDay(atMs);
    byDay.set(day, (byDay.get(day) ?? 0) + Math.max(0, wh));
  };
  let previous: { atMs: number; lastWh: number } | undefined;
  for (const b of sorted) {
    if (b.atMs >= toMs) break;
    // A gap from the baseline (before fromMs) into the range counts on the range's first bucket.
    if (previous !== undefined) add(previous.atMs < fromMs ? b.atMs : previous.atMs, b.firstWh - previous.lastWh);
    add(b.atMs, b.lastWh - b.firstWh);
    previous = b;
  }
  return [...byDay.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([day, energyWh]) => ({ day, energyWh }));
}

const CHARGE_MEMO = /^(\S+) seq \d+ epoch \d+: (\d+) Wh at /;

/** The meter and energy a charge posting's memo names (charge-entries.ts writes it), or undefined. */
export function chargeMemoEnergy(memo: string): { meterId: string; energyWh: number } | undefined {
  const match = CHARGE_MEMO.exec(memo);
  if (match === null) return undefined;
  return { meterId: match[1] ?? "", energyWh: Number(match[2]) };
}

export function dailyEnergyFromCharges(entries: readonly { atMs: number; memo: string; kind: string }[], meterId: string): DailyEnergy[] {
  const byDay = new Map<string, number>();
  for (const e of entries) {
    if (e.kind !== "charge") continue;
    const parsed = chargeMemoEnergy(e.memo);
    if (parsed?.meterId !== meterId) continue;
    const day = shanghaiDay(e.atMs);
    byDay.set(day, (byDay.get(day) ?? 0) + parsed.energyWh);
  }
  return [...byDay.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([day, energyWh]) => ({ day, energyWh }));
}
