// What settlement must show a human about a meter, from the gateways' event uplinks: tamper and bypass events
// (including the edge's energy checks, which report as tamper kinds energy_backwards / energy_jump / not_a_number),
// and the stretches when the meter could not be read (device.offline → device.online, monitoring.gap →
// monitoring.restored). The events sink calls recordMeterFlags for every event batch; the insert is idempotent on
// (gatewayId, seq, index), so a redelivered batch records nothing twice. The MeterFlagSource port hands settlement
// each meter's flags for a window, offline stretches already paired and clipped to it.
//
// This file is the port and its SQLite engine (a table in a file the caller opened: cloud.db); the PostgreSQL engine,
// which several `agri-cloud serve` workers share so that a tamper event received by one is seen by a settlement
// drafted on another, is postgres-meter-flags.ts; meter-flags-open.ts chooses between them. What a flag is, and the
// pure mapping both engines share, live in meter-flags-rows.ts. The SQLite engine finishes each call's work before
// it returns its promise.

import type Database from "better-sqlite3";
import type { EventBatch } from "../../protocols/mqtt/messages.js";
import { distinctMeters, flagRowsOf, flagsByMeter, type MeterFlag, type StoredFlagRow } from "./meter-flags-rows.js";

export { flagsInWindow, METER_FLAG_KINDS, type FlagEvent, type MeterFlag, type MeterFlagKind } from "./meter-flags-rows.js";

export interface MeterFlagSource {
  /** Flags of the given meters that touch [fromMs, toMs), by meter (in the order asked); meters with no flag are absent. */
  flagsFor(meterIds: readonly string[], fromMs: number, toMs: number): Promise<Map<string, MeterFlag[]>>;
}

export interface MeterFlagStore extends MeterFlagSource {
  /**
   * Record the meter-relevant events of one uplink batch; resolves to how many rows were new. Idempotent. A batch
   * that is not an event batch is refused with SUBSIDY_INVALID_INPUT and records nothing.
   */
  recordMeterFlags(gatewayId: string, batch: EventBatch): Promise<number>;
  /** Releases what the store opened itself (a store on a caller's SQLite handle leaves that handle open). */
  close(): Promise<void>;
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

/** The SQLite MeterFlagStore; applies its table to `db` (which may be the ledger's or the registry's file). */
export function openMeterFlagStore(db: Database.Database, options: { closeDb?: boolean } = {}): MeterFlagStore {
  db.exec(METER_FLAGS_SCHEMA_SQL);
  const insert = db.prepare(
    "INSERT INTO subsidy_meter_flags (gateway_id, seq, idx, meter_id, event_type, at_ms, since_ms, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
  );
  // Events in the window, plus each meter's latest reachability event before it (an offline stretch that began
  // before the window and is still open inside it); in the order meter-flags-rows.ts documents (BINARY collation:
  // byte order, as PostgreSQL's COLLATE "C").
  const select = db.prepare<[string, number, number, string, number], StoredFlagRow>(`
    SELECT meter_id, event_type, at_ms, since_ms, detail FROM (
      SELECT meter_id, event_type, at_ms, since_ms, detail, gateway_id, seq, idx FROM subsidy_meter_flags
        WHERE meter_id IN (SELECT value FROM json_each(?)) AND at_ms >= ? AND at_ms < ?
      UNION ALL
      SELECT f.meter_id, f.event_type, f.at_ms, f.since_ms, f.detail, f.gateway_id, f.seq, f.idx FROM json_each(?) j
        JOIN subsidy_meter_flags f ON f.rowid = (
          SELECT g.rowid FROM subsidy_meter_flags g
            WHERE g.meter_id = j.value AND g.at_ms < ? AND g.event_type <> 'tamper'
            ORDER BY g.at_ms DESC, g.gateway_id DESC, g.seq DESC, g.idx DESC LIMIT 1))
    ORDER BY at_ms, gateway_id, seq, idx`);
  const recordTx = db.transaction((gatewayId: string, batch: EventBatch): number => {
    let added = 0;
    for (const r of flagRowsOf(gatewayId, batch)) added += insert.run(r.gatewayId, r.seq, r.idx, r.meterId, r.eventType, r.atMs, r.sinceMs, r.detail).changes;
    return added;
  });
  // better-sqlite3 is synchronous: the work is done before the promise is returned, a refusal is a rejected promise.
  const run = <T>(work: () => T): Promise<T> => {
    try {
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  };
  return {
    recordMeterFlags: (gatewayId, batch) => run(() => recordTx(gatewayId, batch)),
    flagsFor: (meterIds, fromMs, toMs) =>
      run(() => {
        const ids = JSON.stringify(distinctMeters(meterIds));
        return flagsByMeter(meterIds, select.all(ids, fromMs, toMs, ids, fromMs), fromMs, toMs);
      }),
    close: () =>
      run(() => {
        if (options.closeDb === true && db.open) db.close();
      }),
  };
}
