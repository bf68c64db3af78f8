// The settlement core (cloud/subsidy/settle.ts), by hand: a small village whose every refund is written down to the
// fen, then each flag on its own, then the properties that must hold for any input.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { addDays, daysBetweenInclusive } from "../../cloud/subsidy/local-day.js";
import type { MeterDay } from "../../cloud/subsidy/meter-days.js";
import type { MeterFlag } from "../../cloud/subsidy/meter-flags.js";
import { subsidyPolicySchema, type SubsidyPolicy, type SubsidyPolicyInput } from "../../cloud/subsidy/policy.js";
import { runBoundaries, settle, statementTotalFen, type SettlementUsage, type StatementLine } from "../../cloud/subsidy/settle.js";
import { dayRuns, type MeterUsage, type UsageRun } from "../../cloud/subsidy/usage-source.js";

const sh = (local: string): number => Date.parse(`${local}+08:00`);
const SEASON = { seasonId: "2026-early", name: "2026年早稻季", fromDay: "2026-05-10", toDay: "2026-05-31" };

const policyInput: SubsidyPolicyInput = {
  villageId: "hongmiao",
  programmeId: "grain-power",
  version: 1,
  policy: {
    name: "种粮电费补贴",
    grainCrops: ["rice", "wheat", "maize"],
    refund: { kind: "share", shareBp: 5_000 },
    seasons: [SEASON],
    capWhPerMu: 100_000,
    night: { maxShareBp: 5_000, exemptCrops: ["rice"] },
    waterQuotaM3PerMu: 60,
  },
};
const POLICY: SubsidyPolicy = subsidyPolicySchema.parse(policyInput);
const withPolicy = (body: Partial<SubsidyPolicy["policy"]>): SubsidyPolicy => ({ ...POLICY, policy: { ...POLICY.policy, ...body } });
const PERIOD = { villageId: "hongmiao", seasonId: SEASON.seasonId, fromDay: SEASON.fromDay, toDay: SEASON.toDay };

/** A meter read every day from `fromDay` to `toDay`, with the given use [Wh, fen, night Wh] on some days. */
function dailyReads(meterId: string, use: Record<string, readonly [number, number, number?]>, fromDay = SEASON.fromDay, toDay = SEASON.toDay): MeterUsage {
  const days: MeterDay[] = [];
  let countWh = 0;
  for (let day = fromDay; day <= toDay; day = addDays(day, 1)) {
    const [energyWh, chargedFen, nightWh] = use[day] ?? [0, 0, 0];
    days.push({ meterId, day, energyWh, chargedFen, nightWh: nightWh ?? 0, readings: 96, firstAtMs: sh(`${day}T00:00:00`), lastAtMs: sh(`${day}T23:45:00`), firstRegisterWh: countWh, lastRegisterWh: countWh + energyWh });
    countWh += energyWh;
  }
  return { meterId, runs: dayRuns(days), ...(days.length === 0 ? {} : { countAtEndWh: countWh }) };
}

