import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { energyCostFen } from "../../protocols/units.js";
import { chargedFen, chargesFor, emptyChargeState } from "./charges.js";
import { LEDGER_ERROR_CODES, LedgerError } from "./errors.js";
import { checkTopUp, lowCreditStage, lowCreditThresholdsSchema, sizeGrant, spendableFen, warnAtWhFor } from "./grants.js";
import { maxPrice, segmentsFrom, type Tariff } from "./tariff.js";

const HOUR = 3_600_000;

describe("sizeGrant", () => {
  it("grants the energy ¥100 buys at ¥0.5283/kWh, rounded down: 189286 Wh above the register", () => {
    // 10000 fen × 10^5 / 5283 = 189286.39… Wh.
    expect(sizeGrant({ balanceFen: 10_000, overdraftFen: 0, registerWh: 1_000_000, maxPriceCentiFenPerKwh: 5283 })).toBe(1_189_286);
  });

  it("grants no more energy on a zero balance: the limit is the register itself", () => {
    expect(sizeGrant({ balanceFen: 0, overdraftFen: 0, registerWh: 1_000_000, maxPriceCentiFenPerKwh: 5283 })).toBe(1_000_000);
  });

  it("grants no more energy on a negative balance without overdraft", () => {
    expect(sizeGrant({ balanceFen: -250, overdraftFen: 0, registerWh: 1_000_000, maxPriceCentiFenPerKwh: 5283 })).toBe(1_000_000);
  });

  it("spends the overdraft allowance too: −¥3 of ¥10 overdraft leaves ¥7 to run on", () => {
    // 700 fen × 10^5 / 5283 = 13250.0… Wh.
    expect(sizeGrant({ balanceFen: -300, overdraftFen: 1_000, registerWh: 0, maxPriceCentiFenPerKwh: 5283 })).toBe(13_250);
  });

  it("deducts money used but not yet charged before sizing", () => {
    expect(spendableFen({ balanceFen: 10_000, overdraftFen: 500, registerWh: 0, maxPriceCentiFenPerKwh: 5283, chargedUncoveredFen: 2_000 })).toBe(8_500);
    expect(sizeGrant({ balanceFen: 10_000, overdraftFen: 0, registerWh: 0, maxPriceCentiFenPerKwh: 5283, chargedUncoveredFen: 10_000 })).toBe(0);
  });

  it("keeps back one fen per extra tariff segment for per-segment rounding", () => {
    expect(spendableFen({ balanceFen: 10_000, overdraftFen: 0, registerWh: 0, maxPriceCentiFenPerKwh: 9700, roundingSegments: 4 })).toBe(9_997);
  });

  it("sizes at the highest price that can apply, so a time-of-use meter is granted by its sharp rate", () => {
    // 10000 fen at ¥0.97/kWh = 103092.7… Wh.
    expect(sizeGrant({ balanceFen: 10_000, overdraftFen: 0, registerWh: 0, maxPriceCentiFenPerKwh: 9700 })).toBe(103_092);
  });

  it("needs the rounding reserve: four segments that each round up would overspend a naive grant by 3 fen", () => {
    // Four rates at one price (¥0.05/kWh = 0.05 fen per Wh); 9 Wh in each (0.45 fen, charged 0), balance 4 fen.
    const sh = (local: string): number => Date.parse(`${local}+08:00`);
    const tou: Tariff = {
      tariffId: "t1",
      version: 1,
      effectiveFrom: 0,
      prices: {
        kind: "time-of-use",
        periods: [
          { rate: "valley", from: "23:00", to: "07:00", priceCentiFenPerKwh: 5000 },
          { rate: "flat", from: "07:00", to: "10:00", priceCentiFenPerKwh: 5000 },
          { rate: "peak", from: "10:00", to: "12:00", priceCentiFenPerKwh: 5000 },
          { rate: "sharp", from: "12:00", to: "23:00", priceCentiFenPerKwh: 5000 },
        ],
      },
    };
    const at = ["06:30", "08:00", "11:00", "13:00"];
    const history = chargesFor(
      emptyChargeState(),
      [{ type: "meter-installed", meterId: "m", atMs: sh("2026-08-10T06:00:00"), initialWh: 0 }, ...at.map((t, i) => ({ meterId: "m", registerSeq: i + 1, atMs: sh(`2026-08-10T${t}:00`), registerWh: 9 * (i + 1) }))],
      [tou],
    );
    expect(history.postings).toEqual([]);
    const now = sh("2026-08-10T13:00:00");
    const draw = (limitWh: number) =>
      chargesFor(history.state, at.map((t, i) => ({ meterId: "m", registerSeq: i + 5, atMs: sh(`2026-08-11T${t}:00`), registerWh: i < 3 ? 37 + i : limitWh })), [tou]).postings.reduce((sum, p) => sum + p.amountFen, 0);
    const sized = sizeGrant({ balanceFen: 4, overdraftFen: 0, registerWh: 36, maxPriceCentiFenPerKwh: maxPrice([tou], now) ?? 0, roundingSegments: segmentsFrom([tou], now).length });
    const naive = sizeGrant({ balanceFen: 4, overdraftFen: 0, registerWh: 36, maxPriceCentiFenPerKwh: 5000 });
    expect([sized, draw(sized)]).toEqual([56, 4]);
    expect([naive, draw(naive)]).toEqual([116, 7]);
  });

  it("refuses impossible arguments with LEDGER_BAD_ARGUMENT", () => {
    const base = { balanceFen: 100, overdraftFen: 0, registerWh: 0, maxPriceCentiFenPerKwh: 5283 };
    for (const bad of [{ overdraftFen: -1 }, { maxPriceCentiFenPerKwh: 0 }, { balanceFen: 1.5 }, { registerWh: -1 }, { roundingSegments: 0 }, { chargedUncoveredFen: -5 }]) {
      expect(() => sizeGrant({ ...base, ...bad })).toThrow(expect.objectContaining({ code: LEDGER_ERROR_CODES.BAD_ARGUMENT }) as LedgerError);
    }
  });

  it("never grants energy costing more than balance + overdraft at the highest price, and never one Wh less than that buys (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1_000_000, max: 100_000_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 0, max: 1_000_000_000 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 1, max: 8 }),
        (balanceFen, overdraftFen, registerWh, price, chargedUncoveredFen, roundingSegments) => {
          const input = { balanceFen, overdraftFen, registerWh, maxPriceCentiFenPerKwh: price, chargedUncoveredFen, roundingSegments };
          const limitWh = sizeGrant(input);
          const grantedWh = limitWh - registerWh;
          const budget = balanceFen + overdraftFen - chargedUncoveredFen - (roundingSegments - 1);
          expect(grantedWh).toBeGreaterThanOrEqual(0);
          if (budget <= 0) {
            expect(limitWh).toBe(registerWh);
            return;
          }
          expect(energyCostFen(price, grantedWh, "ceil").fen).toBeLessThanOrEqual(budget);
          expect(energyCostFen(price, grantedWh + 1, "ceil").fen).toBeGreaterThan(budget);
        },
      ),
    );
  });

  it("keeps the farmer above −overdraft when the whole grant is drawn and charged across time-of-use segments and a tariff change (property)", () => {
    const T0 = Date.parse("2026-08-10T06:00:00+08:00");
    const scheduleWith = (valley: number, flat: number, peak: number, sharp: number, next: number): Tariff[] => [
      {
        tariffId: "t1",
        version: 1,
        effectiveFrom: 0,
        prices: {
          kind: "time-of-use",
          periods: [
            { rate: "valley", from: "23:00", to: "07:00", priceCentiFenPerKwh: valley },
            { rate: "flat", from: "07:00", to: "10:00", priceCentiFenPerKwh: flat },
            { rate: "peak", from: "10:00", to: "12:00", priceCentiFenPerKwh: peak },
            { rate: "sharp", from: "12:00", to: "14:00", priceCentiFenPerKwh: sharp },
            { rate: "flat", from: "14:00", to: "23:00", priceCentiFenPerKwh: flat },
          ],
        },
      },
      { tariffId: "t1", version: 2, effectiveFrom: T0 + 60 * HOUR, prices: { kind: "flat", priceCentiFenPerKwh: next } },
    ];
    // Mixed prices, and one price everywhere: the worst case for per-segment rounding (every segment at the maximum).
    const schedules = [scheduleWith(2600, 5283, 8100, 9700, 7777), scheduleWith(5000, 5000, 5000, 5000, 5000)];
    const drawArb = fc.array(fc.record({ share: fc.integer({ min: 0, max: 1_000 }), gapMs: fc.integer({ min: 1, max: 4 * HOUR }) }), { minLength: 1, maxLength: 30 });
    const historyArb = fc.array(fc.record({ dWh: fc.integer({ min: 0, max: 60 }), gapMs: fc.integer({ min: 1, max: 4 * HOUR }) }), { maxLength: 12 });
    fc.assert(
      fc.property(fc.constantFrom(0, 1), fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 0, max: 500 }), historyArb, drawArb, (which, topUpFen, overdraftFen, history, draws) => {
        const schedule = schedules[which] ?? [];
        // A meter with some history, so its segments carry rounding remainders; then a grant; then draws to the limit.
        let at = T0;
        let registerWh = 0;
        let seq = 0;
        const past = history.map((h) => ({ meterId: "m", registerSeq: ++seq, atMs: (at += h.gapMs), registerWh: (registerWh += h.dWh) }));
        const before = chargesFor(emptyChargeState(), [{ type: "meter-installed", meterId: "m", atMs: T0, initialWh: 0 }, ...past], schedule);
        const meter = before.state.meters["m"];
        if (meter === undefined) throw new Error("meter m was installed");
        const balanceFen = topUpFen - chargedFen(meter);
        const limitWh = sizeGrant({ balanceFen, overdraftFen, registerWh, maxPriceCentiFenPerKwh: maxPrice(schedule, at) ?? 0, roundingSegments: segmentsFrom(schedule, at).length });
        // Split the granted energy into readings at arbitrary later times; the last reaches the limit exactly.
        const grantedWh = limitWh - registerWh;
        const weight = Math.max(1, draws.reduce((a, d) => a + d.share, 0));
        let acc = 0;
        const readings = draws.map((d, i) => {
          acc += d.share;
          const wh = i === draws.length - 1 ? limitWh : registerWh + Math.floor((grantedWh * acc) / weight);
          return { meterId: "m", registerSeq: ++seq, atMs: (at += d.gapMs), registerWh: wh };
        });
        const after = chargesFor(before.state, readings, schedule);
        expect(after.held).toEqual([]);
        const spent = after.postings.reduce((sum, p) => sum + p.amountFen, 0);
        expect(balanceFen - spent).toBeGreaterThanOrEqual(Math.min(balanceFen, -overdraftFen));
      }),
      { numRuns: 500 },
    );
  });
});

