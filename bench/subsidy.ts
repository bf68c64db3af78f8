// Settling a county (issue #5): 100,000 meters with a 180-day season of the billing data the ledger keeps (one
// ledger_meter_days row per meter per day: 18 M rows, the equivalent of ~1.7 G fifteen-minute readings), drafted
// village by village through the real service (registry port → usage source → flags → settle → statement store).
// Figures: the settlement's time against the 60 s goal, meters per second, the same run against the floor of just
// reading every row once (what "cost grows with meters × days, not readings" can at best be), and resident memory
// sampled every 100 ms during the run against its level at the start (flat = streamed, not loaded whole).
//
// The same county is then generated in a throwaway PostgreSQL server (test/harness/postgres.ts) and settled again
// through the PostgreSQL UsageSource; both must produce the same total to the fen.
//
// SUBSIDY_BENCH_METERS=10000 npm run bench -- subsidy runs a smaller county.

import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { openSqliteLedger } from "../cloud/ledger/store/sqlite-ledger.js";
import { METER_DAYS_SCHEMA_SQL } from "../cloud/subsidy/meter-days.js";
import { openMeterFlagStore } from "../cloud/subsidy/meter-flags.js";
import { subsidyService } from "../cloud/subsidy/service.js";
import { openSubsidyStore } from "../cloud/subsidy/store.js";
import { sqliteUsageSource } from "../cloud/subsidy/usage-source.js";
import type { VillageLand } from "../cloud/subsidy/village-land.js";
import { postgresUsageSource } from "../cloud/subsidy/postgres-usage-source.js";
import { migratePostgres } from "../cloud/ledger/store/postgres-migrations.js";
import type { MeterFlagSource } from "../cloud/subsidy/meter-flags.js";
import type { UsageSource } from "../cloud/subsidy/usage-source.js";
import { startPostgres } from "../test/harness/postgres.js";
import pg from "pg";
import { report } from "./report.js";

const METERS = Number(process.env.SUBSIDY_BENCH_METERS ?? 100_000);
const DAYS = 180;
const METERS_PER_VILLAGE = 500;
const FIRST_DAY = "2026-04-01";
const LAST_DAY = "2026-09-27";
const GOAL_S = 60;
const DAY0_MS = Date.parse(`${FIRST_DAY}T00:00:00+08:00`);

const pad = (i: number): string => String(i).padStart(6, "0");
const villages = Math.ceil(METERS / METERS_PER_VILLAGE);
const villageId = (v: number): string => `v${String(v).padStart(4, "0")}`;

/** The county's land, generated on demand per village (never the whole county in memory). */
function countyLand(): VillageLand {
  const range = (villageIdText: string): number[] => {
    const v = Number(villageIdText.slice(1));
    const from = v * METERS_PER_VILLAGE;
    return Array.from({ length: Math.min(METERS_PER_VILLAGE, METERS - from) }, (_, k) => from + k);
  };
  return {
    villageName: (id) => Promise.resolve(/^v\d{4}$/.test(id) && Number(id.slice(1)) < villages ? `村${id}` : undefined),
    households: (id) => Promise.resolve(range(id).map((i) => ({ householdId: `h${pad(i)}`, name: "陈德伯" }))),
    plots: (id) =>
      Promise.resolve(range(id).map((i) => ({ plotId: `p${pad(i)}`, householdId: `h${pad(i)}`, areaMilliMu: 1_000 + ((i * 37) % 9_000), crops: [{ effectiveFromMs: 0, crop: i % 10 === 9 ? "tea" : i % 2 === 0 ? "rice" : "wheat" }] }))),
    meters: (id) => Promise.resolve(range(id).map((i) => ({ meterId: `m${pad(i)}`, householdId: `h${pad(i)}`, plotId: `p${pad(i)}`, litresPerKwh: 400 }))),
    householdVillage: (h) => Promise.resolve(villageId(Math.floor(Number(h.slice(1)) / METERS_PER_VILLAGE))),
  };
}

/** 18 M rows in one transaction, generated inside SQLite in primary-key order. */
function generate(db: Database.Database): number {
  const t0 = performance.now();
  db.exec(METER_DAYS_SCHEMA_SQL);
  db.exec("CREATE TEMP TABLE bench_days (k INTEGER PRIMARY KEY, day TEXT NOT NULL)");
  const day = db.prepare("INSERT INTO bench_days VALUES (?, ?)");
  for (let k = 0; k < DAYS; k++) day.run(k, new Date(DAY0_MS + k * 86_400_000 + 8 * 3_600_000).toISOString().slice(0, 10));
  db.transaction(() =>
    db
      .prepare(
        `WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i + 1 < ?)
         INSERT INTO ledger_meter_days
         SELECT printf('m%06d', i), day, e, (e * 5283 + 50000) / 100000, e / 4, 96,
                ? + k * 86400000, ? + k * 86400000 + 85500000, i * 10 + k * 40000, i * 10 + k * 40000 + e
         FROM (SELECT i, k, day, (i * 7919 + k * 104729) % 40000 AS e FROM m CROSS JOIN bench_days ORDER BY i, k)`,
      )
      .run(METERS, DAY0_MS, DAY0_MS),
  )();
  return (performance.now() - t0) / 1000;
}

