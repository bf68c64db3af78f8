import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { yuanPerKwhToPrice } from "../../protocols/units.js";
import { maxPrice, priceAt, segmentsFrom, shanghaiMinuteOfDay, tariffPricesSchema, tariffScheduleSchema, tariffSchema, type Tariff, type TouPeriod } from "./tariff.js";

/** Shanghai local time → epoch ms. */
const sh = (local: string): number => Date.parse(`${local}+08:00`);
const SEPT = sh("2026-09-01T00:00:00");

const TOU_PERIODS: TouPeriod[] = [
  { rate: "valley", from: "23:00", to: "07:00", priceCentiFenPerKwh: 2600 },
  { rate: "flat", from: "07:00", to: "10:00", priceCentiFenPerKwh: 5283 },
  { rate: "peak", from: "10:00", to: "12:00", priceCentiFenPerKwh: 8100 },
  { rate: "sharp", from: "12:00", to: "14:00", priceCentiFenPerKwh: 9700 },
  { rate: "flat", from: "14:00", to: "18:00", priceCentiFenPerKwh: 5283 },
  { rate: "peak", from: "18:00", to: "23:00", priceCentiFenPerKwh: 8100 },
];

const flatV1: Tariff = { tariffId: "t1", version: 1, effectiveFrom: sh("2026-01-01T00:00:00"), prices: { kind: "flat", priceCentiFenPerKwh: 5283 } };
const touV2: Tariff = { tariffId: "t1", version: 2, effectiveFrom: SEPT, prices: { kind: "time-of-use", periods: TOU_PERIODS } };

function issues(schema: { safeParse(v: unknown): { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } } }, value: unknown): string[] {
  const r = schema.safeParse(value);
  return r.success ? [] : (r.error?.issues ?? []).map((i) => `${i.path.join(".")}: ${i.message}`);
}

describe("tariff schema", () => {
  it("accepts a flat tariff priced in centi-fen per kWh (¥0.5283/kWh = 5283)", () => {
    expect(tariffSchema.parse(flatV1).prices).toEqual({ kind: "flat", priceCentiFenPerKwh: yuanPerKwhToPrice("0.5283") });
  });

  it("accepts a four-rate time-of-use tariff whose periods cover the day, one crossing midnight", () => {
    expect(issues(tariffSchema, touV2)).toEqual([]);
  });

  it("refuses time-of-use periods that leave part of the day without a price", () => {
    const periods = TOU_PERIODS.filter((p) => p.rate !== "sharp");
    expect(issues(tariffPricesSchema, { kind: "time-of-use", periods })).toEqual(["periods: the periods leave 12:00 without a price; they must cover the whole day"]);
  });

  it("refuses overlapping periods", () => {
    const periods = [...TOU_PERIODS.slice(0, 5), { rate: "peak", from: "17:00", to: "23:00", priceCentiFenPerKwh: 8100 }];
    expect(issues(tariffPricesSchema, { kind: "time-of-use", periods })).toEqual(["periods.5: overlaps period 4 at 17:00"]);
  });

  it("refuses two prices for one rate in one version, so a segment key names one price", () => {
    const periods = TOU_PERIODS.map((p, i) => (i === 5 ? { ...p, priceCentiFenPerKwh: 8200 } : p));
    expect(issues(tariffPricesSchema, { kind: "time-of-use", periods })).toEqual(["periods.5.priceCentiFenPerKwh: rate peak already costs 8100; one rate has one price per tariff version"]);
  });

  it("refuses more than 8 periods a day", () => {
    const periods = Array.from({ length: 9 }, (_, i) => ({ rate: "flat", from: `${String(i).padStart(2, "0")}:00`, to: `${String(i + 1).padStart(2, "0")}:00`, priceCentiFenPerKwh: 5000 }));
    expect(issues(tariffPricesSchema, { kind: "time-of-use", periods }).some((m) => m.startsWith("periods:"))).toBe(true);
  });

  it("refuses a period that starts where it ends, a 24:00 clock time, a zero price and an '@' in a tariff id", () => {
    const periods = [{ rate: "flat", from: "08:00", to: "08:00", priceCentiFenPerKwh: 5000 }];
    expect(issues(tariffPricesSchema, { kind: "time-of-use", periods })).toContain("periods.0.to: a period needs from ≠ to (use a flat tariff for one price all day)");
    expect(issues(tariffPricesSchema, { kind: "time-of-use", periods: [{ rate: "flat", from: "00:00", to: "24:00", priceCentiFenPerKwh: 5000 }] })).toContain("periods.0.to: a time of day is HH:MM, 00:00..23:59");
    expect(issues(tariffSchema, { ...flatV1, prices: { kind: "flat", priceCentiFenPerKwh: 0 } })).toHaveLength(1);
    expect(issues(tariffSchema, { ...flatV1, tariffId: "t1@v9" })).toHaveLength(1);
  });

  it("refuses a schedule with two versions taking effect at the same instant", () => {
    expect(issues(tariffScheduleSchema, [flatV1, { ...touV2, effectiveFrom: flatV1.effectiveFrom }])).toEqual(["1.effectiveFrom: tariff 0 takes effect at the same instant"]);
  });

  it("refuses a schedule with a version twice or a higher version taking effect earlier", () => {
    expect(issues(tariffScheduleSchema, [flatV1, { ...touV2, version: 1 }])).toEqual(["1.version: t1@v1 appears twice (entries 0 and 1)"]);
    expect(issues(tariffScheduleSchema, [{ ...flatV1, version: 3 }, touV2])).toEqual(["0.effectiveFrom: t1 v3 takes effect before v2"]);
  });
});

