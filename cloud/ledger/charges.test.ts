import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { energyCostFen } from "../../protocols/units.js";
import type { ChargeInput, MeterEvent, MeterReading } from "./charge-inputs.js";
import { chargedFen, chargesFor, emptyChargeState, type ChargePosting, type ChargeState } from "./charges.js";
import { priceAt, type Tariff, type TouPeriod } from "./tariff.js";

/** Shanghai local time → epoch ms. */
const sh = (local: string): number => Date.parse(`${local}+08:00`);
const HOUR = 3_600_000;
const METER = "pump-3";
const T0 = sh("2026-08-10T06:00:00");
const SEPT = sh("2026-09-01T00:00:00");

const flat = (price: number, version = 1, effectiveFrom = 0): Tariff => ({ tariffId: "t1", version, effectiveFrom, prices: { kind: "flat", priceCentiFenPerKwh: price } });
const TOU_PERIODS: TouPeriod[] = [
  { rate: "valley", from: "23:00", to: "07:00", priceCentiFenPerKwh: 2600 },
  { rate: "flat", from: "07:00", to: "10:00", priceCentiFenPerKwh: 5283 },
  { rate: "peak", from: "10:00", to: "12:00", priceCentiFenPerKwh: 8100 },
  { rate: "sharp", from: "12:00", to: "14:00", priceCentiFenPerKwh: 9700 },
  { rate: "flat", from: "14:00", to: "18:00", priceCentiFenPerKwh: 5283 },
  { rate: "peak", from: "18:00", to: "23:00", priceCentiFenPerKwh: 8100 },
];
const TOU: Tariff = { tariffId: "t1", version: 1, effectiveFrom: 0, prices: { kind: "time-of-use", periods: TOU_PERIODS } };
const FLAT = [flat(5283)];

const installed = (initialWh = 0, atMs = T0, meterId = METER): MeterEvent => ({ type: "meter-installed", meterId, atMs, initialWh });
const reading = (registerSeq: number, registerWh: number, atMs = T0 + registerSeq * HOUR, more: { epoch?: number; meterId?: string } = {}): MeterReading => ({
  meterId: more.meterId ?? METER,
  registerSeq,
  atMs,
  registerWh,
  ...(more.epoch === undefined ? {} : { epoch: more.epoch }),
});

const total = (postings: readonly ChargePosting[]): number => postings.reduce((s, p) => s + p.amountFen, 0);

function meterOf(state: ChargeState, id = METER) {
  const m = state.meters[id];
  if (m === undefined) throw new Error(`no meter ${id}`);
  return m;
}