interface CountyRun {
  readonly settleS: number;
  readonly lines: number;
  readonly totalFen: number;
  /** RSS once a tenth of the villages is settled (everything warmed up), and the most seen after that. */
  readonly rssWarmMb: number;
  readonly rssPeakMb: number;
}

/** Draft every village's statement through the service, sampling RSS every 100 ms. */
async function settleCounty(dir: string, tag: string, usage: UsageSource, flags: MeterFlagSource): Promise<CountyRun> {
  const statementsDb = new Database(join(dir, `subsidy-${tag}.db`));
  statementsDb.pragma("journal_mode = WAL");
  const store = openSubsidyStore(statementsDb);
  const ledger = openSqliteLedger({ path: join(dir, `ledger-${tag}.db`) });
  let ids = 0;
  const service = subsidyService({ store, land: countyLand(), usage, flags, ledger, now: () => Date.now(), newId: () => `${tag}-${++ids}` });
  for (let v = 0; v < villages; v++) {
    await service.addPolicy(
      {
        villageId: villageId(v),
        programmeId: "grain-power",
        version: 1,
        policy: {
          name: "种粮电费补贴",
          grainCrops: ["rice", "wheat", "maize"],
          refund: { kind: "share", shareBp: 5_000 },
          seasons: [{ seasonId: "2026", name: "2026年", fromDay: FIRST_DAY, toDay: LAST_DAY }],
          capWhPerMu: 400_000,
          night: { maxShareBp: 5_000, exemptCrops: ["rice"] },
        },
      },
      "bench",
    );
  }
  let rssWarmMb = Number.POSITIVE_INFINITY;
  let rssPeakMb = 0;
  const sample = (): void => {
    const mb = process.memoryUsage().rss / 1e6;
    if (Number.isFinite(rssWarmMb)) rssPeakMb = Math.max(rssPeakMb, mb);
  };
  const sampler = setInterval(sample, 100);
  const t0 = performance.now();
  let lines = 0;
  let totalFen = 0;
  for (let v = 0; v < villages; v++) {
    const { statement, lines: l } = await service.draft({ villageId: villageId(v), programmeId: "grain-power", seasonId: "2026", actor: "bench" });
    lines += l.length;
    totalFen += statement.totalFen;
    if (v === Math.floor(villages / 10)) {
      rssWarmMb = process.memoryUsage().rss / 1e6;
      rssPeakMb = rssWarmMb;
    }
  }
  const settleS = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  sample();
  await ledger.close();
  statementsDb.close();
  return { settleS, lines, totalFen, rssWarmMb, rssPeakMb };
}

/** The same county in a throwaway PostgreSQL server, generated by the server itself. */
async function generatePostgres(pool: pg.Pool): Promise<number> {
  const t0 = performance.now();
  // The table as the PostgreSQL ledger creates it (its migration 4).
  const client = await pool.connect();
  try {
    await migratePostgres(client, Date.now());
  } finally {
    client.release();
  }
  // Bulk load the way PostgreSQL likes it: without the primary key, which is then built once by sorting.
  await pool.query("ALTER TABLE ledger_meter_days DROP CONSTRAINT ledger_meter_days_pkey");
  await pool.query(
    `INSERT INTO ledger_meter_days
     SELECT 'm' || lpad(i::text, 6, '0'), d.day, e, (e * 5283 + 50000) / 100000, e / 4, 96,
            $2::bigint + d.k * 86400000::bigint, $2::bigint + d.k * 86400000::bigint + 85500000, i * 10 + d.k * 40000, i * 10 + d.k * 40000 + e
       FROM generate_series(0, $1::int - 1) i
       CROSS JOIN (SELECT k, to_char(DATE '${FIRST_DAY}' + k, 'YYYY-MM-DD') AS day FROM generate_series(0, ${DAYS - 1}) k) d
       CROSS JOIN LATERAL (SELECT (i * 7919 + d.k * 104729) % 40000 AS e) x`,
    [METERS, DAY0_MS],
  );
  await pool.query("ALTER TABLE ledger_meter_days ADD PRIMARY KEY (meter_id, day)");
  await pool.query("VACUUM ANALYZE ledger_meter_days");
  return (performance.now() - t0) / 1000;
}