const village = (): SettlementUsage => ({
  households: [
    { householdId: "hh-chen", name: "陈德伯" },
    { householdId: "hh-li", name: "李明" },
    { householdId: "hh-sun", name: "孙一" },
    { householdId: "hh-wang", name: "王小二" },
    { householdId: "hh-zhao", name: "赵四" },
    { householdId: "hh-zhou", name: "周八" },
  ],
  plots: [
    { plotId: "p-chen", householdId: "hh-chen", areaMilliMu: 2_500, crops: [{ effectiveFromMs: 0, crop: "rice" }] },
    { plotId: "p-li", householdId: "hh-li", areaMilliMu: 1_000, crops: [{ effectiveFromMs: 0, crop: "wheat" }] },
    { plotId: "p-sun", householdId: "hh-sun", areaMilliMu: 1_000, crops: [{ effectiveFromMs: 0, crop: "wheat" }] },
    { plotId: "p-wang", householdId: "hh-wang", areaMilliMu: 2_000, crops: [{ effectiveFromMs: 0, crop: "maize" }] },
    { plotId: "p-zhao-tea", householdId: "hh-zhao", areaMilliMu: 3_000, crops: [{ effectiveFromMs: 0, crop: "tea" }] },
    { plotId: "p-zhao-rice", householdId: "hh-zhao", areaMilliMu: 1_000, crops: [{ effectiveFromMs: 0, crop: "rice" }, { effectiveFromMs: sh("2026-05-20T00:00:00"), crop: "vegetables" }] },
    { plotId: "p-zhou", householdId: "hh-zhou", areaMilliMu: 1_000, crops: [{ effectiveFromMs: 0, crop: "rice" }] },
  ],
  meters: [
    { meterId: "m-chen", householdId: "hh-chen", plotId: "p-chen", litresPerKwh: 300 },
    { meterId: "m-li", householdId: "hh-li", plotId: "p-li" },
    { meterId: "m-sun", householdId: "hh-sun", plotId: "p-sun" },
    { meterId: "m-wang", householdId: "hh-wang", plotId: "p-wang" },
    { meterId: "m-zhao-tea", householdId: "hh-zhao", plotId: "p-zhao-tea" },
    { meterId: "m-zhao", householdId: "hh-zhao", plotId: "p-zhao-rice" },
    { meterId: "m-zhou", householdId: "hh-zhou", plotId: "p-zhou" },
    { meterId: "m-house", householdId: "hh-chen" },
  ],
  usage: new Map(
    [
      dailyReads("m-chen", { "2026-05-10": [100_000, 5_283], "2026-05-11": [50_000, 2_642] }),
      dailyReads("m-li", { "2026-05-12": [180_000, 9_509] }),
      dailyReads("m-sun", { "2026-05-20": [60_000, 3_170, 50_000] }),
      dailyReads("m-wang", { "2026-05-15": [40_000, 2_113] }),
      dailyReads("m-zhao-tea", { "2026-05-12": [30_000, 1_585] }),
      dailyReads("m-zhao", { "2026-05-18": [20_000, 1_057], "2026-05-25": [10_000, 528] }),
      dailyReads("m-zhou", { "2026-05-15": [10_000, 528] }, SEASON.fromDay, "2026-05-20"),
      dailyReads("m-house", { "2026-05-15": [99_000, 5_230] }),
    ].map((u) => [u.meterId, u]),
  ),
  flags: new Map<string, MeterFlag[]>([["m-wang", [{ meterId: "m-wang", kind: "tamper", atMs: sh("2026-05-15T03:00:00"), detail: "cover_open: terminal cover opened" }]]]),
  alreadyRefunded: new Set(),
});

const byPlot = (lines: readonly StatementLine[]): Record<string, Pick<StatementLine, "status" | "proposedRefundFen" | "refundFen" | "maxRefundFen"> & { flags: string[] }> =>
  Object.fromEntries(lines.map((l) => [l.plotId, { status: l.status, proposedRefundFen: l.proposedRefundFen, refundFen: l.refundFen, maxRefundFen: l.maxRefundFen, flags: l.flags.map((f) => f.code) }]));

