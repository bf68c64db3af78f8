// kWh per day for statements, pure: Asia/Shanghai days, the register's hourly buckets (gaps counted on the day the
// energy was drawn, a register that went backwards never negative), and the charge postings' memos as the fallback.

import { describe, expect, it } from "vitest";
import { chargeMemoEnergy, dailyEnergyFromCharges, dailyEnergyFromRegister, shanghaiDay } from "../../cloud/api/routes/daily-energy.js";
import { chargeEntry } from "../../cloud/ledger/store/charge-entries.js";

const HOUR_MS = 3_600_000;
const T0 = Date.UTC(2026, 10, 1); // 2026-11-01T00:00Z = 08:00 in Shanghai

describe("daily energy", () => {
  it("names Shanghai days, which begin at 16:00 UTC", () => {
    expect(shanghaiDay(T0 + 15 * HOUR_MS + 59 * 60_000)).toBe("2026-11-01");
    expect(shanghaiDay(T0 + 16 * HOUR_MS)).toBe("2026-11-02");
  });

  it("counts a register that went backwards (a replaced meter) as 0, never negative", () => {
    const buckets = [
      { atMs: T0, firstWh: 1_000, lastWh: 2_000 },
      { atMs: T0 + HOUR_MS, firstWh: 50, lastWh: 300 },
    ];
    expect(dailyEnergyFromRegister(buckets, T0, T0 + 2 * HOUR_MS)).toEqual([{ day: "2026-11-01", energyWh: 1_000 + 250 }]);
  });

  it("uses buckets before the range as the baseline only", () => {
    const buckets = [
      { atMs: T0 - HOUR_MS, firstWh: 0, lastWh: 900 },
      { atMs: T0, firstWh: 1_000, lastWh: 1_500 },
    ];
    expect(dailyEnergyFromRegister(buckets, T0, T0 + HOUR_MS)).toEqual([{ day: "2026-11-01", energyWh: 100 + 500 }]);
  });

  it("reads meter and energy back from the memo charge-entries.ts writes, and sums them by day", () => {
    const posting = { kind: "charge" as const, idempotencyKey: "charge/pump-li/7", meterId: "pump-li", registerSeq: 7, atMs: T0, epoch: 0, segmentKey: "t1@v1/flat", priceCentiFenPerKwh: 5283, energyWh: 1_234, amountFen: 65, segmentEnergyWh: 1_234, segmentChargedFen: 65 };
    const entry = chargeEntry(posting, { householdAccountId: "h", revenueAccountId: "r" });
    expect(chargeMemoEnergy(entry.memo)).toEqual({ meterId: "pump-li", energyWh: 1_234 });
    const entries = [entry, { ...entry, atMs: T0 + HOUR_MS }, { ...entry, atMs: T0 + 20 * HOUR_MS }, { ...entry, memo: "cash top-up", kind: "top-up" }];
    expect(dailyEnergyFromCharges(entries, "pump-li")).toEqual([
      { day: "2026-11-01", energyWh: 2_468 },
      { day: "2026-11-02", energyWh: 1_234 },
    ]);
    expect(dailyEnergyFromCharges(entries, "pump-wang")).toEqual([]);
  });
});
