// The registry's land and policy tables (migration 2): plots (地块) with their crop history, the plot a meter's pump
// irrigates, and versioned village policies; plus the listings the HTTP API pages through. Kept apart from
// registry.ts so each file owns one concern; registry.ts mixes these methods into the Registry it returns. The row
// shapes, mappers and checks exported here are shared with the PostgreSQL engine (postgres-land.ts).

import type Database from "better-sqlite3";
import { z } from "zod";
import { deviceIdSchema } from "../../protocols/mqtt/messages.js";
import { checkPolicySchedule, policyAt, villagePolicySchema, type VillagePolicy, type VillagePolicyBody } from "../prepaid/village-policy.js";
import { isUniqueViolation } from "../sqlite.js";
import { RegistryError, REGISTRY_ERROR_CODES as C } from "./errors.js";
import { cropFromMsSchema, litresPerKwhSchema, parseInput as parse, recordedBySchema } from "./registry-input.js";

/** A crop code: rice, wheat, maize, tea, seedlings, vegetables … (the subsidy policy says which count as grain). */
export const cropSchema = z.string().regex(/^[a-z][a-z0-9-]{1,31}$/, "a crop is a lowercase code such as rice, wheat, maize, tea");

export const plotInputSchema = z.strictObject({
  plotId: deviceIdSchema,
  householdId: deviceIdSchema,
  name: z.string().min(1).max(200),
  /** Thousandths of a mu: 3.5 mu = 3500. */
  areaMilliMu: z.int().min(1).max(100_000_000),
  crop: cropSchema,
  /** From when the crop grows there (epoch ms); default: the beginning of time. */
  cropFrom: z.int().min(0).default(0),
  latE6: z.int().min(-90_000_000).max(90_000_000).optional(),
  lonE6: z.int().min(-180_000_000).max(180_000_000).optional(),
  recordedBy: z.string().min(1).max(64),
});
export type PlotInput = z.input<typeof plotInputSchema>;

export interface Plot {
  readonly plotId: string;
  readonly householdId: string;
  readonly villageId: string;
  readonly name: string;
  readonly areaMilliMu: number;
  readonly latE6?: number;
  readonly lonE6?: number;
}

export interface CropRecord {
  readonly plotId: string;
  readonly effectiveFromMs: number;
  readonly crop: string;
  readonly recordedBy: string;
}

export interface VillageRow {
  readonly villageId: string;
  readonly name: string;
}

export interface GatewayRow {
  readonly gatewayId: string;
  readonly villageId?: string;
  readonly enabled: boolean;
}

export interface LandMethods {
  getVillage(villageId: string): VillageRow | undefined;
  listVillages(): VillageRow[];
  householdsOfVillage(villageId: string): { householdId: string; villageId: string; name: string; overdraftFen: number }[];
  getGateway(gatewayId: string): GatewayRow | undefined;
  gatewaysOfVillage(villageId: string): GatewayRow[];
  /** Meter ids of a village (through their households), sorted. */
  meterIdsOfVillage(villageId: string): string[];
  addPlot(input: PlotInput): Plot;
  getPlot(plotId: string): Plot | undefined;
  plotsOfHousehold(householdId: string): Plot[];
  plotsOfVillage(villageId: string): Plot[];
  /** Record what grows on a plot from `effectiveFromMs` on (a new row; history is never edited). */
  setPlotCrop(plotId: string, crop: string, effectiveFromMs: number, recordedBy: string): CropRecord;
  cropHistory(plotId: string): CropRecord[];
  /** The crop in force at `atMs`, or undefined before the first record. */
  cropAt(plotId: string, atMs: number): string | undefined;
  /** Bind a meter to the plot its pump irrigates (same household), with the pump's litres per kWh if known. */
  bindMeterToPlot(meterId: string, plotId: string, litresPerKwh?: number): void;
  /** The plot binding of a meter. */
  meterPlot(meterId: string): { plotId?: string; litresPerKwh?: number } | undefined;
  addVillagePolicy(policy: z.input<typeof villagePolicySchema>): VillagePolicy;
  villagePolicies(villageId: string): VillagePolicy[];
  /** The policy body in force at `atMs` (the defaults where none was set). */
  villagePolicyAt(villageId: string, atMs: number): VillagePolicyBody;
}

