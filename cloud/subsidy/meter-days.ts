// Each meter's daily usage, kept by the ledger beside its charges so that subsidy settlement reads one row per meter
// per day instead of every reading (settlement cost grows with meters × days, never with readings). This module owns
// the row (MeterDay), the pure mapping from one chargesFor step to per-day deltas, the table, and the upsert
// the ledger calls INSIDE its charge transaction — so the daily usage can never diverge from what was charged.
//
// What a row means. A day's row counts the meter's APPLIED readings taken that local day (Asia/Shanghai): their
// energy, and the money the charge core posted for them. Energy is attributed like the charge (charges.ts: to the
// reading that closes the interval), so an interval spanning midnight — a meter that was silent for a while — lands
// whole on the day of the reading that ends it. nightWh is the part of energyWh attributed to readings taken
// 22:00–06:00 local. The "register" columns are the ledger's continuous energy count (charges.ts: the register
// mapped across meter replacements and rollovers, total = startTotalWh + registerWh − startRegisterWh), so a meter
// swap is invisible here; firstRegisterWh is the count at the start of the day's first interval (the previous
// applied reading) and lastRegisterWh at the day's last reading, so energyWh = lastRegisterWh − firstRegisterWh on
// every row. A reading that moved no fen (a few Wh) still counts its energy and its reading; the fen it did not post
// is posted by a later reading (round(price × E) catches up), and counted on that reading's day. Because every
// applied reading is a row entry, a day with no row is a day the meter was not read (or not installed).
//
// Why the inputs and not only the postings: a posting carries neither the register nor the energy of readings that
// posted nothing, so from postings alone the days would depend on how readings were batched. From the inputs, the
// state before and the result, the rows are exactly the same however the readings are batched (tested).
//
// Replays are the caller's problem: deltas ADD to the row, so applying the same step twice counts it twice. The
// ledger applies a step's deltas in the transaction that stores that step's state (compare-and-set on its revision),
// so a step is applied once; a replayed reading is ignored by chargesFor (stale-seq) and adds nothing.

import type Database from "better-sqlite3";
import type { ChargeResult, MeterChargeState } from "../ledger/charges.js";
import { isMeterEvent, type ChargeInput } from "../ledger/charge-inputs.js";
import { localDayOf, localHourOf } from "./local-day.js";

export interface MeterDay {
  readonly meterId: string;
  /** "YYYY-MM-DD", Asia/Shanghai. */
  readonly day: string;
  readonly energyWh: number;
  /** What the household was charged for energyWh (Σ posting amountFen). */
  readonly chargedFen: number;
  /** Energy attributed to readings taken 22:00–06:00 local. */
  readonly nightWh: number;
  /** Applied readings that day (including those that moved no fen). */
  readonly readings: number;
  readonly firstAtMs: number;
  readonly lastAtMs: number;
  /** Continuous energy count at the start of the day's first interval. */
  readonly firstRegisterWh: number;
  /** Continuous energy count at the day's last applied reading. */
  readonly lastRegisterWh: number;
}

/** A delta has the row's shape; applying it adds energy, money and counts and widens the first/last edges. */
export type MeterDayDelta = MeterDay;

export const NIGHT_FROM_HOUR = 22;
export const NIGHT_TO_HOUR = 6;

export const isNightReading = (atMs: number): boolean => {
  const hour = localHourOf(atMs);
  return hour >= NIGHT_FROM_HOUR || hour < NIGHT_TO_HOUR;
};

/** One chargesFor step of one meter, as the ledger's caller has it (prepaid/service.ts planCharge). */
export interface MeterChargeStep {
  readonly meterId: string;
  /** The meter's stored state before the step (undefined for a meter not charged before). */
  readonly before: MeterChargeState | undefined;
  /** The inputs given to chargesFor, in order (other meters' inputs are skipped). */
  readonly inputs: readonly ChargeInput[];
  readonly result: ChargeResult;
}

/** Per-day deltas of one meter's charge step. Pure. */
export function meterDayDeltas(step: MeterChargeStep): MeterDayDelta[] {
  const { meterId, before, result } = step;
  // Held and ignored inputs changed nothing; count them by identity (the same object may be passed twice).
  const notApplied = new Map<ChargeInput, number>();
  for (const x of [...result.held, ...result.ignored]) notApplied.set(x.input, (notApplied.get(x.input) ?? 0) + 1);
  const after = result.state.meters[meterId];
  const fenBySeq = new Map<number, number>();
  for (const p of result.postings) if (p.meterId === meterId) fenBySeq.set(p.registerSeq, (fenBySeq.get(p.registerSeq) ?? 0) + p.amountFen);
  let epochIndex = before === undefined ? -1 : before.epochs.length - 1;
  let countWh = before?.attributedWh ?? 0;
  const days = new Map<string, { -readonly [K in keyof MeterDay]: MeterDay[K] }>();
  for (const input of step.inputs) {
    if (input.meterId !== meterId) continue;
    const skipped = notApplied.get(input) ?? 0;
    if (skipped > 0) {
      notApplied.set(input, skipped - 1);
      continue;
    }
    if (isMeterEvent(input)) {
      epochIndex = input.type === "meter-installed" ? 0 : epochIndex + 1;
      continue;
    }
    const epoch = after?.epochs[epochIndex];
    if (epoch === undefined) throw new RangeError(`meterDayDeltas: ${meterId} has no epoch ${epochIndex} in the step's result`);
    const startWh = countWh;
    countWh = epoch.startTotalWh + (input.registerWh - epoch.startRegisterWh);
    const energyWh = countWh - startWh;
    const chargedFen = fenBySeq.get(input.registerSeq) ?? 0;
    const day = localDayOf(input.atMs);
    const night = isNightReading(input.atMs) ? energyWh : 0;
    const row = days.get(day);
    if (row === undefined) {
      days.set(day, { meterId, day, energyWh, chargedFen, nightWh: night, readings: 1, firstAtMs: input.atMs, lastAtMs: input.atMs, firstRegisterWh: startWh, lastRegisterWh: countWh });
    } else {
      row.energyWh += energyWh;
      row.chargedFen += chargedFen;
      row.nightWh += night;
      row.readings += 1;
      row.lastAtMs = input.atMs;
      row.lastRegisterWh = countWh;
    }
  }
  if (after !== undefined && countWh !== after.attributedWh) {
    throw new RangeError(`meterDayDeltas: ${meterId} counted ${countWh} Wh but the charge state says ${after.attributedWh} Wh; pass the step's own inputs and result`);
  }
  return [...days.values()];
}

