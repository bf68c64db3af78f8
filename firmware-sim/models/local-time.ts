// Time of day in Asia/Shanghai (UTC+8 all year, no daylight saving), which farm schedules and tariffs use.

export const SHANGHAI_OFFSET_MS = 8 * 3600_000;

export function minuteOfDayShanghai(epochMs: number): number {
  const local = epochMs + SHANGHAI_OFFSET_MS;
  return Math.floor((((local % 86_400_000) + 86_400_000) % 86_400_000) / 60_000);
}

export function dayOfWeekShanghai(epochMs: number): number {
  return new Date(epochMs + SHANGHAI_OFFSET_MS).getUTCDay();
}

/** "HH:MM" → minutes after midnight. The scenario schema validates the format. */
export function parseClock(hhmm: string): number {
  const [h, m] = hhmm.split(":").map(Number);
  return (h ?? 0) * 60 + (m ?? 0);
}

/** Whether minute-of-day `m` lies in [from, to); windows may wrap midnight (22:00-06:00). */
export function inWindow(m: number, from: number, to: number): boolean {
  return from <= to ? m >= from && m < to : m >= from || m < to;
}