describe("charges from the cumulative register", () => {
  it("charges ¥0.5283/kWh × 1234.567 kWh as 65222 fen (652.2217461 yuan, rounded to the fen)", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_234_567)], FLAT);
    expect(r.postings).toEqual([
      {
        kind: "charge",
        idempotencyKey: "charge/pump-3/1",
        meterId: METER,
        registerSeq: 1,
        atMs: T0 + HOUR,
        epoch: 0,
        segmentKey: "t1@v1/flat",
        priceCentiFenPerKwh: 5283,
        energyWh: 1_234_567,
        amountFen: 65222,
        segmentEnergyWh: 1_234_567,
        segmentChargedFen: 65222,
      },
    ]);
  });

  it("posts the new total minus what was charged: 2000 kWh total is 105660 fen, so the second posting is 40438", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_234_567), reading(2, 2_000_000)], FLAT);
    expect(r.postings.map((p) => p.amountFen)).toEqual([65222, 40438]);
    expect(chargedFen(meterOf(r.state))).toBe(105_660);
  });

  it("charges nothing before the installation register: the baseline is the meter-installed event", () => {
    const r = chargesFor(emptyChargeState(), [installed(500_000), reading(1, 600_000)], FLAT);
    expect(r.postings.map((p) => [p.energyWh, p.amountFen])).toEqual([[100_000, 5283]]);
  });

  it("does not lose tiny readings to rounding: ten 1 Wh readings at 5283 charge 1 fen on the tenth", () => {
    const readings = Array.from({ length: 10 }, (_, i) => reading(i + 1, i + 1));
    const r = chargesFor(emptyChargeState(), [installed(0), ...readings], FLAT);
    expect(r.postings.map((p) => [p.registerSeq, p.amountFen])).toEqual([[10, 1]]);
  });

  it("charges a duplicated reading once", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_234_567), reading(1, 1_234_567)], FLAT);
    expect(total(r.postings)).toBe(65222);
    expect(r.ignored).toEqual([{ input: reading(1, 1_234_567), reason: "stale-seq" }]);
  });

  it("loses nothing when a reading is lost: the next one covers its energy", () => {
    const all = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_234_567), reading(2, 2_000_000)], FLAT);
    const lossy = chargesFor(emptyChargeState(), [installed(0), reading(2, 2_000_000)], FLAT);
    expect(total(lossy.postings)).toBe(total(all.postings));
  });

  it("ignores an older reading arriving after a newer one, changing nothing", () => {
    const first = chargesFor(emptyChargeState(), [installed(0), reading(2, 2_000_000)], FLAT);
    const late = chargesFor(first.state, [reading(1, 1_234_567)], FLAT);
    expect(late.postings).toEqual([]);
    expect(late.state).toEqual(first.state);
    expect(late.ignored.map((i) => i.reason)).toEqual(["stale-seq"]);
  });

  it("changes nothing when the same batch is replayed", () => {
    const batch = [installed(0), reading(1, 1_234_567), reading(2, 2_000_000)];
    const once = chargesFor(emptyChargeState(), batch, FLAT);
    const twice = chargesFor(once.state, batch, FLAT);
    expect(twice.postings).toEqual([]);
    expect(twice.held).toEqual([]);
    expect(twice.state).toEqual(once.state);
  });

  it("derives the idempotency key from meter id and registerSeq, so a replay is a no-op in the store too", () => {
    const a = chargesFor(emptyChargeState(), [installed(0), reading(7, 10_000)], FLAT);
    const b = chargesFor(emptyChargeState(), [installed(0), reading(7, 10_000)], FLAT);
    expect(a.postings[0]?.idempotencyKey).toBe("charge/pump-3/7");
    expect(b.postings).toEqual(a.postings);
  });

  it("posts nothing for a reading that adds no whole fen, but still advances the chain", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 5)], FLAT);
    expect(r.postings).toEqual([]);
    expect(meterOf(r.state).lastRegisterSeq).toBe(1);
  });

  it("keeps meters apart in one batch", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), installed(0, T0, "pump-4"), reading(1, 100_000), reading(1, 200_000, T0 + HOUR, { meterId: "pump-4" })], FLAT);
    expect(r.postings.map((p) => [p.meterId, p.amountFen])).toEqual([[METER, 5283], ["pump-4", 10566]]);
  });

  it("keeps state as plain JSON: a serialised state continues exactly like the live one", () => {
    const first = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_234_567)], FLAT);
    const revived = JSON.parse(JSON.stringify(first.state)) as ChargeState;
    expect(chargesFor(revived, [reading(2, 2_000_000)], FLAT)).toEqual(chargesFor(first.state, [reading(2, 2_000_000)], FLAT));
  });

  it("does not modify the state it is given", () => {
    const first = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000)], FLAT);
    const snapshot = structuredClone(first.state);
    chargesFor(first.state, [reading(2, 5_000), { type: "rollover", meterId: METER, atMs: T0 + 3 * HOUR, wrapWh: 10_000 }], FLAT);
    expect(first.state).toEqual(snapshot);
  });

  it("treats a meter id spelled like an Object property as an ordinary key", () => {
    const r = chargesFor(emptyChargeState(), [reading(1, 10, T0, { meterId: "constructor" }), installed(0, T0, "constructor"), reading(2, 100_000, T0 + HOUR, { meterId: "constructor" })], FLAT);
    expect(r.held.map((h) => h.reason)).toEqual(["unknown-meter"]);
    expect(r.postings.map((p) => p.amountFen)).toEqual([5283]);
  });
});

