// The UsageSource port: what settlement reads about each meter for a window of local days — the meter's day rows
// inside the window (meter-days.ts, kept by the ledger beside its charges) and its continuous energy count at the
// window's edges. It yields one meter at a time, so a settlement holds one meter's ≤ 366 rows, never the county's:
// settlement cost and memory grow with meters, not readings. The SQLite implementation reads ledger_meter_days by
// its primary key (meter_id, day), one range scan per meter.

import type Database from "better-sqlite3";
import type { MeterDay } from "./meter-days.js";

/**
 * What settlement reads of a meter: its use summed over runs of days. The caller cuts the window into runs at the
 * days where anything settlement cares about changes (settle.ts runBoundaries: the season's edges and the plots' crop
 * changes), so one run is all alike and the sums are done where the rows are — the database — instead of in
 * JavaScript row by row. A run of one day is a day row; runs with no row are absent.
 */
export interface UsageRun {
  /** The run's first and last day (inclusive), whatever days in it were read. */
  readonly fromDay: string;
  readonly toDay: string;
  /** The first day in the run with a row. */
  readonly firstReadDay: string;
  /** Days in the run with a row (an applied reading). */
  readonly daysRead: number;
  readonly energyWh: number;
  readonly chargedFen: number;
  readonly nightWh: number;
}

export interface MeterUsage {
  readonly meterId: string;
  /** The meter's runs with rows, in day order. */
  readonly runs: readonly UsageRun[];
  /** Continuous energy count at the meter's last reading before the window, if any. */
  readonly countBeforeWh?: number;
  /** Continuous energy count at the meter's last reading up to the window's end, if any. */
  readonly countAtEndWh?: number;
}

export interface UsageSource {
  /**
   * One MeterUsage per meter id, in the order given, over [fromDay, toDay] cut into runs starting at each of
   * `boundaries` (sorted days inside (fromDay, toDay]).
   */
  usageOf(meterIds: Iterable<string>, fromDay: string, toDay: string, boundaries: readonly string[]): AsyncIterable<MeterUsage>;
}

/** One run per day row: what a source returns when every day is its own run (tests, and boundaries at every day). */
export function dayRuns(days: readonly Pick<MeterDay, "day" | "energyWh" | "chargedFen" | "nightWh">[]): UsageRun[] {
  return days.map((d) => ({ fromDay: d.day, toDay: d.day, firstReadDay: d.day, daysRead: 1, energyWh: d.energyWh, chargedFen: d.chargedFen, nightWh: d.nightWh }));
}

/** The day before `day` ("YYYY-MM-DD"), by the calendar. */
function dayBefore(day: string): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
}

type RunRow = [run: number, firstReadDay: string, daysRead: number, energyWh: number, chargedFen: number, nightWh: number, lastRegisterWh: number];

/** UsageSource over a SQLite file holding ledger_meter_days (METER_DAYS_SCHEMA_SQL): per meter, one GROUP BY over its rows. */
export function sqliteUsageSource(db: Database.Database): UsageSource {
  const byBoundaryCount = new Map<number, Database.Statement<unknown[], RunRow>>();
  const runsStatement = (n: number): Database.Statement<unknown[], RunRow> => {
    let statement = byBoundaryCount.get(n);
    if (statement === undefined) {
      const run = n === 0 ? "0" : `CASE ${Array.from({ length: n }, (_, i) => `WHEN day < ? THEN ${i}`).join(" ")} ELSE ${n} END`;
      statement = db
        .prepare<unknown[], RunRow>(
          `SELECT ${run} AS run, min(day), count(*), sum(energy_wh), sum(charged_fen), sum(night_wh), max(last_register_wh)
             FROM ledger_meter_days WHERE meter_id = ? AND day >= ? AND day <= ? GROUP BY run ORDER BY run`,
        )
        .raw(true);
      byBoundaryCount.set(n, statement);
    }
    return statement;
  };
  const before = db.prepare<[string, string], { last_register_wh: number }>(
    "SELECT last_register_wh FROM ledger_meter_days WHERE meter_id = ? AND day < ? ORDER BY day DESC LIMIT 1",
  );

  function* usage(meterIds: Iterable<string>, fromDay: string, toDay: string, boundaries: readonly string[]): Generator<MeterUsage> {
    const cuts = boundaries.filter((b) => b > fromDay && b <= toDay);
    const statement = runsStatement(cuts.length);
    for (const meterId of meterIds) {
      let countAtEndWh: number | undefined;
      const runs = statement.all(...cuts, meterId, fromDay, toDay).map(([run, firstReadDay, daysRead, energyWh, chargedFen, nightWh, lastRegisterWh]): UsageRun => {
        countAtEndWh = lastRegisterWh;
        return { fromDay: run === 0 ? fromDay : (cuts[run - 1] ?? fromDay), toDay: run === cuts.length ? toDay : dayBefore(cuts[run] ?? toDay), firstReadDay, daysRead, energyWh, chargedFen, nightWh };
      });
      const countBeforeWh = before.get(meterId, fromDay)?.last_register_wh;
      countAtEndWh ??= countBeforeWh;
      yield { meterId, runs, ...(countBeforeWh === undefined ? {} : { countBeforeWh }), ...(countAtEndWh === undefined ? {} : { countAtEndWh }) };
    }
  }

  return {
    // Async only because the port is (PostgreSQL is not synchronous); every meter is one synchronous read.
    usageOf(meterIds, fromDay, toDay, boundaries) {
      return (async function* () {
        await Promise.resolve();
        yield* usage(meterIds, fromDay, toDay, boundaries);
      })();
    },
  };
}
