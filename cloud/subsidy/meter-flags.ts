// What settlement must show a human about a meter, from the gateways' event uplinks: tamper and bypass events
// (including the edge's energy checks, which report as tamper kinds energy_backwards / energy_jump / not_a_number),
// and the stretches when the meter could not be read (device.offline → device.online, monitoring.gap →
// monitoring.restored). The events sink calls recordMeterFlags for every event batch; the insert is idempotent on
// (gatewayId, seq, index), so a redelivered batch records nothing twice. The MeterFlagSource port hands settlement
// each meter's flags for a window, offline stretches already paired and clipped to it.

import type Database from "better-sqlite3";
import type { EventBatch } from "../../protocols/mqtt/messages.js";

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

export interface MeterFlagSource {
  /** Flags of the given meters that touch [fromMs, toMs), by meter; meters with no flag are absent. */
  flagsFor(meterIds: readonly string[], fromMs: number, toMs: number): Promise<Map<string, MeterFlag[]>>;
}

export const METER_FLAGS_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS subsidy_meter_flags (
  gateway_id  TEXT    NOT NULL,
  seq         INTEGER NOT NULL,
  idx         INTEGER NOT NULL,
  meter_id    TEXT    NOT NULL,
  event_type  TEXT    NOT NULL CHECK (event_type IN ('tamper', 'device.offline', 'device.online', 'monitoring.gap', 'monitoring.restored')),
  at_ms       INTEGER NOT NULL,
  since_ms    INTEGER,
  detail      TEXT    NOT NULL,
  PRIMARY KEY (gateway_id, seq, idx)
) STRICT;
CREATE INDEX IF NOT EXISTS subsidy_meter_flags_by_meter ON subsidy_meter_flags (meter_id, at_ms);
`;

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
 * Pure: one meter's events (any order) → its flags in [fromMs, toMs). An offline stretch starts at device.offline
 * (or a gap's silentSince) and ends at the next device.online / monitoring.restored, or runs to the window's end.
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

export interface MeterFlagStore extends MeterFlagSource {
  /** Record the meter-relevant events of one uplink batch; returns how many rows were new. Idempotent. */
  recordMeterFlags(gatewayId: string, batch: EventBatch): number;
}

interface FlagRow {
  meter_id: string;
  event_type: FlagEvent["eventType"];
  at_ms: number;
  since_ms: number | null;
  detail: string;
}

/** The SQLite MeterFlagStore; applies its table to `db` (which may be the ledger's or the registry's file). */
export function openMeterFlagStore(db: Database.Database): MeterFlagStore {
  db.exec(METER_FLAGS_SCHEMA_SQL);
  const insert = db.prepare(
    "INSERT INTO subsidy_meter_flags (gateway_id, seq, idx, meter_id, event_type, at_ms, since_ms, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
  );
  // Events in the window, plus each meter's latest reachability event before it (an offline stretch that began
  // before the window and is still open inside it).
  const select = db.prepare<[string, number, number, string, number], FlagRow>(`
    SELECT meter_id, event_type, at_ms, since_ms, detail FROM subsidy_meter_flags
      WHERE meter_id IN (SELECT value FROM json_each(?)) AND at_ms >= ? AND at_ms < ?
    UNION ALL
    SELECT f.meter_id, f.event_type, f.at_ms, f.since_ms, f.detail FROM json_each(?) j
      JOIN subsidy_meter_flags f ON f.rowid = (
        SELECT g.rowid FROM subsidy_meter_flags g
          WHERE g.meter_id = j.value AND g.at_ms < ? AND g.event_type <> 'tamper'
          ORDER BY g.at_ms DESC LIMIT 1)`);
  const recordTx = db.transaction((gatewayId: string, batch: EventBatch): number => {
    let added = 0;
    batch.events.forEach((e, index) => {
      let row: [string, FlagEvent["eventType"], number, number | null, string] | undefined;
      const atMs = "at" in e ? Date.parse(e.at) : Number.NaN;
      if (e.type === "tamper") row = [e.deviceId, "tamper", atMs, null, `${e.kind}: ${e.detail}`];
      else if (e.type === "device.offline" || e.type === "device.online") row = [e.deviceId, e.type, atMs, null, e.lastError ?? e.type];
      else if (e.type === "monitoring.gap") row = [e.deviceId, e.type, atMs, Date.parse(e.silentSinceAt), `silent since ${e.silentSinceAt}, ${e.missedPolls} polls missed`];
      else if (e.type === "monitoring.restored") row = [e.deviceId, e.type, atMs, Date.parse(e.silentSinceAt), "answering again"];
      if (row !== undefined) added += insert.run(gatewayId, batch.seq, index, ...row).changes;
    });
    return added;
  });
  return {
    recordMeterFlags: (gatewayId, batch) => recordTx(gatewayId, batch),
    flagsFor(meterIds, fromMs, toMs) {
      const ids = JSON.stringify(meterIds);
      const byMeter = new Map<string, FlagEvent[]>();
      for (const r of select.all(ids, fromMs, toMs, ids, fromMs)) {
        const list = byMeter.get(r.meter_id) ?? [];
        list.push({ meterId: r.meter_id, eventType: r.event_type, atMs: r.at_ms, ...(r.since_ms === null ? {} : { sinceMs: r.since_ms }), detail: r.detail });
        byMeter.set(r.meter_id, list);
      }
      const result = new Map<string, MeterFlag[]>();
      for (const [meterId, events] of byMeter) {
        const flags = flagsInWindow(events, fromMs, toMs);
        if (flags.length > 0) result.set(meterId, flags);
      }
      return Promise.resolve(result);
    },
  };
}