describe("tariff segments", () => {
  it("attributes energy across a period boundary to the period of the later reading", () => {
    // 09:30 flat: 10 kWh × ¥0.5283 = 528.3 → 528 fen. 10:15 peak: the 15 kWh since 09:30 × ¥0.81 = 1215 fen.
    const r = chargesFor(emptyChargeState(), [installed(0, sh("2026-08-10T09:00:00")), reading(1, 10_000, sh("2026-08-10T09:30:00")), reading(2, 25_000, sh("2026-08-10T10:15:00"))], [TOU]);
    expect(r.postings.map((p) => [p.segmentKey, p.energyWh, p.amountFen])).toEqual([
      ["t1@v1/flat", 10_000, 528],
      ["t1@v1/peak", 15_000, 1215],
    ]);
  });

  it("rounds each segment on its own cumulative energy", () => {
    // flat: 0.6 kWh at 07:30 and 0.6 kWh more at 14:30 → round(5283 × 1200 / 10^5 = 63.396) = 63, not 32 + 32.
    const r = chargesFor(
      emptyChargeState(),
      [installed(0, sh("2026-08-10T07:00:00")), reading(1, 600, sh("2026-08-10T07:30:00")), reading(2, 1_200, sh("2026-08-10T10:30:00")), reading(3, 1_800, sh("2026-08-10T14:30:00"))],
      [TOU],
    );
    const m = meterOf(r.state);
    expect(m.segments["t1@v1/flat"]).toEqual({ priceCentiFenPerKwh: 5283, energyWh: 1_200, chargedFen: 63 });
    expect(m.segments["t1@v1/peak"]).toEqual({ priceCentiFenPerKwh: 8100, energyWh: 600, chargedFen: 49 });
    expect(total(r.postings)).toBe(63 + 49);
  });

  it("charges energy after a tariff version change at the new version, under its own segment", () => {
    // 100 kWh before 1 September at ¥0.5283 = 5283 fen; 50 kWh after at ¥0.56 = 2800 fen.
    const schedule = [flat(5283, 1, 0), flat(5600, 2, SEPT)];
    const r = chargesFor(emptyChargeState(), [installed(0, SEPT - 2 * HOUR), reading(1, 100_000, SEPT - HOUR), reading(2, 150_000, SEPT + HOUR)], schedule);
    expect(r.postings.map((p) => [p.segmentKey, p.amountFen])).toEqual([
      ["t1@v1/flat", 5283],
      ["t1@v2/flat", 2800],
    ]);
  });

  it("holds a reading with no tariff in force", () => {
    const r = chargesFor(emptyChargeState(), [installed(0, 0), reading(1, 100_000, SEPT - 1)], [flat(5600, 2, SEPT)]);
    expect(r.postings).toEqual([]);
    expect(r.held.map((h) => h.reason)).toEqual(["no-tariff"]);
    expect(meterOf(r.state).lastRegisterSeq).toBe(0);
  });

  it("holds a reading whose segment's price was changed after it was charged, instead of re-pricing history", () => {
    const first = chargesFor(emptyChargeState(), [installed(0), reading(1, 100_000)], FLAT);
    const r = chargesFor(first.state, [reading(2, 200_000)], [flat(6000)]);
    expect(r.held.map((h) => h.reason)).toEqual(["tariff-changed"]);
    expect(r.state).toEqual(first.state);
  });
});

describe("a register that goes backwards", () => {
  it("is held for review with no posting, and never a negative charge", () => {
    const first = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000_000)], FLAT);
    const r = chargesFor(first.state, [reading(2, 400_000)], FLAT);
    expect(r.postings).toEqual([]);
    expect(r.held).toEqual([{ input: reading(2, 400_000), reason: "register-backwards", detail: "register 400000 Wh is below 1000000 Wh in epoch 0 with no replacement or rollover event" }]);
    expect(r.state).toEqual(first.state);
  });

  it("leaves the chain where it was: a later reading above the last applied one charges from it", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000_000), reading(2, 400_000), reading(3, 1_100_000)], FLAT);
    expect(r.postings.map((p) => [p.registerSeq, p.energyWh])).toEqual([
      [1, 1_000_000],
      [3, 100_000],
    ]);
  });

  it("holds a malformed reading instead of throwing", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, Number.NaN), reading(2, 1.5), reading(0, 10)], FLAT);
    expect(r.held.map((h) => h.reason)).toEqual(["malformed", "malformed", "malformed"]);
  });

  it("holds a reading of a meter that was never installed", () => {
    expect(chargesFor(emptyChargeState(), [reading(1, 10)], FLAT).held.map((h) => h.reason)).toEqual(["unknown-meter"]);
  });
});