describe("low-credit warnings", () => {
  const thresholds = { stage1Fen: 2_000, stage2Fen: 500 };

  it("is in stage 0 above the first threshold, 1 at it and 2 at or below the second", () => {
    expect([2_001, 2_000, 501, 500, 0, -100].map((b) => lowCreditStage(b, thresholds))).toEqual([0, 1, 1, 2, 2, 2]);
  });

  it("refuses a second stage that is not below the first", () => {
    expect(lowCreditThresholdsSchema.safeParse({ stage1Fen: 500, stage2Fen: 500 }).success).toBe(false);
    expect(() => lowCreditStage(0, { stage1Fen: 500, stage2Fen: 800 })).toThrow(LedgerError);
  });

  it("turns the stages into the edge's warnAtWh at the highest price, overdraft included", () => {
    // (2000 + 1000) fen at ¥0.5283 = 56785.9 Wh; (500 + 1000) fen = 28392.9 Wh.
    expect(warnAtWhFor(thresholds, 1_000, 5283)).toEqual([56_785, 28_392]);
  });
});

describe("checkTopUp", () => {
  it("accepts a top-up that keeps the balance within the cap", () => {
    expect(checkTopUp(1_000, 4_000, 5_000)).toEqual({ ok: true, balanceAfterFen: 5_000 });
  });

  it("refuses a top-up over the cap and says how much would be accepted", () => {
    expect(checkTopUp(1_000, 4_001, 5_000)).toEqual({ ok: false, reason: "over-cap", maxTopUpFen: 4_000 });
  });

  it("lets a farmer in overdraft top up by the debt as well", () => {
    expect(checkTopUp(-800, 5_800, 5_000)).toEqual({ ok: true, balanceAfterFen: 5_000 });
  });

  it("refuses a zero or negative top-up", () => {
    expect(checkTopUp(0, 0, 5_000)).toEqual({ ok: false, reason: "not-positive", maxTopUpFen: 5_000 });
  });

  it("accepts nothing when the balance is already at or above the cap", () => {
    expect(checkTopUp(6_000, 1, 5_000)).toEqual({ ok: false, reason: "over-cap", maxTopUpFen: 0 });
  });
});
