// Per-sensor mutes: time-limited, with a reason and an actor, never open-ended (Silvanet's per-sensor mutes; a
// noisy sensor flagged by the false-alarm rate gets re-tuned or muted, visibly). Pure checks; the store keeps every
// mute and every lift as audited rows.

import type { Mute } from "./types.js";

/** Longest mute one request may set: a forgotten mute must end by itself. */
export const MAX_MUTE_MS = 7 * 24 * 3600_000;

export const muteActive = (mute: Mute, atMs: number): boolean => mute.fromMs <= atMs && atMs < mute.untilMs && (mute.liftedAtMs === undefined || atMs < mute.liftedAtMs);

/** The mute in force on this sensor at atMs (the one ending last, if several overlap). */
export function activeMute(mutes: readonly Mute[], sensorId: string, atMs: number): Mute | undefined {
  let found: Mute | undefined;
  for (const m of mutes) if (m.sensorId === sensorId && muteActive(m, atMs) && (found === undefined || m.untilMs > found.untilMs)) found = m;
  return found;
}

export type MuteCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export function checkMuteRequest(request: { readonly fromMs: number; readonly untilMs: number; readonly reason: string }): MuteCheck {
  if (request.untilMs <= request.fromMs) return { ok: false, reason: "a mute must end after it starts" };
  if (request.untilMs - request.fromMs > MAX_MUTE_MS) return { ok: false, reason: `a mute lasts at most ${MAX_MUTE_MS / 3600_000} hours` };
  if (request.reason.trim().length < 3) return { ok: false, reason: "a mute needs a reason" };
  return { ok: true };
}
