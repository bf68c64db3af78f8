import { describe, expect, it } from "vitest";
import { creditGrantSchema } from "../../protocols/mqtt/messages.js";
import { energyCostFen } from "../../protocols/units.js";
import { warnAtWhFor } from "../ledger/grants.js";
import type { Tariff } from "../ledger/tariff.js";
import { decideGrant, nextGrant, outstandingGrantFen } from "./next-grant.js";

const flat: Tariff[] = [{ tariffId: "t", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } }];
const base = { meterId: "pump-1", overdraftFen: 0, registerWh: 500_000, tariffs: flat, nowMs: 1_000, reconnect: "automatic" as const };

describe("nextGrant", () => {
  it("grants what the balance buys at the highest price, rounded down, on the meter's own register", () => {
    expect(nextGrant({ ...base, balanceFen: 100 })).toEqual({ type: "credit.grant", meterId: "pump-1", grantSeq: 1, limitWh: 500_000 + Math.floor(10_000_000 / 5283), reconnect: "automatic" });
  });

  it("never grants energy whose charge exceeds balance plus overdraft", () => {
    for (const balanceFen of [1, 7, 55, 999, 12_345]) {
      const grant = nextGrant({ ...base, balanceFen, overdraftFen: 20 });
      const cost = energyCostFen(5283, (grant?.limitWh ?? 0) - base.registerWh, "half-up").fen;
      expect(cost).toBeLessThanOrEqual(balanceFen + 20);
    }
  });

  it("grants nothing beyond the register when the balance is spent", () => {
    expect(nextGrant({ ...base, balanceFen: -3 })?.limitWh).toBe(500_000);
  });

  it("holds back the cut reserve and what the household's other meters were promised", () => {
    expect(nextGrant({ ...base, balanceFen: 100, cutReserveFen: 10, otherGrantsFen: 40 })?.limitWh).toBe(500_000 + Math.floor(5_000_000 / 5283));
  });

  it("sends nothing while the limit only drifts with rounding, and a rising sequence when it moves", () => {
    const last = { grantSeq: 4, limitWh: 501_000 };
    const drift = decideGrant({ ...base, registerWh: 500_990, balanceFen: 0, overdraftFen: 1, lastGrant: last });
    expect(drift).toMatchObject({ send: false, reason: "unchanged" });
    expect(nextGrant({ ...base, registerWh: 500_990, balanceFen: 500, lastGrant: last })?.grantSeq).toBe(5);
    // A lower limit (a debit from elsewhere) is sent too.
    expect(nextGrant({ ...base, registerWh: 500_000, balanceFen: 10, lastGrant: last })).toMatchObject({ grantSeq: 5, limitWh: 500_000 + Math.floor(1_000_000 / 5283) });
  });

  it("carries the village's friendly periods and re-sends an unchanged limit when the periods change", () => {
    const night = [{ from: "22:00", to: "06:00" }];
    const first = nextGrant({ ...base, balanceFen: 100, friendlyPeriods: night });
    expect(first?.friendlyPeriods).toEqual(night);
    const inForce = { grantSeq: 1, limitWh: first?.limitWh ?? 0, friendlyPeriods: night };
    expect(decideGrant({ ...base, balanceFen: 100, friendlyPeriods: night, lastGrant: inForce })).toMatchObject({ send: false, reason: "unchanged" });
    const cleared = decideGrant({ ...base, balanceFen: 100, friendlyPeriods: [], lastGrant: inForce });
    expect(cleared).toMatchObject({ send: true, grant: { grantSeq: 2, limitWh: first?.limitWh } });
    expect(cleared.send && "friendlyPeriods" in cleared.grant).toBe(false);
  });

  it("carries the village's low-credit stages as warnAtWh at the price the limit was sized with, overdraft included", () => {
    const lowCredit = { stage1Fen: 2_000, stage2Fen: 500 };
    const grant = nextGrant({ ...base, balanceFen: 100, overdraftFen: 1_000, lowCredit });
    // (2000 + 1000) fen and (500 + 1000) fen at 52.83 fen/kWh, rounded down.
    expect(grant?.warnAtWh).toEqual([Math.floor(300_000_000 / 5283), Math.floor(150_000_000 / 5283)]);
    expect(grant?.warnAtWh).toEqual(warnAtWhFor(lowCredit, 1_000, 5283));
    const rising: Tariff[] = [...flat, { tariffId: "t", version: 2, effectiveFrom: 5_000, prices: { kind: "flat", priceCentiFenPerKwh: 6000 } }];
    expect(nextGrant({ ...base, balanceFen: 100, tariffs: rising, lowCredit })?.warnAtWh).toEqual(warnAtWhFor(lowCredit, 0, 6000));
  });

  it("re-sends an unchanged limit when the low-credit stages change, and not while they stay", () => {
    const lowCredit = { stage1Fen: 2_000, stage2Fen: 500 };
    const first = nextGrant({ ...base, balanceFen: 100, lowCredit });
    const inForce = { grantSeq: 1, limitWh: first?.limitWh ?? 0, warnAtWh: first?.warnAtWh };
    expect(decideGrant({ ...base, balanceFen: 100, lowCredit, lastGrant: inForce })).toEqual({ send: false, reason: "unchanged", limitWh: inForce.limitWh, warnAtWh: first?.warnAtWh });
    const raised = decideGrant({ ...base, balanceFen: 100, lowCredit: { stage1Fen: 3_000, stage2Fen: 500 }, lastGrant: inForce });
    expect(raised).toMatchObject({ send: true, grant: { grantSeq: 2, limitWh: inForce.limitWh, warnAtWh: warnAtWhFor({ stage1Fen: 3_000, stage2Fen: 500 }, 0, 5283) } });
    const dropped = decideGrant({ ...base, balanceFen: 100, lastGrant: inForce });
    expect(dropped.send && "warnAtWh" in dropped.grant).toBe(false);
    expect(dropped).toMatchObject({ send: true, grant: { grantSeq: 2 } });
  });

  it("sends a grant with warning stages that the protocol's strict schema accepts", () => {
    const grant = nextGrant({ ...base, balanceFen: 100, overdraftFen: 300, lowCredit: { stage1Fen: 2_000, stage2Fen: 500 }, friendlyPeriods: [{ from: "22:00", to: "06:00" }] });
    expect(creditGrantSchema.safeParse(grant).success).toBe(true);
  });

  it("grants nothing when no tariff is in force or scheduled", () => {
    expect(decideGrant({ ...base, balanceFen: 100, tariffs: [] })).toEqual({ send: false, reason: "no-tariff" });
  });

  it("sizes with the highest price of a later version already scheduled", () => {
    const rising: Tariff[] = [...flat, { tariffId: "t", version: 2, effectiveFrom: 5_000, prices: { kind: "flat", priceCentiFenPerKwh: 6000 } }];
    // Two segments: one fen of rounding reserve.
    expect(nextGrant({ ...base, balanceFen: 100, tariffs: rising })?.limitWh).toBe(500_000 + Math.floor(9_900_000 / 6000));
  });
});

describe("outstandingGrantFen", () => {
  it("prices the remaining Wh at the highest price, rounded up, and is 0 past the limit", () => {
    expect(outstandingGrantFen(501_000, 500_000, flat, 0)).toBe(energyCostFen(5283, 1000, "ceil").fen);
    expect(outstandingGrantFen(500_000, 500_010, flat, 0)).toBe(0);
  });
});