describe("a worked example: six households of Hongmiao, early rice season 2026, half the cost refunded, cap 100 kWh/mu", () => {
  const lines = settle(POLICY, PERIOD, village());

  it("refunds every line to the fen as worked out by hand, and flags the ones that need the committee", () => {
    expect(byPlot(lines)).toEqual({
      // 150 kWh cost 52.83 + 26.42 = ¥79.25; half is 3962.5 fen, rounded half up.
      "p-chen": { status: "payable", proposedRefundFen: 3_963, refundFen: 3_963, maxRefundFen: 3_963, flags: [] },
      // 180 kWh > 100 kWh cap on 1 mu: 9509 × 100/180 × ½ = 2641.39 fen.
      "p-li": { status: "flagged", proposedRefundFen: 2_641, refundFen: 0, maxRefundFen: 2_641, flags: ["above-cap"] },
      // 60 kWh, 50 of them at night on wheat (83% > 50%): 3170 × ½.
      "p-sun": { status: "flagged", proposedRefundFen: 1_585, refundFen: 0, maxRefundFen: 1_585, flags: ["night-use"] },
      // 40 kWh cost 2113 fen: 1056.5, rounded half up; the terminal cover was opened that night.
      "p-wang": { status: "flagged", proposedRefundFen: 1_057, refundFen: 0, maxRefundFen: 1_057, flags: ["tamper"] },
      // Rice until 05-20, then vegetables: 20 kWh (1057 fen) eligible → 528.5 → 529; all 30 kWh would be 1585 → 793.
      "p-zhao-rice": { status: "flagged", proposedRefundFen: 529, refundFen: 0, maxRefundFen: 793, flags: ["non-grain-crop"] },
      // Read until 05-20, silent for the last 11 days of the season.
      "p-zhou": { status: "flagged", proposedRefundFen: 264, refundFen: 0, maxRefundFen: 264, flags: ["meter-offline"] },
    });
  });

  it("has no line for a tea plot or for a meter that is bound to no plot", () => {
    expect(lines.map((l) => l.plotId)).not.toContain("p-zhao-tea");
    expect(lines.flatMap((l) => l.meters.map((m) => m.meterId))).not.toContain("m-house");
  });

  it("converts a metered pump's energy to water (以电折水) and keeps it on the line", () => {
    expect(lines.find((l) => l.plotId === "p-chen")).toMatchObject({ waterLitres: 45_000, eligibleWh: 150_000, eligibleChargedFen: 7_925, capWh: 250_000, grainMilliMu: 2_500 });
  });

  it("totals only what is payable: the clean line until the committee decides the flagged ones", () => {
    expect(statementTotalFen(lines)).toBe(3_963);
  });

  it("says which days a meter was not read", () => {
    expect(lines.find((l) => l.plotId === "p-zhou")?.flags[0]?.detail).toBe("m-zhou was not read on 11 day(s) of the season");
  });
});

describe("settle, one rule at a time", () => {
  const one = (policy: SubsidyPolicy, use: Record<string, readonly [number, number, number?]>, extra: Partial<SettlementUsage> = {}, period = PERIOD): StatementLine | undefined =>
    settle(policy, period, {
      households: [{ householdId: "h", name: "陈德伯" }],
      plots: [{ plotId: "p", householdId: "h", areaMilliMu: 2_000, crops: [{ effectiveFromMs: 0, crop: "wheat" }] }],
      meters: [{ meterId: "m", householdId: "h", plotId: "p", litresPerKwh: 1_000 }],
      usage: new Map([["m", dailyReads("m", use, period.fromDay, period.toDay)]]),
      flags: new Map(),
      alreadyRefunded: new Set(),
      ...extra,
    })[0];

  it("pays an amount per kWh, rounded half up: 150.005 kWh at ¥0.30 is 4500.15 fen → 4500", () => {
    expect(one(withPolicy({ refund: { kind: "per-kwh", centiFenPerKwh: 3_000 } }), { "2026-05-12": [150_005, 7_925] })?.proposedRefundFen).toBe(4_500);
  });

  it("never refunds more than was paid, even when the per-kWh rate is above the price", () => {
    expect(one(withPolicy({ refund: { kind: "per-kwh", centiFenPerKwh: 90_000 } }), { "2026-05-12": [150_000, 7_925] })?.proposedRefundFen).toBe(7_925);
  });

  it("flags use outside the season when the period is wider, and does not pay it", () => {
    const line = one(POLICY, { "2026-05-05": [10_000, 528], "2026-05-12": [10_000, 528] }, {}, { ...PERIOD, fromDay: "2026-05-01" });
    expect(line).toMatchObject({ status: "flagged", outsideSeasonWh: 10_000, eligibleWh: 10_000, proposedRefundFen: 264, flags: [{ code: "outside-season" }] });
  });

  it("flags a household × plot already refunded this season and proposes nothing", () => {
    expect(one(POLICY, { "2026-05-12": [10_000, 528] }, { alreadyRefunded: new Set(["h/p"]) })).toMatchObject({ proposedRefundFen: 0, maxRefundFen: 0, flags: [{ code: "already-refunded" }] });
  });

  it("flags a bypass and an offline stretch from the meter's events", () => {
    const flags = new Map<string, MeterFlag[]>([
      ["m", [
        { meterId: "m", kind: "bypass", atMs: sh("2026-05-13T01:00:00"), detail: "bypass_suspected: current without register movement" },
        { meterId: "m", kind: "offline", atMs: sh("2026-05-14T01:00:00"), untilMs: sh("2026-05-14T09:00:00"), detail: "no answer" },
      ]],
    ]);
    expect(one(POLICY, { "2026-05-12": [10_000, 528] }, { flags })?.flags.map((f) => f.code)).toEqual(["bypass", "meter-offline"]);
  });

  it("flags water above the quota: 130 kWh × 1000 L/kWh = 130 m³ > 60 m³/mu × 2 mu", () => {
    expect(one(POLICY, { "2026-05-12": [130_000, 6_868] })?.flags.map((f) => f.code)).toEqual(["above-water-quota"]);
  });

  it("lets rice be irrigated at night without a flag", () => {
    const rice = { plots: [{ plotId: "p", householdId: "h", areaMilliMu: 2_000, crops: [{ effectiveFromMs: 0, crop: "rice" }] }] };
    expect(one(POLICY, { "2026-05-12": [10_000, 528, 10_000] }, rice)?.status).toBe("payable");
  });

  it("refuses a season the policy does not have", () => {
    expect(() => one(POLICY, {}, {}, { ...PERIOD, seasonId: "2027-late" })).toThrow(/no season 2027-late/);
  });
});

