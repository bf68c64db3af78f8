// The ledger's per-day usage (cloud/subsidy/meter-days.ts): deltas from the charge core's real postings, the local
// day boundary, energy that posted nothing, meter swaps, and the upsert into a real SQLite file.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chargesFor, emptyChargeState, type ChargePosting, type ChargeState } from "../../cloud/ledger/charges.js";
import type { ChargeInput } from "../../cloud/ledger/charge-inputs.js";
import type { Tariff } from "../../cloud/ledger/tariff.js";
import { dayStartMs } from "../../cloud/subsidy/local-day.js";
import { applyMeterDayDeltas, meterDayDeltas, mergeMeterDayDeltas, METER_DAYS_SCHEMA_SQL, type MeterDay } from "../../cloud/subsidy/meter-days.js";
import { sqliteUsageSource } from "../../cloud/subsidy/usage-source.js";

const FLAT: Tariff = { tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } };
const M = "pump-1";
/** Local (Asia/Shanghai) wall-clock time → epoch ms. */
const sh = (local: string): number => Date.parse(`${local}+08:00`);

let dir: string;
let db: Database.Database;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "subsidy-days-"));
  db = new Database(join(dir, "ledger.db"));
  db.exec(METER_DAYS_SCHEMA_SQL);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Run the charge core over inputs in batches, and the deltas of each batch from the state before it. */
function chargeInBatches(batches: readonly (readonly ChargeInput[])[]): { postings: ChargePosting[]; deltas: MeterDay[][]; state: ChargeState } {
  let state = emptyChargeState();
  const postings: ChargePosting[] = [];
  const deltas: MeterDay[][] = [];
  for (const batch of batches) {
    const before = state.meters[M];
    const result = chargesFor(state, batch, [FLAT]);
    postings.push(...result.postings);
    deltas.push(meterDayDeltas({ meterId: M, before, inputs: batch, result }));
    state = result.state;
  }
  return { postings, deltas, state };
}

const installed: ChargeInput = { type: "meter-installed", meterId: M, atMs: sh("2026-05-01T00:00:00"), initialWh: 1_000_000 };
const reading = (seq: number, local: string, registerWh: number): ChargeInput => ({ meterId: M, registerSeq: seq, atMs: sh(local), registerWh });

const rows = (): MeterDay[] =>
  db
    .prepare<[], Record<string, number | string>>("SELECT * FROM ledger_meter_days ORDER BY meter_id, day")
    .all()
    .map((r) => ({
      meterId: r.meter_id as string,
      day: r.day as string,
      energyWh: r.energy_wh as number,
      chargedFen: r.charged_fen as number,
      nightWh: r.night_wh as number,
      readings: r.readings as number,
      firstAtMs: r.first_at_ms as number,
      lastAtMs: r.last_at_ms as number,
      firstRegisterWh: r.first_register_wh as number,
      lastRegisterWh: r.last_register_wh as number,
    }));