describe("meter replacement", () => {
  const replaced: MeterEvent = { type: "meter-replaced", meterId: METER, atMs: T0 + 2 * HOUR, oldFinalWh: 1_020_000, newInitialWh: 5_000 };

  it("continues E across the swap: 20 kWh on the old meter and 10 kWh on the new are charged at the next reading", () => {
    // E = 1 030 000 Wh: round(5283 × 1 030 000 / 10^5 = 54414.9) = 54415; 52830 was charged, so 1585 is posted.
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000_000), replaced, reading(2, 15_000, T0 + 3 * HOUR)], FLAT);
    expect(r.postings.map((p) => [p.registerSeq, p.epoch, p.energyWh, p.amountFen])).toEqual([
      [1, 0, 1_000_000, 52830],
      [2, 1, 30_000, 1585],
    ]);
    expect(meterOf(r.state).epochs.map((e) => [e.epoch, e.startRegisterWh, e.startTotalWh])).toEqual([
      [0, 0, 0],
      [1, 5_000, 1_020_000],
    ]);
  });

  it("holds the new meter's reading until the replacement is recorded, then charges it when resubmitted", () => {
    const early = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000_000), reading(2, 15_000, T0 + 3 * HOUR)], FLAT);
    expect(early.held.map((h) => h.reason)).toEqual(["register-backwards"]);
    const late = chargesFor(early.state, [replaced, reading(2, 15_000, T0 + 3 * HOUR)], FLAT);
    expect(late.postings.map((p) => p.energyWh)).toEqual([30_000]);
  });

  it("holds a reading tagged with an epoch the ledger does not know yet", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000_000), reading(2, 2_000_000, T0 + 3 * HOUR, { epoch: 1 })], FLAT);
    expect(r.held.map((h) => h.reason)).toEqual(["unknown-epoch"]);
    expect(r.postings).toHaveLength(1);
  });

  it("ignores an old meter's reading that arrives after the swap: the event's final register covers it", () => {
    const base = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000_000), replaced], FLAT);
    const tagged = chargesFor(base.state, [reading(2, 1_010_000, T0 + HOUR + 1, { epoch: 0 })], FLAT);
    const untagged = chargesFor(base.state, [reading(2, 1_010_000, T0 + HOUR + 1)], FLAT);
    expect(tagged.ignored.map((i) => i.reason)).toEqual(["stale-epoch"]);
    expect(untagged.ignored.map((i) => i.reason)).toEqual(["before-epoch-start"]);
    expect(tagged.state).toEqual(base.state);
    expect(untagged.state).toEqual(base.state);
  });

  it("holds a replacement whose old final register is below the last reading", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000_000), { ...replaced, oldFinalWh: 999_999 }], FLAT);
    expect(r.held.map((h) => h.reason)).toEqual(["event-below-last-register"]);
    expect(meterOf(r.state).epochs).toHaveLength(1);
  });

  it("holds a replacement dated before the last applied reading", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000_000), { ...replaced, atMs: T0 + HOUR - 1 }], FLAT);
    expect(r.held.map((h) => h.reason)).toEqual(["event-before-last-reading"]);
  });

  it("ignores a replayed replacement and holds a different one at the same instant", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), reading(1, 1_000_000), replaced, replaced, { ...replaced, newInitialWh: 6_000 }], FLAT);
    expect(r.ignored.map((i) => i.reason)).toEqual(["duplicate-event"]);
    expect(r.held.map((h) => h.reason)).toEqual(["conflicting-event"]);
    expect(meterOf(r.state).epochs).toHaveLength(2);
  });

  it("ignores a replayed installation and holds a second, different one", () => {
    const r = chargesFor(emptyChargeState(), [installed(0), installed(0), installed(10)], FLAT);
    expect(r.ignored.map((i) => i.reason)).toEqual(["duplicate-event"]);
    expect(r.held.map((h) => h.reason)).toEqual(["already-installed"]);
  });
});