/** A plot joined with its household's village, as both engines read it. */
export interface PlotRow {
  plot_id: string;
  household_id: string;
  village_id: string;
  name: string;
  area_milli_mu: number;
  lat_e6: number | null;
  lon_e6: number | null;
}

export const PLOT_SELECT = `SELECT p.plot_id, p.household_id, h.village_id, p.name, p.area_milli_mu, p.lat_e6, p.lon_e6
  FROM registry_plots p JOIN registry_households h ON h.household_id = p.household_id`;

export function toPlot(r: PlotRow): Plot {
  return {
    plotId: r.plot_id,
    householdId: r.household_id,
    villageId: r.village_id,
    name: r.name,
    areaMilliMu: r.area_milli_mu,
    ...(r.lat_e6 === null ? {} : { latE6: r.lat_e6 }),
    ...(r.lon_e6 === null ? {} : { lonE6: r.lon_e6 }),
  };
}

export interface CropRow {
  plot_id: string;
  effective_from_ms: number;
  crop: string;
  recorded_by: string;
}

export function toCrop(r: CropRow): CropRecord {
  return { plotId: r.plot_id, effectiveFromMs: r.effective_from_ms, crop: r.crop, recordedBy: r.recorded_by };
}

/** A crop record's fields, checked before any row is written. */
export function checkCrop(crop: string, effectiveFromMs: number, recordedBy: string): void {
  parse(cropSchema, crop, "crop");
  parse(cropFromMsSchema, effectiveFromMs, "crop effectiveFromMs");
  parse(recordedBySchema, recordedBy, "recordedBy");
}

export function cropExists(plotId: string, effectiveFromMs: number): RegistryError {
  return new RegistryError(C.EXISTS, `plot ${plotId} already has a crop from ${new Date(effectiveFromMs).toISOString()}`);
}

export function checkLitresPerKwh(litresPerKwh: number | undefined): void {
  if (litresPerKwh !== undefined) parse(litresPerKwhSchema, litresPerKwh, "litresPerKwh");
}

/** A meter may irrigate only a plot of its own household. */
export function checkMeterPlotHousehold(meterId: string, meterHouseholdId: string, plot: Plot): void {
  if (meterHouseholdId !== plot.householdId) {
    throw new RegistryError(C.INVALID, `meter ${meterId} belongs to household ${meterHouseholdId}, plot ${plot.plotId} to ${plot.householdId}`);
  }
}

export function toMeterPlot(r: { plot_id: string | null; litres_per_kwh: number | null }): { plotId?: string; litresPerKwh?: number } {
  return { ...(r.plot_id === null ? {} : { plotId: r.plot_id }), ...(r.litres_per_kwh === null ? {} : { litresPerKwh: r.litres_per_kwh }) };
}

export interface PolicyRow {
  village_id: string;
  version: number;
  effective_from_ms: number;
  policy_json: string;
}

export function toPolicy(r: PolicyRow): VillagePolicy {
  return parse(villagePolicySchema, { villageId: r.village_id, version: r.version, effectiveFrom: r.effective_from_ms, policy: JSON.parse(r.policy_json) as unknown }, `stored policy ${r.village_id}@v${r.version}`);
}

/** The version `p` may join the village's stored `versions`, or REGISTRY_INVALID_INPUT saying why not. */
export function checkPolicyJoins(versions: readonly VillagePolicy[], p: VillagePolicy): void {
  const problem = checkPolicySchedule([...versions, p]);
  if (problem !== undefined) throw new RegistryError(C.INVALID, `village policy ${p.villageId}@v${p.version}: ${problem}`);
}

export type GatewayListRow = { gateway_id: string; village_id: string | null; enabled: number };