describe("meterDayDeltas", () => {
  it("puts a posting at 23:59:59.999 and one at 00:00 local on different days", () => {
    const { deltas } = chargeInBatches([[installed, reading(1, "2026-05-10T23:59:59.999", 1_010_000), reading(2, "2026-05-11T00:00:00.000", 1_030_000)]]);
    expect(deltas[0]?.map((d) => [d.day, d.energyWh])).toEqual([
      ["2026-05-10", 10_000],
      ["2026-05-11", 20_000],
    ]);
  });

  it("adds up to the energy and the money the charge core posted, day by day", () => {
    const { postings, deltas, state } = chargeInBatches([
      [installed, reading(1, "2026-05-02T08:00:00", 1_012_345), reading(2, "2026-05-02T12:00:00", 1_020_000)],
      [reading(3, "2026-05-03T09:00:00", 1_055_555), reading(4, "2026-05-04T07:00:00", 1_100_001)],
    ]);
    const all = deltas.flat();
    expect(all.reduce((s, d) => s + d.energyWh, 0)).toBe(state.meters[M]?.attributedWh);
    expect(all.reduce((s, d) => s + d.chargedFen, 0)).toBe(postings.reduce((s, p) => s + p.amountFen, 0));
    for (const d of all) expect(d.lastRegisterWh - d.firstRegisterWh).toBe(d.energyWh);
  });

  it("counts the energy and the reading of a reading that posted nothing on that reading's own day", () => {
    // 10 Wh at ¥0.5283/kWh is 0.53 fen: rounds to 1 fen; 5 Wh more leaves round(price × E) at 1 fen — no posting.
    const { postings, deltas } = chargeInBatches([[installed, reading(1, "2026-05-02T08:00:00", 1_000_010)], [reading(2, "2026-05-02T23:30:00", 1_000_015)], [reading(3, "2026-05-03T08:00:00", 1_002_000)]]);
    expect(postings.map((p) => p.registerSeq)).toEqual([1, 3]);
    expect(deltas.flat().map((d) => [d.day, d.energyWh, d.nightWh, d.readings, d.chargedFen])).toEqual([
      ["2026-05-02", 10, 0, 1, 1],
      ["2026-05-02", 5, 5, 1, 0],
      ["2026-05-03", 1_985, 0, 1, 105],
    ]);
  });

  it("leaves out readings the charge core held or ignored", () => {
    const { deltas } = chargeInBatches([[installed, reading(1, "2026-05-02T08:00:00", 1_050_000), reading(1, "2026-05-02T09:00:00", 1_060_000), reading(2, "2026-05-02T10:00:00", 1_040_000)]]);
    expect(deltas[0]).toMatchObject([{ day: "2026-05-02", energyWh: 50_000, readings: 1 }]);
  });

  it("counts energy of readings between 22:00 and 06:00 local as night energy", () => {
    const { deltas } = chargeInBatches([[installed, reading(1, "2026-05-02T05:59:00", 1_004_000), reading(2, "2026-05-02T06:00:00", 1_007_000), reading(3, "2026-05-02T22:00:00", 1_009_000)]]);
    expect(deltas[0]).toMatchObject([{ day: "2026-05-02", energyWh: 9_000, nightWh: 6_000, readings: 3 }]);
  });

  it("keeps counting across a meter swap: the new register starts low but the day's energy continues", () => {
    const { deltas } = chargeInBatches([
      [installed, reading(1, "2026-05-02T08:00:00", 1_050_000)],
      [{ type: "meter-replaced", meterId: M, atMs: sh("2026-05-02T12:00:00"), oldFinalWh: 1_060_000, newInitialWh: 0 }, reading(2, "2026-05-02T18:00:00", 30_000)],
    ]);
    expect(deltas.flat().map((d) => [d.energyWh, d.firstRegisterWh, d.lastRegisterWh])).toEqual([
      [50_000, 0, 50_000],
      [40_000, 50_000, 90_000],
    ]);
  });

  it("refuses inputs that are not the step's own (the counts would not match the charge state)", () => {
    const inputs = [installed, reading(1, "2026-05-02T08:00:00", 1_050_000)];
    const result = chargesFor(emptyChargeState(), inputs, [FLAT]);
    expect(() => meterDayDeltas({ meterId: M, before: undefined, inputs: inputs.slice(1), result })).toThrow(RangeError);
  });
});