describe("settle, for any village", () => {
  const arbitraryVillage = fc
    .record({
      share: fc.boolean(),
      rate: fc.integer({ min: 1, max: 10_000 }),
      capWhPerMu: fc.integer({ min: 0, max: 400_000 }),
      plots: fc.array(
        fc.record({
          areaMilliMu: fc.integer({ min: 1, max: 20_000 }),
          grain: fc.boolean(),
          use: fc.array(fc.tuple(fc.integer({ min: 0, max: 21 }), fc.integer({ min: 0, max: 300_000 }), fc.integer({ min: 0, max: 100_000 })), { maxLength: 8 }),
        }),
        { minLength: 1, maxLength: 8 },
      ),
    })
    .map(({ share, rate, capWhPerMu, plots }) => {
      const policy = withPolicy({ refund: share ? { kind: "share", shareBp: rate } : { kind: "per-kwh", centiFenPerKwh: rate * 10 }, capWhPerMu });
      const usage: SettlementUsage = {
        households: plots.map((_, i) => ({ householdId: `h${i}`, name: "某某某" })),
        plots: plots.map((p, i) => ({ plotId: `p${i}`, householdId: `h${i}`, areaMilliMu: p.areaMilliMu, crops: [{ effectiveFromMs: 0, crop: p.grain ? "rice" : "tea" }, { effectiveFromMs: sh("2026-05-20T00:00:00"), crop: "rice" }] })),
        meters: plots.map((_, i) => ({ meterId: `m${i}`, householdId: `h${i}`, plotId: `p${i}` })),
        usage: new Map(
          plots.map((p, i) => {
            const use: Record<string, [number, number]> = {};
            for (const [d, wh, fen] of p.use) use[addDays(SEASON.fromDay, d)] = [wh, fen];
            return [`m${i}`, dailyReads(`m${i}`, use)];
          }),
        ),
        flags: new Map(),
        alreadyRefunded: new Set(),
      };
      return { policy, usage };
    });

  it("never refunds more than was paid for the eligible kWh, nor more than the rate on the cap", () => {
    fc.assert(
      fc.property(arbitraryVillage, ({ policy, usage }) => {
        for (const l of settle(policy, PERIOD, usage)) {
          expect(l.refundableWh).toBeLessThanOrEqual(l.capWh);
          expect(l.proposedRefundFen).toBeLessThanOrEqual(l.eligibleChargedFen);
          expect(l.refundFen).toBeLessThanOrEqual(l.proposedRefundFen);
          expect(l.maxRefundFen).toBeLessThanOrEqual(l.chargedFen);
          const rate = policy.policy.refund;
          const capFen = rate.kind === "per-kwh" ? Math.floor((rate.centiFenPerKwh * l.capWh) / 100_000) + 1 : l.eligibleChargedFen;
          expect(l.proposedRefundFen).toBeLessThanOrEqual(capFen);
        }
      }),
    );
  });

  it("adds the lines up to the statement total, and gives the same lines when settled twice or from summed runs", () => {
    fc.assert(
      fc.property(arbitraryVillage, ({ policy, usage }) => {
        const lines = settle(policy, PERIOD, usage);
        expect(statementTotalFen(lines)).toBe(lines.reduce((s, l) => s + l.refundFen, 0));
        expect(lines.map((l) => l.lineNo)).toEqual(lines.map((_, i) => i + 1));
        expect(settle(policy, PERIOD, usage)).toEqual(lines);
        for (const l of lines) expect(l.energyWh).toBe(l.eligibleWh + l.nonGrainWh + l.outsideSeasonWh);
        const boundaries = runBoundaries(policy, PERIOD, usage.plots);
        const runs = new Map([...usage.usage].map(([id, u]) => [id, mergeRuns(u, PERIOD.fromDay, PERIOD.toDay, boundaries)]));
        expect(settle(policy, PERIOD, { ...usage, usage: runs })).toEqual(lines);
      }),
    );
  });

  it("counts every day of the season exactly once", () => {
    expect(daysBetweenInclusive(SEASON.fromDay, SEASON.toDay)).toBe(22);
  });
});

