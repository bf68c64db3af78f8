// The UsageSource port on PostgreSQL (pg Pool), for a cloud whose ledger has outgrown one box (ARCHITECTURE.md §3):
// the same ledger_meter_days rows and the same runs as the SQLite source (usage-source.ts), read a chunk of meters
// per query (`meter_id = ANY($1)`, one round trip per 500 meters, not per meter), summed per meter and run by the
// server. Integers come back from int8/numeric as strings and are refused unless they are safe integers. Also the
// upsert for the PostgreSQL ledger's charge transaction; the table is the ledger's migration 4 (postgres-migrations.ts).

import type pg from "pg";
import { mergeMeterDayDeltas, type MeterDay } from "./meter-days.js";
import type { MeterUsage, UsageRun, UsageSource } from "./usage-source.js";

const CHUNK = 500;
const COLUMNS = 10;

/**
 * The PostgreSQL twin of meter-days.ts applyMeterDayDeltas, for the PostgreSQL ledger to call with the client of its
 * charge transaction: one multi-row upsert, the same merge (sums add, the first/last edges widen).
 */
export async function applyMeterDayDeltasPostgres(client: Pick<pg.ClientBase, "query">, deltas: readonly MeterDay[]): Promise<void> {
  // ON CONFLICT DO UPDATE may touch a row once per statement: fold repeats of a (meter, day) first.
  const rows = mergeMeterDayDeltas(deltas);
  for (let i = 0; i < rows.length; i += CHUNK) {
    const part = rows.slice(i, i + CHUNK);
    const values = part.map((_, r) => `(${Array.from({ length: COLUMNS }, (__, c) => `$${r * COLUMNS + c + 1}`).join(", ")})`).join(", ");
    await client.query(
      `INSERT INTO ledger_meter_days AS t
         (meter_id, day, energy_wh, charged_fen, night_wh, readings, first_at_ms, last_at_ms, first_register_wh, last_register_wh)
       VALUES ${values}
       ON CONFLICT (meter_id, day) DO UPDATE SET
         energy_wh = t.energy_wh + excluded.energy_wh,
         charged_fen = t.charged_fen + excluded.charged_fen,
         night_wh = t.night_wh + excluded.night_wh,
         readings = t.readings + excluded.readings,
         first_register_wh = CASE WHEN excluded.first_at_ms < t.first_at_ms THEN excluded.first_register_wh ELSE t.first_register_wh END,
         first_at_ms = least(t.first_at_ms, excluded.first_at_ms),
         last_register_wh = CASE WHEN excluded.last_at_ms >= t.last_at_ms THEN excluded.last_register_wh ELSE t.last_register_wh END,
         last_at_ms = greatest(t.last_at_ms, excluded.last_at_ms)`,
      part.flatMap((d) => [d.meterId, d.day, d.energyWh, d.chargedFen, d.nightWh, d.readings, d.firstAtMs, d.lastAtMs, d.firstRegisterWh, d.lastRegisterWh]),
    );
  }
}

function int(value: unknown, what: string): number {
  const n = typeof value === "number" ? value : Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`ledger_meter_days: ${what} ${String(value)} is not a safe integer`);
  return n;
}

function dayBefore(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
}

interface RunRow {
  meter_id: string;
  run: number;
  first_read_day: string;
  days_read: string | number;
  energy_wh: string;
  charged_fen: string;
  night_wh: string;
  last_register_wh: string;
}

export function postgresUsageSource(pool: pg.Pool): UsageSource {
  async function chunkUsage(ids: readonly string[], fromDay: string, toDay: string, cuts: readonly string[]): Promise<MeterUsage[]> {
    const run = cuts.length === 0 ? "0" : `CASE ${cuts.map((_, i) => `WHEN day < $${i + 4} THEN ${i}`).join(" ")} ELSE ${cuts.length} END`;
    const [runs, before] = await Promise.all([
      pool.query<RunRow>(
        `SELECT meter_id, ${run} AS run, min(day) AS first_read_day, count(*) AS days_read, sum(energy_wh) AS energy_wh,
                sum(charged_fen) AS charged_fen, sum(night_wh) AS night_wh, max(last_register_wh) AS last_register_wh
           FROM ledger_meter_days WHERE meter_id = ANY($1::text[]) AND day >= $2 AND day <= $3 GROUP BY meter_id, run`,
        [ids, fromDay, toDay, ...cuts],
      ),
      pool.query<{ meter_id: string; last_register_wh: string }>(
        `SELECT DISTINCT ON (meter_id) meter_id, last_register_wh FROM ledger_meter_days
           WHERE meter_id = ANY($1::text[]) AND day < $2 ORDER BY meter_id, day DESC`,
        [ids, fromDay],
      ),
    ]);
    const byMeter = new Map<string, { run: number; usage: UsageRun; lastWh: number }[]>();
    for (const r of runs.rows) {
      const list = byMeter.get(r.meter_id) ?? [];
      list.push({
        run: r.run,
        lastWh: int(r.last_register_wh, "last_register_wh"),
        usage: {
          fromDay: r.run === 0 ? fromDay : (cuts[r.run - 1] ?? fromDay),
          toDay: r.run === cuts.length ? toDay : dayBefore(cuts[r.run] ?? toDay),
          firstReadDay: r.first_read_day,
          daysRead: int(r.days_read, "days read"),
          energyWh: int(r.energy_wh, "energy_wh"),
          chargedFen: int(r.charged_fen, "charged_fen"),
          nightWh: int(r.night_wh, "night_wh"),
        },
      });
      byMeter.set(r.meter_id, list);
    }
    const countBefore = new Map(before.rows.map((r) => [r.meter_id, int(r.last_register_wh, "last_register_wh")]));
    return ids.map((meterId) => {
      const list = (byMeter.get(meterId) ?? []).sort((a, b) => a.run - b.run);
      const countBeforeWh = countBefore.get(meterId);
      const countAtEndWh = list.at(-1)?.lastWh ?? countBeforeWh;
      return { meterId, runs: list.map((x) => x.usage), ...(countBeforeWh === undefined ? {} : { countBeforeWh }), ...(countAtEndWh === undefined ? {} : { countAtEndWh }) };
    });
  }

  return {
    async *usageOf(meterIds, fromDay, toDay, boundaries) {
      const cuts = boundaries.filter((b) => b > fromDay && b <= toDay);
      let chunk: string[] = [];
      for (const id of meterIds) {
        chunk.push(id);
        if (chunk.length === CHUNK) {
          yield* await chunkUsage(chunk, fromDay, toDay, cuts);
          chunk = [];
        }
      }
      if (chunk.length > 0) yield* await chunkUsage(chunk, fromDay, toDay, cuts);
    },
  };
}