export const toGatewayRow = (r: GatewayListRow): GatewayRow =>
  r.village_id === null ? { gatewayId: r.gateway_id, enabled: r.enabled === 1 } : { gatewayId: r.gateway_id, villageId: r.village_id, enabled: r.enabled === 1 };

export function landMethods(db: Database.Database, now: () => number): LandMethods {
  const q = {
    plot: db.prepare<[string], PlotRow>(`${PLOT_SELECT} WHERE p.plot_id = ?`),
    plotsOfHousehold: db.prepare<[string], PlotRow>(`${PLOT_SELECT} WHERE p.household_id = ? ORDER BY p.plot_id`),
    plotsOfVillage: db.prepare<[string], PlotRow>(`${PLOT_SELECT} WHERE h.village_id = ? ORDER BY p.plot_id`),
    crops: db.prepare<[string], CropRow>(
      "SELECT plot_id, effective_from_ms, crop, recorded_by FROM registry_plot_crops WHERE plot_id = ? ORDER BY effective_from_ms",
    ),
    cropAt: db.prepare<[string, number], { crop: string }>(
      "SELECT crop FROM registry_plot_crops WHERE plot_id = ? AND effective_from_ms <= ? ORDER BY effective_from_ms DESC LIMIT 1",
    ),
    policies: db.prepare<[string], PolicyRow>(
      "SELECT village_id, version, effective_from_ms, policy_json FROM registry_village_policies WHERE village_id = ? ORDER BY version",
    ),
    village: db.prepare<[string], { village_id: string; name: string }>("SELECT village_id, name FROM registry_villages WHERE village_id = ?"),
    gateway: db.prepare<[string], GatewayListRow>(
      "SELECT gateway_id, village_id, enabled FROM registry_gateways WHERE gateway_id = ?",
    ),
  };
  const toGateway = toGatewayRow;

  function requirePlot(plotId: string): Plot {
    const row = q.plot.get(plotId);
    if (row === undefined) throw new RegistryError(C.UNKNOWN, `no plot ${plotId}`);
    return toPlot(row);
  }

  function insertCrop(plotId: string, crop: string, effectiveFromMs: number, recordedBy: string): CropRecord {
    checkCrop(crop, effectiveFromMs, recordedBy);
    try {
      db.prepare("INSERT INTO registry_plot_crops (plot_id, effective_from_ms, crop, recorded_by, created_at_ms) VALUES (?, ?, ?, ?, ?)").run(
        plotId,
        effectiveFromMs,
        crop,
        recordedBy,
        now(),
      );
    } catch (error) {
      if (isUniqueViolation(error)) throw cropExists(plotId, effectiveFromMs);
      throw error;
    }
    return { plotId, effectiveFromMs, crop, recordedBy };
  }

  function policies(villageId: string): VillagePolicy[] {
    return q.policies.all(villageId).map(toPolicy);
  }

  const addPlotTx = db.transaction((p: z.output<typeof plotInputSchema>): void => {
    db.prepare("INSERT INTO registry_plots (plot_id, household_id, name, area_milli_mu, lat_e6, lon_e6, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)").run(
      p.plotId,
      p.householdId,
      p.name,
      p.areaMilliMu,
      p.latE6 ?? null,
      p.lonE6 ?? null,
      now(),
    );
    insertCrop(p.plotId, p.crop, p.cropFrom, p.recordedBy);
  });

  return {
    getVillage(villageId) {
      const r = q.village.get(villageId);
      return r === undefined ? undefined : { villageId: r.village_id, name: r.name };
    },
    listVillages: () =>
      db
        .prepare<[], { village_id: string; name: string }>("SELECT village_id, name FROM registry_villages ORDER BY village_id")
        .all()
        .map((r) => ({ villageId: r.village_id, name: r.name })),
    householdsOfVillage: (villageId) =>
      db
        .prepare<[string], { household_id: string; village_id: string; name: string; overdraft_fen: number }>(
          "SELECT household_id, village_id, name, overdraft_fen FROM registry_households WHERE village_id = ? ORDER BY household_id",
        )
        .all(villageId)
        .map((r) => ({ householdId: r.household_id, villageId: r.village_id, name: r.name, overdraftFen: r.overdraft_fen })),
    getGateway(gatewayId) {
      const r = q.gateway.get(gatewayId);
      return r === undefined ? undefined : toGateway(r);
    },
    gatewaysOfVillage: (villageId) =>
      db
        .prepare<[string], GatewayListRow>(
          "SELECT gateway_id, village_id, enabled FROM registry_gateways WHERE village_id = ? ORDER BY gateway_id",
        )
        .all(villageId)
        .map(toGateway),
    meterIdsOfVillage: (villageId) =>
      db
        .prepare<[string], { meter_id: string }>(
          "SELECT m.meter_id FROM registry_meters m JOIN registry_households h ON h.household_id = m.household_id WHERE h.village_id = ? ORDER BY m.meter_id",
        )
        .all(villageId)
        .map((r) => r.meter_id),
    addPlot(input) {
      const p = parse(plotInputSchema, input, "plot");
      if (db.prepare("SELECT 1 FROM registry_households WHERE household_id = ?").get(p.householdId) === undefined) {
        throw new RegistryError(C.UNKNOWN, `no household ${p.householdId}`);
      }
      try {
        addPlotTx.immediate(p);
      } catch (error) {
        if (isUniqueViolation(error)) throw new RegistryError(C.EXISTS, `plot ${p.plotId} already exists`);
        throw error;
      }
      return requirePlot(p.plotId);
    },
    getPlot(plotId) {
      const r = q.plot.get(plotId);
      return r === undefined ? undefined : toPlot(r);
    },
    plotsOfHousehold: (householdId) => q.plotsOfHousehold.all(householdId).map(toPlot),
    plotsOfVillage: (villageId) => q.plotsOfVillage.all(villageId).map(toPlot),
    setPlotCrop(plotId, crop, effectiveFromMs, recordedBy) {
      requirePlot(plotId);
      return insertCrop(plotId, crop, effectiveFromMs, recordedBy);
    },
    cropHistory: (plotId) => q.crops.all(plotId).map(toCrop),
    cropAt: (plotId, atMs) => q.cropAt.get(plotId, atMs)?.crop,
    bindMeterToPlot(meterId, plotId, litresPerKwh) {
      const plot = requirePlot(plotId);
      checkLitresPerKwh(litresPerKwh);
      const meter = db.prepare<[string], { household_id: string }>("SELECT household_id FROM registry_meters WHERE meter_id = ?").get(meterId);
      if (meter === undefined) throw new RegistryError(C.UNKNOWN, `no meter ${meterId}`);
      checkMeterPlotHousehold(meterId, meter.household_id, plot);
      db.prepare("UPDATE registry_meters SET plot_id = ?, litres_per_kwh = ? WHERE meter_id = ?").run(plotId, litresPerKwh ?? null, meterId);
    },
    meterPlot(meterId) {
      const r = db.prepare<[string], { plot_id: string | null; litres_per_kwh: number | null }>("SELECT plot_id, litres_per_kwh FROM registry_meters WHERE meter_id = ?").get(meterId);
      return r === undefined ? undefined : toMeterPlot(r);
    },
    addVillagePolicy(input) {
      const p = parse(villagePolicySchema, input, "village policy");
      if (q.village.get(p.villageId) === undefined) throw new RegistryError(C.UNKNOWN, `no village ${p.villageId}`);
      checkPolicyJoins(policies(p.villageId), p);
      try {
        db.prepare("INSERT INTO registry_village_policies (village_id, version, effective_from_ms, policy_json, created_at_ms) VALUES (?, ?, ?, ?, ?)").run(
          p.villageId,
          p.version,
          p.effectiveFrom,
          JSON.stringify(p.policy),
          now(),
        );
      } catch (error) {
        if (isUniqueViolation(error)) throw new RegistryError(C.EXISTS, `village policy ${p.villageId}@v${p.version} already exists`);
        throw error;
      }
      return p;
    },
    villagePolicies: policies,
    villagePolicyAt: (villageId, atMs) => policyAt(policies(villageId), atMs),
  };
}