describe("applyMeterDayDeltas", () => {
  it("gives the same rows whether a meter's readings arrive in one batch or in many", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 5_000_000 }), fc.integer({ min: 0, max: 40_000 })), { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 7 }), (steps, split) => {
        let atMs = sh("2026-05-01T01:00:00");
        let registerWh = 1_000_000;
        const inputs = steps.map(([advanceMs, energyWh], i) => {
          atMs += advanceMs * 60;
          registerWh += energyWh;
          return reading(i + 1, new Date(atMs + 8 * 3_600_000).toISOString().slice(0, 23), registerWh);
        });
        db.exec("DELETE FROM ledger_meter_days");
        for (const batch of chargeInBatches([[installed, ...inputs]]).deltas) applyMeterDayDeltas(db, batch);
        const whole = rows();
        db.exec("DELETE FROM ledger_meter_days");
        const batches: ChargeInput[][] = [[installed]];
        inputs.forEach((r, i) => (i % split === 0 ? batches.push([r]) : batches.at(-1)?.push(r)));
        for (const batch of chargeInBatches(batches).deltas) applyMeterDayDeltas(db, batch);
        expect(rows()).toEqual(whole);
      }),
      { numRuns: 60 },
    );
  });

  it("folds repeated deltas of one meter and day exactly as applying them one by one does", () => {
    const { deltas } = chargeInBatches([
      [installed, reading(1, "2026-05-02T08:00:00", 1_050_000)],
      [reading(2, "2026-05-02T09:00:00", 1_060_000), reading(3, "2026-05-03T09:00:00", 1_061_000)],
      [reading(4, "2026-05-02T07:00:00", 1_070_000)],
    ]);
    for (const batch of deltas) applyMeterDayDeltas(db, batch);
    const oneByOne = rows();
    db.exec("DELETE FROM ledger_meter_days");
    applyMeterDayDeltas(db, mergeMeterDayDeltas(deltas.flat()));
    expect(rows()).toEqual(oneByOne);
  });

  it("counts a replayed delta twice, which is why the ledger applies only postings it has just inserted", () => {
    const { deltas } = chargeInBatches([[installed, reading(1, "2026-05-02T08:00:00", 1_050_000)]]);
    applyMeterDayDeltas(db, deltas[0] ?? []);
    applyMeterDayDeltas(db, deltas[0] ?? []);
    expect(rows()[0]?.energyWh).toBe(100_000);
  });

  it("refuses a fractional energy: the table is STRICT", () => {
    expect(() => applyMeterDayDeltas(db, [{ meterId: M, day: "2026-05-02", energyWh: 1.5, chargedFen: 1, nightWh: 0, readings: 1, firstAtMs: 0, lastAtMs: 0, firstRegisterWh: 0, lastRegisterWh: 1 }])).toThrow(/cannot store REAL/);
  });

  it("is read back by the usage source as runs cut at the boundaries given", async () => {
    const { deltas } = chargeInBatches([[installed, reading(1, "2026-05-02T08:00:00", 1_050_000), reading(2, "2026-05-03T22:30:00", 1_070_000), reading(3, "2026-05-05T08:00:00", 1_071_000)]]);
    applyMeterDayDeltas(db, deltas[0] ?? []);
    const usage = [];
    for await (const u of sqliteUsageSource(db).usageOf([M], "2026-05-01", "2026-05-06", ["2026-05-03", "2026-05-05", "2026-06-01"])) usage.push(u);
    expect(usage[0]?.runs).toEqual([
      { fromDay: "2026-05-01", toDay: "2026-05-02", firstReadDay: "2026-05-02", daysRead: 1, energyWh: 50_000, chargedFen: 2_642, nightWh: 0 },
      { fromDay: "2026-05-03", toDay: "2026-05-04", firstReadDay: "2026-05-03", daysRead: 1, energyWh: 20_000, chargedFen: 1_056, nightWh: 20_000 },
      { fromDay: "2026-05-05", toDay: "2026-05-06", firstReadDay: "2026-05-05", daysRead: 1, energyWh: 1_000, chargedFen: 53, nightWh: 0 },
    ]);
  });

  it("is read back by the usage source with the counts at the window's edges", async () => {
    const { deltas } = chargeInBatches([[installed, reading(1, "2026-04-30T20:00:00", 1_010_000), reading(2, "2026-05-02T08:00:00", 1_050_000), reading(3, "2026-05-03T08:00:00", 1_070_000), reading(4, "2026-05-04T08:00:00", 1_071_000)]]);
    applyMeterDayDeltas(db, deltas[0] ?? []);
    const usage = [];
    for await (const u of sqliteUsageSource(db).usageOf([M, "pump-none"], "2026-05-01", "2026-05-03", [])) usage.push(u);
    expect(usage.map((u) => ({ id: u.meterId, runs: u.runs.map((r) => [r.fromDay, r.toDay, r.firstReadDay, r.daysRead, r.energyWh]), before: u.countBeforeWh, end: u.countAtEndWh }))).toEqual([
      { id: M, runs: [["2026-05-01", "2026-05-03", "2026-05-02", 2, 60_000]], before: 10_000, end: 70_000 },
      { id: "pump-none", runs: [], before: undefined, end: undefined },
    ]);
    expect(dayStartMs("2026-05-02")).toBe(sh("2026-05-02T00:00:00"));
  });
});