/** What a usage source does with boundaries: merge one meter's day runs into runs cut at each boundary. */
function mergeRuns(u: MeterUsage, fromDay: string, toDay: string, boundaries: readonly string[]): MeterUsage {
  const edges = [fromDay, ...boundaries, addDays(toDay, 1)];
  const runs: UsageRun[] = [];
  for (let i = 0; i + 1 < edges.length; i++) {
    const [from, next] = [edges[i] ?? fromDay, edges[i + 1] ?? toDay];
    const inside = u.runs.filter((r) => r.fromDay >= from && r.fromDay < next);
    if (inside.length === 0) continue;
    const sum = (k: "energyWh" | "chargedFen" | "nightWh" | "daysRead"): number => inside.reduce((n, r) => n + r[k], 0);
    runs.push({ fromDay: from, toDay: addDays(next, -1), firstReadDay: inside[0]?.firstReadDay ?? from, daysRead: sum("daysRead"), energyWh: sum("energyWh"), chargedFen: sum("chargedFen"), nightWh: sum("nightWh") });
  }
  return { ...u, runs };
}

describe("settle over runs of days", () => {
  const merged = (usage: SettlementUsage): SettlementUsage => {
    const boundaries = runBoundaries(POLICY, PERIOD, usage.plots);
    return { ...usage, usage: new Map([...usage.usage].map(([id, u]) => [id, mergeRuns(u, PERIOD.fromDay, PERIOD.toDay, boundaries)])) };
  };

  it("cuts the period at the season's edges and at each crop change, from the start of the day it counts for", () => {
    const plots = [{ plotId: "p", householdId: "h", areaMilliMu: 1, crops: [{ effectiveFromMs: 0, crop: "rice" }, { effectiveFromMs: sh("2026-05-20T00:00:00"), crop: "tea" }, { effectiveFromMs: sh("2026-05-25T09:00:00"), crop: "rice" }] }];
    expect(runBoundaries(POLICY, { ...PERIOD, fromDay: "2026-05-01", toDay: "2026-06-30" }, plots)).toEqual(["2026-05-10", "2026-05-20", "2026-05-26", "2026-06-01"]);
  });

  it("gives the same lines from the village's day rows and from runs summed at the boundaries", () => {
    expect(settle(POLICY, PERIOD, merged(village()))).toEqual(settle(POLICY, PERIOD, village()));
  });

  it("refuses a run that spans a crop change, since its use could not be told apart", () => {
    const v = village();
    const wrong = new Map(v.usage);
    wrong.set("m-zhao", mergeRuns(v.usage.get("m-zhao") as MeterUsage, PERIOD.fromDay, PERIOD.toDay, []));
    expect(() => settle(POLICY, PERIOD, { ...v, usage: wrong })).toThrow(/spans a boundary/);
  });
});