describe("priceAt", () => {
  const schedule = [touV2, flatV1];

  it("has no price before the first version takes effect", () => {
    expect(priceAt(schedule, flatV1.effectiveFrom - 1)).toBeUndefined();
  });

  it("prices a flat tariff under the segment 'id@vN/flat'", () => {
    expect(priceAt(schedule, sh("2026-08-31T23:59:59"))).toEqual({ segmentKey: "t1@v1/flat", priceCentiFenPerKwh: 5283, tariffId: "t1", version: 1, rate: "flat" });
  });

  it("switches to the new version at exactly its effectiveFrom", () => {
    expect(priceAt(schedule, SEPT - 1)?.segmentKey).toBe("t1@v1/flat");
    expect(priceAt(schedule, SEPT)?.segmentKey).toBe("t1@v2/valley");
  });

  it("switches period at the boundary minute: 09:59:59 is flat, 10:00 is peak", () => {
    expect(priceAt(schedule, sh("2026-09-02T09:59:59"))).toMatchObject({ segmentKey: "t1@v2/flat", priceCentiFenPerKwh: 5283 });
    expect(priceAt(schedule, sh("2026-09-02T10:00:00"))).toMatchObject({ segmentKey: "t1@v2/peak", priceCentiFenPerKwh: 8100 });
  });

  it("prices a period that crosses midnight on both sides of it", () => {
    expect(priceAt(schedule, sh("2026-09-02T23:30:00"))?.segmentKey).toBe("t1@v2/valley");
    expect(priceAt(schedule, sh("2026-09-03T06:59:00"))?.segmentKey).toBe("t1@v2/valley");
    expect(priceAt(schedule, sh("2026-09-03T07:00:00"))?.segmentKey).toBe("t1@v2/flat");
  });

  it("reads periods in Shanghai time, not UTC: 02:00 UTC is 10:00 in Shanghai", () => {
    expect(priceAt(schedule, Date.parse("2026-09-02T02:00:00Z"))?.segmentKey).toBe("t1@v2/peak");
    expect(shanghaiMinuteOfDay(Date.parse("2026-09-02T16:00:00Z"))).toBe(0);
  });

  it("gives the two periods of one rate the same segment", () => {
    expect(priceAt(schedule, sh("2026-09-02T08:00:00"))?.segmentKey).toBe(priceAt(schedule, sh("2026-09-02T15:00:00"))?.segmentKey);
  });
});

describe("maxPrice", () => {
  it("is the highest period price of the version in force", () => {
    expect(maxPrice([touV2], SEPT + 1)).toBe(9700);
  });

  it("includes a later version already scheduled", () => {
    expect(maxPrice([flatV1, touV2], sh("2026-08-01T00:00:00"))).toBe(9700);
  });

  it("leaves out a superseded version, however high it was", () => {
    const dearOld = { ...flatV1, prices: { kind: "flat", priceCentiFenPerKwh: 20_000 } } as const;
    expect(maxPrice([dearOld, touV2], SEPT)).toBe(9700);
    expect(maxPrice([dearOld, touV2], SEPT - 1)).toBe(20_000);
  });

  it("is undefined when no tariff is in force or scheduled", () => {
    expect(maxPrice([], 0)).toBeUndefined();
  });

  it("counts the segments energy may still be charged under", () => {
    expect(segmentsFrom([flatV1, touV2], sh("2026-08-01T00:00:00")).map((s) => s.segmentKey)).toEqual(["t1@v1/flat", "t1@v2/valley", "t1@v2/flat", "t1@v2/peak", "t1@v2/sharp"]);
  });

  it("bounds every price that applies at or after fromMs (property)", () => {
    const schedule = [flatV1, touV2, { tariffId: "t1", version: 3, effectiveFrom: sh("2027-01-01T00:00:00"), prices: { kind: "flat", priceCentiFenPerKwh: 6000 } } satisfies Tariff];
    const start = flatV1.effectiveFrom;
    fc.assert(
      fc.property(fc.integer({ min: start, max: start + 2 * 365 * 86_400_000 }), fc.integer({ min: 0, max: 365 * 86_400_000 }), (from, later) => {
        const bound = maxPrice(schedule, from);
        const p = priceAt(schedule, from + later);
        expect(p).toBeDefined();
        expect(bound).toBeDefined();
        expect(p?.priceCentiFenPerKwh ?? Infinity).toBeLessThanOrEqual(bound ?? -1);
      }),
    );
  });
});
