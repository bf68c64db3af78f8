// The pure half of every MeterFlagStore engine (meter-flags.ts on SQLite, postgres-meter-flags.ts): what a meter flag
// is, an uplink event batch checked and turned into the rows to store, and stored rows turned into each meter's flags
// for a window (offline stretches paired and clipped). Both engines share it, so `flagsFor` answers the same on
// either: the rows come back in one documented order (at_ms, then gateway_id in byte order, seq, idx), and the
// result lists meters in the order they were asked for. meter-flags.ts re-exports the types and flagsInWindow.

import { z } from "zod";
import { eventBatchSchema, type EventBatch } from "../../protocols/mqtt/messages.js";
import { SubsidyError, SUBSIDY_ERROR_CODES as C } from "./errors.js";

export const METER_FLAG_KINDS = ["tamper", "bypass", "offline"] as const;
export type MeterFlagKind = (typeof METER_FLAG_KINDS)[number];

export interface MeterFlag {
  readonly meterId: string;
  readonly kind: MeterFlagKind;
  /** When it began (the event's `at`, or the start of an offline stretch clipped to the window). */
  readonly atMs: number;
  /** Offline stretches: when the meter answered again, clipped to the window's end. */
  readonly untilMs?: number;
  readonly detail: string;
}

/** One stored event row, as the pairing below needs it. */
export interface FlagEvent {
  readonly meterId: string;
  readonly eventType: "tamper" | "device.offline" | "device.online" | "monitoring.gap" | "monitoring.restored";
  readonly atMs: number;
  /** monitoring.gap: when the device last answered. */
  readonly sinceMs?: number;
  readonly detail: string;
}

/**
 * One meter's events (any order; ties keep their given order) → its flags in [fromMs, toMs). An offline stretch
 * starts at device.offline (or a gap's silentSince) and ends at the next device.online / monitoring.restored, or runs
 * to the window's end.
 */
export function flagsInWindow(events: readonly FlagEvent[], fromMs: number, toMs: number): MeterFlag[] {
  const sorted = [...events].sort((a, b) => a.atMs - b.atMs);
  const flags: MeterFlag[] = [];
  let offlineSince: { atMs: number; detail: string } | undefined;
  const closeOffline = (endMs: number): void => {
    if (offlineSince === undefined) return;
    const from = Math.max(offlineSince.atMs, fromMs);
    const until = Math.min(endMs, toMs);
    if (until > from) flags.push({ meterId: "", kind: "offline", atMs: from, untilMs: until, detail: offlineSince.detail });
    offlineSince = undefined;
  };
  for (const e of sorted) {
    if (e.eventType === "tamper") {
      if (e.atMs >= fromMs && e.atMs < toMs) flags.push({ meterId: e.meterId, kind: e.detail.startsWith("bypass_suspected") ? "bypass" : "tamper", atMs: e.atMs, detail: e.detail });
    } else if (e.eventType === "device.offline" || e.eventType === "monitoring.gap") {
      const start = e.eventType === "monitoring.gap" ? (e.sinceMs ?? e.atMs) : e.atMs;
      if (offlineSince === undefined || start < offlineSince.atMs) offlineSince = { atMs: start, detail: e.detail };
    } else {
      closeOffline(e.atMs);
    }
  }
  closeOffline(toMs);
  const meterId = sorted[0]?.meterId ?? "";
  return flags.map((f) => ({ ...f, meterId })).sort((a, b) => a.atMs - b.atMs);
}

/** One row of subsidy_meter_flags, keyed by (gatewayId, seq, idx) so a redelivered batch inserts nothing twice. */
export interface FlagRowInput {
  readonly gatewayId: string;
  readonly seq: number;
  readonly idx: number;
  readonly meterId: string;
  readonly eventType: FlagEvent["eventType"];
  readonly atMs: number;
  readonly sinceMs: number | null;
  readonly detail: string;
}

/** A stored row as both engines select it. */
export interface StoredFlagRow {
  meter_id: string;
  event_type: FlagEvent["eventType"];
  at_ms: number;
  since_ms: number | null;
  detail: string;
}

const gatewayIdArg = z.string().min(1).max(200);

/** The batch's events that say something about a meter's billing; anything that is not an event batch is refused. */
export function flagRowsOf(gatewayId: string, batch: EventBatch): FlagRowInput[] {
  const gw = gatewayIdArg.safeParse(gatewayId);
  const parsed = eventBatchSchema.safeParse(batch);
  if (!gw.success || !parsed.success) {
    const issues = [...(gw.success ? [] : gw.error.issues.map((i) => `gatewayId: ${i.message}`)), ...(parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`))];
    throw new SubsidyError(C.INVALID, `meter flags refused an uplink that is not an event batch: ${issues.slice(0, 5).join("; ")}`);
  }
  const rows: FlagRowInput[] = [];
  parsed.data.events.forEach((e, idx) => {
    const key = { gatewayId: gw.data, seq: parsed.data.seq, idx };
    if (e.type === "tamper") rows.push({ ...key, meterId: e.deviceId, eventType: "tamper", atMs: Date.parse(e.at), sinceMs: null, detail: `${e.kind}: ${e.detail}` });
    else if (e.type === "device.offline" || e.type === "device.online") rows.push({ ...key, meterId: e.deviceId, eventType: e.type, atMs: Date.parse(e.at), sinceMs: null, detail: e.lastError ?? e.type });
    else if (e.type === "monitoring.gap")
      rows.push({ ...key, meterId: e.deviceId, eventType: e.type, atMs: Date.parse(e.at), sinceMs: Date.parse(e.silentSinceAt), detail: `silent since ${e.silentSinceAt}, ${e.missedPolls} polls missed` });
    else if (e.type === "monitoring.restored") rows.push({ ...key, meterId: e.deviceId, eventType: e.type, atMs: Date.parse(e.at), sinceMs: Date.parse(e.silentSinceAt), detail: "answering again" });
  });
  return rows;
}

/** The meters asked for, each once, in the order first asked. */
export const distinctMeters = (meterIds: readonly string[]): string[] => [...new Set(meterIds)];

/** Stored rows (in the documented order) → each meter's flags in [fromMs, toMs); meters with none are absent. */
export function flagsByMeter(meterIds: readonly string[], rows: readonly StoredFlagRow[], fromMs: number, toMs: number): Map<string, MeterFlag[]> {
  const byMeter = new Map<string, FlagEvent[]>();
  for (const r of rows) {
    const list = byMeter.get(r.meter_id) ?? [];
    list.push({ meterId: r.meter_id, eventType: r.event_type, atMs: r.at_ms, ...(r.since_ms === null ? {} : { sinceMs: r.since_ms }), detail: r.detail });
    byMeter.set(r.meter_id, list);
  }
  const result = new Map<string, MeterFlag[]>();
  for (const meterId of distinctMeters(meterIds)) {
    const flags = flagsInWindow(byMeter.get(meterId) ?? [], fromMs, toMs);
    if (flags.length > 0) result.set(meterId, flags);
  }
  return result;
}