/**
 * Deltas for the same meter and day folded into one, exactly as applying them one after the other would fold them
 * into the row (sums add; the first edge comes from the earliest firstAtMs, the last from the latest lastAtMs, a tie
 * going to the later delta). For a store that cannot touch one row twice in one statement (PostgreSQL's upsert).
 */
export function mergeMeterDayDeltas(deltas: readonly MeterDayDelta[]): MeterDayDelta[] {
  const merged = new Map<string, MeterDayDelta>();
  for (const d of deltas) {
    const key = `${d.meterId}\u0000${d.day}`;
    const m = merged.get(key);
    merged.set(
      key,
      m === undefined
        ? d
        : {
            meterId: d.meterId,
            day: d.day,
            energyWh: m.energyWh + d.energyWh,
            chargedFen: m.chargedFen + d.chargedFen,
            nightWh: m.nightWh + d.nightWh,
            readings: m.readings + d.readings,
            firstAtMs: Math.min(m.firstAtMs, d.firstAtMs),
            firstRegisterWh: d.firstAtMs < m.firstAtMs ? d.firstRegisterWh : m.firstRegisterWh,
            lastAtMs: Math.max(m.lastAtMs, d.lastAtMs),
            lastRegisterWh: d.lastAtMs >= m.lastAtMs ? d.lastRegisterWh : m.lastRegisterWh,
          },
    );
  }
  return [...merged.values()];
}

export const METER_DAYS_TABLE = "ledger_meter_days";

/** The table, for the ledger's migrations (SQLite). Integers only (STRICT refuses a REAL). */
export const METER_DAYS_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS ledger_meter_days (
  meter_id          TEXT    NOT NULL,
  day               TEXT    NOT NULL CHECK (length(day) = 10),
  energy_wh         INTEGER NOT NULL CHECK (energy_wh >= 0),
  charged_fen       INTEGER NOT NULL CHECK (charged_fen >= 0),
  night_wh          INTEGER NOT NULL CHECK (night_wh >= 0 AND night_wh <= energy_wh),
  readings          INTEGER NOT NULL CHECK (readings >= 0),
  first_at_ms       INTEGER NOT NULL,
  last_at_ms        INTEGER NOT NULL,
  first_register_wh INTEGER NOT NULL,
  last_register_wh  INTEGER NOT NULL,
  PRIMARY KEY (meter_id, day)
) STRICT, WITHOUT ROWID;
`;

const UPSERT = `INSERT INTO ledger_meter_days
  (meter_id, day, energy_wh, charged_fen, night_wh, readings, first_at_ms, last_at_ms, first_register_wh, last_register_wh)
  VALUES (@meterId, @day, @energyWh, @chargedFen, @nightWh, @readings, @firstAtMs, @lastAtMs, @firstRegisterWh, @lastRegisterWh)
  ON CONFLICT (meter_id, day) DO UPDATE SET
    energy_wh = energy_wh + excluded.energy_wh,
    charged_fen = charged_fen + excluded.charged_fen,
    night_wh = night_wh + excluded.night_wh,
    readings = readings + excluded.readings,
    first_register_wh = CASE WHEN excluded.first_at_ms < first_at_ms THEN excluded.first_register_wh ELSE first_register_wh END,
    first_at_ms = min(first_at_ms, excluded.first_at_ms),
    last_register_wh = CASE WHEN excluded.last_at_ms >= last_at_ms THEN excluded.last_register_wh ELSE last_register_wh END,
    last_at_ms = max(last_at_ms, excluded.last_at_ms)`;

const statements = new WeakMap<Database.Database, Database.Statement>();

/**
 * Add the deltas to their rows. Synchronous and transaction-free on purpose: the ledger calls it inside the
 * transaction that inserts the postings, so both commit or neither does.
 */
export function applyMeterDayDeltas(db: Database.Database, deltas: readonly MeterDayDelta[]): void {
  let upsert = statements.get(db);
  if (upsert === undefined) {
    upsert = db.prepare(UPSERT);
    statements.set(db, upsert);
  }
  for (const d of deltas) upsert.run(d);
}
