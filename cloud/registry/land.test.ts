import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashSecret } from "../broker/secrets.js";
import { DEFAULT_VILLAGE_POLICY } from "../prepaid/village-policy.js";
import { REGISTRY_ERROR_CODES as C } from "./errors.js";
import { openRegistry, type Registry } from "./registry.js";

let dir: string;
let registry: Registry;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "land-"));
  registry = openRegistry({ path: join(dir, "cloud.db"), now: () => 1_000 });
  registry.addVillage({ villageId: "v1", name: "Hongmiao" });
  registry.addVillage({ villageId: "v2", name: "Other" });
  registry.addHousehold({ householdId: "h1", villageId: "v1", name: "陈德伯" });
  registry.addHousehold({ householdId: "h2", villageId: "v1", name: "李明" });
  registry.addGateway({ gatewayId: "gw-1", villageId: "v1", secretHash: await hashSecret("s") });
  registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } });
  registry.addMeter({ meterId: "m1", gatewayId: "gw-1", householdId: "h1", tariffId: "flat" });
});

afterEach(() => {
  registry.close();
  rmSync(dir, { recursive: true, force: true });
});

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
};

describe("plots and crops", () => {
  it("stores a plot with its area in thousandths of a mu and lists it by household and village", () => {
    const plot = registry.addPlot({ plotId: "p1", householdId: "h1", name: "东田", areaMilliMu: 3500, crop: "rice", recordedBy: "officer-1", latE6: 30_123_456, lonE6: 120_654_321 });
    expect(plot).toEqual({ plotId: "p1", householdId: "h1", villageId: "v1", name: "东田", areaMilliMu: 3500, latE6: 30_123_456, lonE6: 120_654_321 });
    expect(registry.plotsOfHousehold("h1").map((p) => p.plotId)).toEqual(["p1"]);
    expect(registry.plotsOfVillage("v1").map((p) => p.plotId)).toEqual(["p1"]);
    expect(registry.plotsOfVillage("v2")).toEqual([]);
  });

  it("refuses a plot of an unknown household, a duplicate id, a fractional area and a crop that is not a code", () => {
    expect(code(() => registry.addPlot({ plotId: "p1", householdId: "nobody", name: "x", areaMilliMu: 1, crop: "rice", recordedBy: "o" }))).toBe(C.UNKNOWN);
    registry.addPlot({ plotId: "p1", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "rice", recordedBy: "o" });
    expect(code(() => registry.addPlot({ plotId: "p1", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "rice", recordedBy: "o" }))).toBe(C.EXISTS);
    expect(code(() => registry.addPlot({ plotId: "p2", householdId: "h1", name: "x", areaMilliMu: 1.5, crop: "rice", recordedBy: "o" }))).toBe(C.INVALID);
    expect(code(() => registry.addPlot({ plotId: "p3", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "Rice; DROP", recordedBy: "o" }))).toBe(C.INVALID);
    expect(registry.getPlot("p2")).toBeUndefined();
  });

  it("keeps the crop as a history and answers which crop grew at a given time", () => {
    registry.addPlot({ plotId: "p1", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "seedlings", cropFrom: 100, recordedBy: "o" });
    registry.setPlotCrop("p1", "rice", 5_000, "officer-2");
    expect(registry.cropAt("p1", 50)).toBeUndefined();
    expect(registry.cropAt("p1", 4_999)).toBe("seedlings");
    expect(registry.cropAt("p1", 5_000)).toBe("rice");
    expect(registry.cropHistory("p1").map((c) => [c.crop, c.recordedBy])).toEqual([
      ["seedlings", "o"],
      ["rice", "officer-2"],
    ]);
    expect(code(() => registry.setPlotCrop("p1", "wheat", 5_000, "o"))).toBe(C.EXISTS);
  });

  it("binds a meter only to a plot of the meter's own household", () => {
    registry.addPlot({ plotId: "p1", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "rice", recordedBy: "o" });
    registry.addPlot({ plotId: "p2", householdId: "h2", name: "y", areaMilliMu: 1000, crop: "rice", recordedBy: "o" });
    expect(code(() => registry.bindMeterToPlot("m1", "p2"))).toBe(C.INVALID);
    registry.bindMeterToPlot("m1", "p1", 18_000);
    expect(registry.meterPlot("m1")).toEqual({ plotId: "p1", litresPerKwh: 18_000 });
    expect(registry.meterIdsOfVillage("v1")).toEqual(["m1"]);
  });
});