describe("register rollover", () => {
  const rollover: MeterEvent = { type: "rollover", meterId: METER, atMs: T0 + 2 * HOUR, wrapWh: 10_000_000 };

  it("continues E across the wrap: 10 kWh before it and 5 kWh after are charged at the next reading", () => {
    const r = chargesFor(emptyChargeState(), [installed(9_000_000), reading(1, 9_990_000), rollover, reading(2, 5_000, T0 + 3 * HOUR)], FLAT);
    // E = 990 000 + 15 000 = 1 005 000 Wh: round(53094.15) = 53094, after round(52301.7) = 52302 → 792.
    expect(r.postings.map((p) => [p.energyWh, p.amountFen])).toEqual([
      [990_000, 52302],
      [15_000, 792],
    ]);
    expect(chargedFen(meterOf(r.state))).toBe(energyCostFen(5283, 1_005_000, "half-up").fen);
  });

  it("holds the wrapped reading until the rollover is declared, then charges it when resubmitted", () => {
    const first = chargesFor(emptyChargeState(), [installed(9_000_000), reading(1, 9_990_000), reading(2, 5_000, T0 + 3 * HOUR)], FLAT);
    expect(first.held.map((h) => h.reason)).toEqual(["register-backwards"]);
    const second = chargesFor(first.state, [rollover, reading(2, 5_000, T0 + 3 * HOUR)], FLAT);
    expect(second.postings.map((p) => p.energyWh)).toEqual([15_000]);
  });

  it("holds a rollover whose modulus is not above the last register", () => {
    const r = chargesFor(emptyChargeState(), [installed(9_000_000), reading(1, 9_990_000), { ...rollover, wrapWh: 9_990_000 }], FLAT);
    expect(r.held.map((h) => h.reason)).toEqual(["event-below-last-register"]);
  });
});

// ─── properties ───────────────────────────────────────────────────────────────────────────────────────────────────

const SCHEDULE: Tariff[] = [TOU, { tariffId: "t1", version: 2, effectiveFrom: T0 + 40 * HOUR, prices: { kind: "time-of-use", periods: TOU_PERIODS.map((p) => ({ ...p, priceCentiFenPerKwh: p.priceCentiFenPerKwh + 777 })) } }];

/** A true history of one meter: readings with rising seq, time and register (seq 1..n). */
const historyArb = fc
  .record({
    initialWh: fc.integer({ min: 0, max: 1_000_000_000 }),
    steps: fc.array(fc.record({ dWh: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 60_000 })), dMs: fc.integer({ min: 1, max: 3 * HOUR }) }), { minLength: 1, maxLength: 60 }),
  })
  .map(({ initialWh, steps }) => {
    let wh = initialWh;
    let at = T0;
    const readings = steps.map((s, i) => {
      wh += s.dWh;
      at += s.dMs;
      return reading(i + 1, wh, at);
    });
    return { initialWh, readings };
  });

/** What the network does to it: each reading delivered 0..3 times, in a shuffled order; the last one at least once. */
function deliveryArb(readings: readonly MeterReading[]) {
  return fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: readings.length, maxLength: readings.length }),
      fc.array(fc.nat(), { minLength: readings.length * 3 + 1, maxLength: readings.length * 3 + 1 }),
    )
    .map(([copies, keys]) => {
      const out = readings.flatMap((r, i) => Array.from({ length: i === readings.length - 1 ? Math.max(1, copies[i] ?? 1) : (copies[i] ?? 0) }, () => r));
      return out.map((r, i) => ({ r, k: keys[i] ?? 0 })).sort((a, b) => a.k - b.k).map((x) => x.r);
    });
}

const scenarioArb = historyArb.chain((h) => deliveryArb(h.readings).map((delivered) => ({ ...h, delivered })));

