// One contract for the UsageSource port (cloud/subsidy/usage-source.ts), run against every implementation: SQLite
// (a real file) and PostgreSQL (a throwaway server from test/harness/postgres.ts). Both must cut a window into the
// same runs, report the counts at its edges, keep the caller's meter order across chunks, and refuse nothing valid.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { applyMeterDayDeltas, METER_DAYS_SCHEMA_SQL, type MeterDay } from "../../cloud/subsidy/meter-days.js";
import { applyMeterDayDeltasPostgres, postgresUsageSource } from "../../cloud/subsidy/postgres-usage-source.js";
import { sqliteUsageSource, type MeterUsage, type UsageSource } from "../../cloud/subsidy/usage-source.js";
import { migratePostgres } from "../../cloud/ledger/store/postgres-migrations.js";

interface Opened {
  readonly source: UsageSource;
  write(rows: readonly MeterDay[]): Promise<void>;
  close(): Promise<void>;
}

const row = (meterId: string, day: string, energyWh: number, countWh: number, nightWh = 0): MeterDay => ({
  meterId, day, energyWh, chargedFen: Math.round(energyWh / 20), nightWh, readings: 4, firstAtMs: Date.parse(`${day}T00:00:00+08:00`), lastAtMs: Date.parse(`${day}T18:00:00+08:00`), firstRegisterWh: countWh - energyWh, lastRegisterWh: countWh,
});

async function collect(source: UsageSource, ids: readonly string[], from: string, to: string, boundaries: readonly string[]): Promise<MeterUsage[]> {
  const out: MeterUsage[] = [];
  for await (const u of source.usageOf(ids, from, to, boundaries)) out.push(u);
  return out;
}

function usageSourceContract(name: string, open: () => Promise<Opened>): void {
  describe(`UsageSource on ${name}`, () => {
    let opened: Opened;
    beforeAll(async () => {
      opened = await open();
      await opened.write([
        row("m1", "2026-04-30", 5_000, 5_000),
        row("m1", "2026-05-02", 10_000, 15_000, 4_000),
        row("m1", "2026-05-03", 20_000, 35_000),
        row("m1", "2026-05-05", 1_000, 36_000),
        row("m1", "2026-05-07", 9_000, 45_000),
        ...Array.from({ length: 501 }, (_, i) => row(`c${String(i).padStart(3, "0")}`, "2026-05-04", i, i)),
      ]);
    });
    afterAll(() => opened.close());

    it("sums a meter's days into runs cut at the boundaries, with the counts at the window's edges", async () => {
      expect(await collect(opened.source, ["m1"], "2026-05-01", "2026-05-06", ["2026-05-03", "2026-05-06", "2026-06-01"])).toEqual([
        {
          meterId: "m1",
          runs: [
            { fromDay: "2026-05-01", toDay: "2026-05-02", firstReadDay: "2026-05-02", daysRead: 1, energyWh: 10_000, chargedFen: 500, nightWh: 4_000 },
            { fromDay: "2026-05-03", toDay: "2026-05-05", firstReadDay: "2026-05-03", daysRead: 2, energyWh: 21_000, chargedFen: 1_050, nightWh: 0 },
          ],
          countBeforeWh: 5_000,
          countAtEndWh: 36_000,
        },
      ]);
    });

    it("yields a meter with no rows, with no runs and no counts", async () => {
      expect(await collect(opened.source, ["nobody"], "2026-05-01", "2026-05-06", [])).toEqual([{ meterId: "nobody", runs: [] }]);
    });

    it("carries the count from before a window in which the meter was not read", async () => {
      expect(await collect(opened.source, ["m1"], "2026-05-06", "2026-05-06", [])).toEqual([{ meterId: "m1", runs: [], countBeforeWh: 36_000, countAtEndWh: 36_000 }]);
    });

    it("adds a second delta for the same meter and day to its row, widening its edges", async () => {
      await opened.write([row("m2", "2026-05-02", 1_000, 1_000), row("m2", "2026-05-02", 2_000, 3_000)]);
      expect(await collect(opened.source, ["m2"], "2026-05-02", "2026-05-02", [])).toMatchObject([{ runs: [{ daysRead: 1, energyWh: 3_000, chargedFen: 150 }], countAtEndWh: 3_000 }]);
    });

    it("keeps the caller's order across chunks of meters", async () => {
      const ids = Array.from({ length: 501 }, (_, i) => `c${String(500 - i).padStart(3, "0")}`);
      const usage = await collect(opened.source, ids, "2026-05-01", "2026-05-31", []);
      expect(usage.map((u) => u.meterId)).toEqual(ids);
      expect(usage.map((u) => u.runs[0]?.energyWh)).toEqual(ids.map((id) => Number(id.slice(1))));
    });
  });
}

usageSourceContract("SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "subsidy-usage-"));
  const db = new Database(join(dir, "ledger.db"));
  db.exec(METER_DAYS_SCHEMA_SQL);
  return Promise.resolve({
    source: sqliteUsageSource(db),
    write: (rows) => Promise.resolve(applyMeterDayDeltas(db, rows)),
    close: () => {
      db.close();
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  });
});

let server: PostgresServer | undefined;
afterAll(async () => {
  await server?.stop();
});

usageSourceContract("PostgreSQL", async () => {
  server = await startPostgres();
  const pool = new pg.Pool({ connectionString: await server.createDatabase("usage"), max: 4 });
  // An idle connection the server drops while it shuts down is reported here (as openPostgresLedger does).
  pool.on("error", () => undefined);
  // The table as the PostgreSQL ledger creates it (its migration 4).
  const client = await pool.connect();
  try {
    await migratePostgres(client, Date.now());
  } finally {
    client.release();
  }
  return {
    source: postgresUsageSource(pool),
    write: (rows) => applyMeterDayDeltasPostgres(pool, rows),
    close: () => pool.end(),
  };
});
