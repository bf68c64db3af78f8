// Asia/Shanghai wall-clock arithmetic for the guards: minute of day, day of week, friendly-period membership, and
// the ISO instant events carry. Pure integer arithmetic on epoch ms — no Date parsing, no host time zone — because
// the gateway's zone setting is whatever the SD-card image shipped with, while grants are written in Shanghai time.

import type { FriendlyPeriod } from "../../protocols/mqtt/messages.js";

/** China Standard Time is UTC+8 all year; China has observed no daylight saving since 1991. */
export const SHANGHAI_OFFSET_MS = 8 * 3_600_000;
const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;
/** 1970-01-01 was a Thursday; days are numbered 0 = Sunday .. 6 = Saturday, as Date#getDay and the grant schema. */
const EPOCH_DAY_OF_WEEK = 4;

/** Whole days since 1970-01-01 in Shanghai local time (floor, so instants before the epoch work too). */
function shanghaiDayNumber(epochMs: number): number {
  return Math.floor((epochMs + SHANGHAI_OFFSET_MS) / DAY_MS);
}

/** Minutes since local midnight in Shanghai, 0..1439. */
export function shanghaiMinuteOfDay(epochMs: number): number {
  const local = epochMs + SHANGHAI_OFFSET_MS;
  return Math.floor((((local % DAY_MS) + DAY_MS) % DAY_MS) / MINUTE_MS);
}

/** Day of week in Shanghai, 0 = Sunday .. 6 = Saturday. */
export function shanghaiDayOfWeek(epochMs: number): number {
  return (((shanghaiDayNumber(epochMs) + EPOCH_DAY_OF_WEEK) % 7) + 7) % 7;
}

const CLOCK_PATTERN = /^([01]\d|2[0-3]):([0-5]\d)$/;

/** "HH:MM" → minutes after midnight, or undefined when the text is not a 24-hour clock time. */
export function parseClockMinutes(hhmm: string): number | undefined {
  const match = CLOCK_PATTERN.exec(hhmm);
  if (match === null) return undefined;
  return Number(match[1]) * 60 + Number(match[2]);
}

/**
 * Whether `epochMs` lies inside the period, a half-open window [from, to) of Shanghai local time.
 *
 * A period whose `from` is after its `to` crosses midnight (22:00–06:00). `days` names the day on which the period
 * *begins*: "Friday 22:00–06:00" covers Friday 22:00 to Saturday 06:00, and Friday 03:00 belongs to Thursday's
 * period. That is how people read a night schedule, and it keeps one period one contiguous stretch of time.
 *
 * A malformed clock time (the command schema refuses them, so only a bug gets here) makes the period match nothing:
 * a friendly period widens what a meter may draw without credit, so a period the guard cannot read must not widen it.
 */
export function inFriendlyPeriod(period: FriendlyPeriod, epochMs: number): boolean {
  const from = parseClockMinutes(period.from);
  const to = parseClockMinutes(period.to);
  if (from === undefined || to === undefined || from === to) return false;
  const minute = shanghaiMinuteOfDay(epochMs);
  let startedDay: number;
  if (from < to) {
    if (minute < from || minute >= to) return false;
    startedDay = shanghaiDayOfWeek(epochMs);
  } else if (minute >= from) {
    startedDay = shanghaiDayOfWeek(epochMs);
  } else if (minute < to) {
    // After midnight: this stretch began yesterday evening.
    startedDay = shanghaiDayOfWeek(epochMs - DAY_MS);
  } else {
    return false;
  }
  return period.days === undefined || period.days.includes(startedDay);
}

/** Whether `epochMs` lies inside any of the periods. */
export function inAnyFriendlyPeriod(periods: readonly FriendlyPeriod[], epochMs: number): boolean {
  return periods.some((p) => inFriendlyPeriod(p, epochMs));
}

/**
 * The instant as ISO 8601 in UTC ("…Z"), the form every event's `at` takes (messages.ts requires an explicit offset).
 * Formatting a given instant is deterministic; only reading the clock would make a core impure.
 */
export function isoInstant(epochMs: number): string {
  return new Date(epochMs).toISOString();
}