function reportRun(engine: string, run: CountyRun, scanS: number, note: string): void {
  report({ bench: `subsidy-county-settle-s-${engine}`, value: Number(run.settleS.toFixed(2)), unit: "s", goal: GOAL_S, better: "lower", note });
  report({ bench: `subsidy-county-settle-vs-goal-${engine}`, value: Number((run.settleS / GOAL_S).toFixed(3)), unit: "ratio", goal: 1, better: "lower", note: "settlement time / 60 s goal" });
  report({ bench: `subsidy-meters-per-s-${engine}`, value: Math.round(METERS / run.settleS), unit: "meters/s", goal: Math.round(100_000 / GOAL_S), better: "higher", note });
  report({ bench: `subsidy-settle-vs-row-scan-${engine}`, value: Number((run.settleS / scanS).toFixed(2)), unit: "ratio", better: "lower", note: `settlement time / one bare full scan of the same rows (${scanS.toFixed(2)} s)` });
  report({
    bench: `subsidy-rss-growth-${engine}`,
    value: Number((run.rssPeakMb / run.rssWarmMb).toFixed(3)),
    unit: "ratio",
    goal: 1.25,
    better: "lower",
    note: `peak RSS ${run.rssPeakMb.toFixed(0)} MB over the last 90% of villages / ${run.rssWarmMb.toFixed(0)} MB after the first 10%: flat means streamed`,
  });
}

export async function subsidyBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bench-subsidy-"));
  const rows = METERS * DAYS;
  let sqliteRun: CountyRun | undefined;
  try {
    const usageDb = new Database(join(dir, "ledger-days.db"));
    usageDb.pragma("journal_mode = WAL");
    usageDb.pragma("synchronous = NORMAL");
    const generateS = generate(usageDb);
    // A ledger file at rest has its WAL checkpointed into the main file; settle against that, not a 1.5 GB WAL.
    usageDb.pragma("wal_checkpoint(TRUNCATE)");
    process.stderr.write(`subsidy bench: ${rows} meter-days generated in ${generateS.toFixed(1)} s (${(statSync(join(dir, "ledger-days.db")).size / 1e9).toFixed(2)} GB)\n`);
    report({ bench: "subsidy-generate-rows-per-s", value: Math.round(rows / generateS), unit: "rows/s", better: "higher", note: "generating the county's meter-days in one SQLite transaction" });

    // The floor: read every row once, doing nothing with it.
    const scanT0 = performance.now();
    usageDb.prepare("SELECT count(*), sum(energy_wh) FROM ledger_meter_days").get();
    const scanS = (performance.now() - scanT0) / 1000;

    sqliteRun = await settleCounty(dir, "sqlite", sqliteUsageSource(usageDb), openMeterFlagStore(usageDb));
    process.stderr.write(`subsidy bench (SQLite): ${villages} villages, ${sqliteRun.lines} lines, ¥${(sqliteRun.totalFen / 100).toFixed(2)} payable\n`);
    reportRun("sqlite", sqliteRun, scanS, `${METERS} meters × ${DAYS} days (${rows} ledger_meter_days rows) on SQLite, ${villages} villages of ${METERS_PER_VILLAGE}`);
    usageDb.close();
    rmSync(join(dir, "ledger-days.db"), { force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const pgDir = mkdtempSync(join(tmpdir(), "bench-subsidy-pg-"));
  const server = await startPostgres();
  try {
    const pool = new pg.Pool({ connectionString: await server.createDatabase("county"), max: 4 });
    pool.on("error", () => undefined);
    const generateS = await generatePostgres(pool);
    process.stderr.write(`subsidy bench: ${rows} meter-days generated in PostgreSQL in ${generateS.toFixed(1)} s\n`);
    const scanT0 = performance.now();
    await pool.query("SELECT count(*), sum(energy_wh) FROM ledger_meter_days");
    const scanS = (performance.now() - scanT0) / 1000;
    // Flags stay in SQLite: only where the daily usage lives is compared.
    const flagsDb = new Database(join(pgDir, "flags.db"));
    const run = await settleCounty(pgDir, "postgres", postgresUsageSource(pool), openMeterFlagStore(flagsDb));
    process.stderr.write(`subsidy bench (PostgreSQL): ${run.lines} lines, ¥${(run.totalFen / 100).toFixed(2)} payable\n`);
    if (sqliteRun !== undefined && run.totalFen !== sqliteRun.totalFen) throw new Error(`PostgreSQL settled ${run.totalFen} fen, SQLite ${sqliteRun.totalFen} fen`);
    reportRun("postgres", run, scanS, `the same county from PostgreSQL ${server.binDir.split("/").at(-2) ?? ""} (pg, chunks of 500 meters per query)`);
    if (sqliteRun !== undefined) {
      report({ bench: "subsidy-postgres-vs-sqlite", value: Number((run.settleS / sqliteRun.settleS).toFixed(2)), unit: "ratio", better: "lower", note: "county settlement time, PostgreSQL / SQLite, same lines to the fen" });
    }
    flagsDb.close();
    await pool.end();
  } finally {
    await server.stop();
    rmSync(pgDir, { recursive: true, force: true });
  }
}
