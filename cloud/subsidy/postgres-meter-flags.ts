// The MeterFlagStore (meter-flags.ts) on PostgreSQL: the events sink of every `agri-cloud serve` worker records into
// one table, so a tamper event that reached worker B flags the meter in a settlement drafted on worker A. One INSERT
// … SELECT FROM unnest(…) ON CONFLICT DO NOTHING per batch: a batch redelivered to two workers at once inserts each row
// once (the primary key decides), and the count of new rows is exact. The rows come back in the order
// meter-flags-rows.ts documents (gateway ids compared COLLATE "C", byte order, as SQLite's BINARY), so flagsFor
// answers exactly as the SQLite engine does. BIGINT read back only as safe integers.

import type { EventBatch } from "../../protocols/mqtt/messages.js";
import { openMigratedPool, strictPgInteger } from "../postgres.js";
import { SubsidyError, SUBSIDY_ERROR_CODES as C } from "./errors.js";
import type { MeterFlagStore } from "./meter-flags.js";
import { distinctMeters, flagRowsOf, flagsByMeter, type StoredFlagRow } from "./meter-flags-rows.js";
import { migratePostgresMeterFlagsOn, type MeterFlagsMigrateResult } from "./postgres-meter-flags-migrations.js";

export interface PostgresMeterFlagsOptions {
  readonly connectionString: string;
  /** For the migration row's applied_at_ms. */
  readonly now?: () => number;
  /** Connections in the pool (default 2: one event batch at a time per ingest, a settlement now and then). */
  readonly poolSize?: number;
  readonly applicationName?: string;
}

export type PostgresMeterFlagStore = MeterFlagStore & { readonly kind: "postgres"; readonly migration: MeterFlagsMigrateResult };

const parseInteger = strictPgInteger((text) => new SubsidyError(C.INVALID, `stored meter-flag value ${text} is not an integer within ±(2^53 − 1); refusing to round it`));

const SELECT_SQL = `
SELECT meter_id, event_type, at_ms, since_ms, detail FROM (
  SELECT meter_id, event_type, at_ms, since_ms, detail, gateway_id, seq, idx FROM subsidy_meter_flags
    WHERE meter_id = ANY($1::text[]) AND at_ms >= $2 AND at_ms < $3
  UNION ALL
  SELECT l.meter_id, l.event_type, l.at_ms, l.since_ms, l.detail, l.gateway_id, l.seq, l.idx FROM unnest($1::text[]) AS m(meter_id)
    CROSS JOIN LATERAL (
      SELECT g.meter_id, g.event_type, g.at_ms, g.since_ms, g.detail, g.gateway_id, g.seq, g.idx FROM subsidy_meter_flags g
        WHERE g.meter_id = m.meter_id AND g.at_ms < $2 AND g.event_type <> 'tamper'
        ORDER BY g.at_ms DESC, g.gateway_id COLLATE "C" DESC, g.seq DESC, g.idx DESC LIMIT 1) l
) x
ORDER BY at_ms, gateway_id COLLATE "C", seq, idx`;

export async function openPostgresMeterFlagStore(options: PostgresMeterFlagsOptions): Promise<PostgresMeterFlagStore> {
  const now = options.now ?? Date.now;
  const { pool, migration } = await openMigratedPool(
    { connectionString: options.connectionString, poolSize: options.poolSize ?? 2, applicationName: options.applicationName ?? "agri-meter-flags", parseInteger },
    (client) => migratePostgresMeterFlagsOn(client, now()),
  );
  let closing: Promise<void> | undefined;
  return {
    kind: "postgres",
    migration,
    async recordMeterFlags(gatewayId: string, batch: EventBatch) {
      const rows = flagRowsOf(gatewayId, batch);
      if (rows.length === 0) return 0;
      const r = await pool.query(
        `INSERT INTO subsidy_meter_flags (gateway_id, seq, idx, meter_id, event_type, at_ms, since_ms, detail)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[])
         ON CONFLICT DO NOTHING`,
        [
          rows.map((x) => x.gatewayId),
          rows.map((x) => x.seq),
          rows.map((x) => x.idx),
          rows.map((x) => x.meterId),
          rows.map((x) => x.eventType),
          rows.map((x) => x.atMs),
          rows.map((x) => x.sinceMs),
          rows.map((x) => x.detail),
        ],
      );
      return r.rowCount ?? 0;
    },
    async flagsFor(meterIds, fromMs, toMs) {
      const r = await pool.query<StoredFlagRow>(SELECT_SQL, [distinctMeters(meterIds), fromMs, toMs]);
      return flagsByMeter(meterIds, r.rows, fromMs, toMs);
    },
    close() {
      closing ??= pool.end();
      return closing;
    },
  };
}
