// Calendar days in Asia/Shanghai ("YYYY-MM-DD"), the unit the subsidy keeps usage in and settles over. China has kept
// UTC+8 with no daylight saving since 1991, so a fixed offset is exact for every date this software will see; a day
// is [00:00, 24:00) local, i.e. [dayStartMs, dayStartMs + 86,400,000). Pure.

export const SHANGHAI_OFFSET_MS = 8 * 3_600_000;
export const DAY_MS = 86_400_000;

const DAY_PATTERN = /^(\d{4})-(\d{2})-(\d{2})$/;

/** The local calendar day of an instant. */
export function localDayOf(atMs: number): string {
  return new Date(atMs + SHANGHAI_OFFSET_MS).toISOString().slice(0, 10);
}

/** The instant a local day begins (00:00 Asia/Shanghai). Throws on a string that is not a real date. */
export function dayStartMs(day: string): number {
  const m = DAY_PATTERN.exec(day);
  const ms = m === null ? Number.NaN : Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== day) throw new RangeError(`${day} is not a calendar day YYYY-MM-DD`);
  return ms - SHANGHAI_OFFSET_MS;
}

export function isLocalDay(day: string): boolean {
  try {
    dayStartMs(day);
    return true;
  } catch {
    return false;
  }
}

export function addDays(day: string, days: number): string {
  return localDayOf(dayStartMs(day) + days * DAY_MS);
}

/** Inclusive count of days from `fromDay` to `toDay` (0 when toDay is before fromDay). */
export function daysBetweenInclusive(fromDay: string, toDay: string): number {
  return Math.max(0, Math.round((dayStartMs(toDay) - dayStartMs(fromDay)) / DAY_MS) + 1);
}

/** Local hour 0..23 of an instant. */
export function localHourOf(atMs: number): number {
  return Math.floor((((atMs + SHANGHAI_OFFSET_MS) % DAY_MS) + DAY_MS) % DAY_MS / 3_600_000);
}