/** Reference model: a reading applies when its seq is above every applied one; its Δ goes to the segment at its time. */
function referenceEnergy(initialWh: number, delivered: readonly MeterReading[]): Map<string, { price: number; wh: number }> {
  const bySegment = new Map<string, { price: number; wh: number }>();
  let lastSeq = 0;
  let lastWh = initialWh;
  for (const r of delivered) {
    if (r.registerSeq <= lastSeq) continue;
    const p = priceAt(SCHEDULE, r.atMs);
    if (p === undefined) throw new Error("schedule covers every instant");
    const s = bySegment.get(p.segmentKey) ?? { price: p.priceCentiFenPerKwh, wh: 0 };
    bySegment.set(p.segmentKey, { price: s.price, wh: s.wh + r.registerWh - lastWh });
    lastSeq = r.registerSeq;
    lastWh = r.registerWh;
  }
  return bySegment;
}

describe("properties", () => {
  it("charges Σ_s round(price_s × E_s) in total, within ½ fen per segment of Σ_s price_s × E_s, whatever is duplicated, lost or reordered", () => {
    fc.assert(
      fc.property(scenarioArb, ({ initialWh, readings, delivered }) => {
        const r = chargesFor(emptyChargeState(), [installed(initialWh, T0), ...delivered], SCHEDULE);
        const ref = referenceEnergy(initialWh, delivered);
        const expected = [...ref.values()].reduce((sum, s) => sum + energyCostFen(s.price, s.wh, "half-up").fen, 0);
        expect(total(r.postings)).toBe(expected);
        expect(chargedFen(meterOf(r.state))).toBe(expected);
        // |100000 × total − Σ price × E| ≤ 50000 × segments, in exact integers (centi-fen/kWh × Wh = 10^-5 fen).
        const exact = [...ref.values()].reduce((sum, s) => sum + BigInt(s.price) * BigInt(s.wh), 0n);
        const error = BigInt(total(r.postings)) * 100_000n - exact;
        expect((error < 0n ? -error : error) <= 50_000n * BigInt(ref.size)).toBe(true);
        // Every Wh between installation and the last reading is attributed exactly once.
        const last = readings[readings.length - 1];
        expect(meterOf(r.state).attributedWh).toBe((last?.registerWh ?? initialWh) - initialWh);
        expect(r.held).toEqual([]);
      }),
    );
  });

  it("charges round(price × energy) on a flat tariff whatever is duplicated, lost or reordered", () => {
    fc.assert(
      fc.property(scenarioArb, fc.integer({ min: 1, max: 100_000 }), ({ initialWh, readings, delivered }, price) => {
        const r = chargesFor(emptyChargeState(), [installed(initialWh, T0), ...delivered], [flat(price)]);
        const last = readings[readings.length - 1];
        expect(total(r.postings)).toBe(energyCostFen(price, (last?.registerWh ?? initialWh) - initialWh, "half-up").fen);
      }),
    );
  });

  it("changes nothing when the delivered sequence is replayed, in any order", () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat(), ({ initialWh, delivered }, rotate) => {
        const inputs: ChargeInput[] = [installed(initialWh, T0), ...delivered];
        const once = chargesFor(emptyChargeState(), inputs, SCHEDULE);
        const k = rotate % inputs.length;
        const again = chargesFor(once.state, [...inputs.slice(k), ...inputs.slice(0, k)], SCHEDULE);
        expect(again.postings).toEqual([]);
        expect(again.state).toEqual(once.state);
      }),
    );
  });

  it("posts only positive amounts with distinct keys, and holds every reading below the last applied one, when registers jump anywhere", () => {
    const wildArb = fc.array(fc.record({ wh: fc.integer({ min: 0, max: 5_000_000 }), seq: fc.integer({ min: 1, max: 80 }), dMs: fc.integer({ min: 0, max: 2 * HOUR }) }), { maxLength: 80 });
    fc.assert(
      fc.property(wildArb, (raw) => {
        let at = T0;
        const inputs = raw.map((x) => reading(x.seq, x.wh, (at += x.dMs)));
        const r = chargesFor(emptyChargeState(), [installed(0, T0), ...inputs], SCHEDULE);
        expect(r.postings.every((p) => p.amountFen > 0 && p.energyWh > 0)).toBe(true);
        expect(new Set(r.postings.map((p) => p.idempotencyKey)).size).toBe(r.postings.length);
        let lastSeq = 0;
        let lastWh = 0;
        for (const x of inputs) {
          if (x.registerSeq <= lastSeq) continue;
          if (x.registerWh < lastWh) {
            expect(r.held.some((h) => h.input === x && h.reason === "register-backwards")).toBe(true);
            continue;
          }
          lastSeq = x.registerSeq;
          lastWh = x.registerWh;
        }
        expect(meterOf(r.state).attributedWh).toBe(lastWh);
      }),
    );
  });

  it("carries E across replacements and rollovers: all energy drawn is attributed once, with tagged readings reordered and held ones resubmitted", () => {
    type Step = { kind: "read"; dWh: number } | { kind: "replace"; tailWh: number; newInitialWh: number } | { kind: "rollover"; tailWh: number };
    const stepArb: fc.Arbitrary<Step> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant("read" as const), dWh: fc.integer({ min: 0, max: 50_000 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("replace" as const), tailWh: fc.integer({ min: 0, max: 20_000 }), newInitialWh: fc.integer({ min: 0, max: 3_000_000 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("rollover" as const), tailWh: fc.integer({ min: 1, max: 20_000 }) }) },
    );
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 40 }), fc.integer({ min: 0, max: 30_000 }), fc.array(fc.nat(), { minLength: 200, maxLength: 200 }), (steps, finalDWh, keys) => {
        let registerWh = 1_000_000;
        let trueTotalWh = 0;
        let epoch = 0;
        let at = T0;
        let seq = 0;
        const events: MeterEvent[] = [];
        const readings: MeterReading[] = [];
        for (const s of [...steps, { kind: "read", dWh: finalDWh } as const]) {
          at += HOUR;
          if (s.kind === "read") {
            registerWh += s.dWh;
            trueTotalWh += s.dWh;
            readings.push(reading(++seq, registerWh, at, { epoch }));
          } else if (s.kind === "replace") {
            trueTotalWh += s.tailWh;
            events.push({ type: "meter-replaced", meterId: METER, atMs: at, oldFinalWh: registerWh + s.tailWh, newInitialWh: s.newInitialWh });
            registerWh = s.newInitialWh;
            epoch += 1;
          } else {
            trueTotalWh += s.tailWh;
            events.push({ type: "rollover", meterId: METER, atMs: at, wrapWh: registerWh + s.tailWh });
            registerWh = 0;
            epoch += 1;
          }
        }
        // Events keep their order (an operator records them one after another); readings are shuffled among them.
        const shuffled = readings.map((r, i) => ({ r, k: keys[i % keys.length] ?? 0 })).sort((a, b) => a.k - b.k).map((x) => x.r);
        const inputs: ChargeInput[] = [installed(1_000_000, T0)];
        const perSlot = Math.ceil(shuffled.length / (events.length + 1));
        events.forEach((e, i) => inputs.push(...shuffled.slice(i * perSlot, (i + 1) * perSlot), e));
        inputs.push(...shuffled.slice(events.length * perSlot));

        const first = chargesFor(emptyChargeState(), inputs, SCHEDULE);
        const resubmitted = chargesFor(first.state, first.held.map((h) => h.input), SCHEDULE);
        expect(first.held.every((h) => h.reason === "unknown-epoch")).toBe(true);
        expect(resubmitted.held).toEqual([]);
        const postings = [...first.postings, ...resubmitted.postings];
        expect(postings.every((p) => p.amountFen > 0)).toBe(true);
        const meter = meterOf(resubmitted.state);
        expect(meter.attributedWh).toBe(trueTotalWh);
        expect(Object.values(meter.segments).reduce((sum, s) => sum + s.energyWh, 0)).toBe(trueTotalWh);
        expect(total(postings)).toBe(chargedFen(meter));
        expect(meter.epochs).toHaveLength(epoch + 1);
      }),
    );
  });
});