describe("village policies", () => {
  it("applies the defaults until a version takes effect, then the version in force at each time", () => {
    expect(registry.villagePolicyAt("v1", 0)).toEqual(DEFAULT_VILLAGE_POLICY);
    registry.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 1_000, policy: { maxBalanceFen: 500_000, friendlyPeriods: [{ from: "22:00", to: "06:00" }] } });
    registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: 2_000, policy: { maxBalanceFen: 300_000, maxOverdraftFen: 2_000 } });
    expect(registry.villagePolicyAt("v1", 999).maxBalanceFen).toBe(DEFAULT_VILLAGE_POLICY.maxBalanceFen);
    expect(registry.villagePolicyAt("v1", 1_500)).toMatchObject({ maxBalanceFen: 500_000, friendlyPeriods: [{ from: "22:00", to: "06:00" }] });
    expect(registry.villagePolicyAt("v1", 2_000)).toMatchObject({ maxBalanceFen: 300_000, maxOverdraftFen: 2_000, friendlyPeriods: [] });
    expect(registry.villagePolicyAt("v2", 2_000)).toEqual(DEFAULT_VILLAGE_POLICY);
  });

  it("refuses a version gap, a version that takes effect before its predecessor, and stage 2 above stage 1", () => {
    expect(code(() => registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: 1, policy: {} }))).toBe(C.INVALID);
    registry.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 1_000, policy: {} });
    expect(code(() => registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: 500, policy: {} }))).toBe(C.INVALID);
    expect(code(() => registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: 2_000, policy: { lowCredit: { stage1Fen: 100, stage2Fen: 200 } } }))).toBe(C.INVALID);
    expect(code(() => registry.addVillagePolicy({ villageId: "nowhere", version: 1, effectiveFrom: 0, policy: {} }))).toBe(C.UNKNOWN);
  });
});

describe("meters on their gateway's bus", () => {
  it("records a meter's Modbus unit, profile and relay binding and reads them back", () => {
    registry.addMeter({ meterId: "m2", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", unitId: 3, profileId: "eastron-sdm630-v2", relay: { kind: "contactor", deviceId: "relay-board-1", channel: 2 } });
    expect(registry.getMeter("m2")).toMatchObject({ unitId: 3, profileId: "eastron-sdm630-v2", relay: { kind: "contactor", deviceId: "relay-board-1", channel: 2 } });
    registry.addMeter({ meterId: "m3", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", relay: { kind: "meter-relay" } });
    expect(registry.getMeter("m3")).toEqual({ meterId: "m3", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", reconnect: "automatic", relay: { kind: "meter-relay" } });
  });

  it("refuses unit 0 or 248, a fire sensor's profile for a meter, and a contactor without a channel", () => {
    const add = (more: Record<string, unknown>): string | undefined => code(() => registry.addMeter({ meterId: "mx", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", ...more }));
    expect(add({ unitId: 0 })).toBe(C.INVALID);
    expect(add({ unitId: 248 })).toBe(C.INVALID);
    expect(add({ profileId: "agri-fire-node" })).toBe(C.INVALID);
    expect(add({ relay: { kind: "contactor", deviceId: "relay-board-1" } })).toBe(C.INVALID);
    expect(registry.getMeter("mx")).toBeUndefined();
    // A profile the cloud does not ship (an edge's --profile-file) is recorded as given.
    expect(add({ profileId: "acme-custom-meter" })).toBeUndefined();
  });
});

