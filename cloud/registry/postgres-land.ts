// The land and policy half of the PostgreSQL registry (the SQLite half is land.ts): plots with their crop history,
// the plot a meter's pump irrigates, versioned village policies, and the listings the HTTP API pages through. Same
// checks and row mappers as land.ts (imported from it), so both engines answer alike. Text ordering is COLLATE "C":
// byte order, as SQLite sorts, whatever locale the database was created with.
//
// Atomic: addPlot writes the plot and its first crop in one transaction (a plot never exists without a crop);
// addVillagePolicy locks the village's row (SELECT … FOR UPDATE) before reading the stored versions, so two
// publishers of one village's next version are serialised and the schedule check sees what it inserts into.

import type pg from "pg";
import { policyAt, villagePolicySchema } from "../prepaid/village-policy.js";
import { inTransaction } from "../postgres.js";
import { RegistryError, REGISTRY_ERROR_CODES as C } from "./errors.js";
import {
  checkCrop,
  checkLitresPerKwh,
  checkMeterPlotHousehold,
  checkPolicyJoins,
  cropExists,
  PLOT_SELECT,
  plotInputSchema,
  toCrop,
  toGatewayRow,
  toMeterPlot,
  toPlot,
  toPolicy,
  type CropRecord,
  type CropRow,
  type GatewayListRow,
  type LandMethods,
  type Plot,
  type PlotRow,
  type PolicyRow,
} from "./land.js";
import type { Promised } from "./registry.js";
import { parseInput as parse } from "./registry-input.js";
import { firstRow, rows, translateWriteError, write, type Queryable } from "./postgres-session.js";

const GATEWAY_COLUMNS = "gateway_id, village_id, CASE WHEN enabled THEN 1 ELSE 0 END AS enabled";

export function postgresLandMethods(pool: pg.Pool, now: () => number): Promised<LandMethods> {
  async function plotIn(db: Queryable, plotId: string): Promise<Plot | undefined> {
    const r = await firstRow<PlotRow>(db, `${PLOT_SELECT} WHERE p.plot_id = $1`, [plotId]);
    return r === undefined ? undefined : toPlot(r);
  }

  async function requirePlot(plotId: string): Promise<Plot> {
    const plot = await plotIn(pool, plotId);
    if (plot === undefined) throw new RegistryError(C.UNKNOWN, `no plot ${plotId}`);
    return plot;
  }

  async function insertCrop(db: Queryable, plotId: string, crop: string, effectiveFromMs: number, recordedBy: string): Promise<CropRecord> {
    checkCrop(crop, effectiveFromMs, recordedBy);
    try {
      await db.query("INSERT INTO registry_plot_crops (plot_id, effective_from_ms, crop, recorded_by, created_at_ms) VALUES ($1, $2, $3, $4, $5)", [
        plotId,
        effectiveFromMs,
        crop,
        recordedBy,
        now(),
      ]);
    } catch (error) {
      const translated = translateWriteError(error, `crop of plot ${plotId}`);
      throw translated instanceof RegistryError && translated.code === C.EXISTS ? cropExists(plotId, effectiveFromMs) : translated;
    }
    return { plotId, effectiveFromMs, crop, recordedBy };
  }

  async function policiesIn(db: Queryable, villageId: string) {
    const found = await rows<PolicyRow>(db, "SELECT village_id, version, effective_from_ms, policy_json FROM registry_village_policies WHERE village_id = $1 ORDER BY version", [villageId]);
    return found.map(toPolicy);
  }

  return {
    async getVillage(villageId) {
      const r = await firstRow<{ village_id: string; name: string }>(pool, "SELECT village_id, name FROM registry_villages WHERE village_id = $1", [villageId]);
      return r === undefined ? undefined : { villageId: r.village_id, name: r.name };
    },
    async listVillages() {
      const found = await rows<{ village_id: string; name: string }>(pool, 'SELECT village_id, name FROM registry_villages ORDER BY village_id COLLATE "C"');
      return found.map((r) => ({ villageId: r.village_id, name: r.name }));
    },
    async householdsOfVillage(villageId) {
      const found = await rows<{ household_id: string; village_id: string; name: string; overdraft_fen: number }>(
        pool,
        'SELECT household_id, village_id, name, overdraft_fen FROM registry_households WHERE village_id = $1 ORDER BY household_id COLLATE "C"',
        [villageId],
      );
      return found.map((r) => ({ householdId: r.household_id, villageId: r.village_id, name: r.name, overdraftFen: r.overdraft_fen }));
    },
    async getGateway(gatewayId) {
      const r = await firstRow<GatewayListRow>(pool, `SELECT ${GATEWAY_COLUMNS} FROM registry_gateways WHERE gateway_id = $1`, [gatewayId]);
      return r === undefined ? undefined : toGatewayRow(r);
    },
    async gatewaysOfVillage(villageId) {
      return (await rows<GatewayListRow>(pool, `SELECT ${GATEWAY_COLUMNS} FROM registry_gateways WHERE village_id = $1 ORDER BY gateway_id COLLATE "C"`, [villageId])).map(toGatewayRow);
    },
    async meterIdsOfVillage(villageId) {
      const found = await rows<{ meter_id: string }>(
        pool,
        'SELECT m.meter_id FROM registry_meters m JOIN registry_households h ON h.household_id = m.household_id WHERE h.village_id = $1 ORDER BY m.meter_id COLLATE "C"',
        [villageId],
      );
      return found.map((r) => r.meter_id);
    },
    async addPlot(input) {
      const p = parse(plotInputSchema, input, "plot");
      return inTransaction(pool, async (client) => {
        if ((await firstRow(client, "SELECT 1 FROM registry_households WHERE household_id = $1", [p.householdId])) === undefined) {
          throw new RegistryError(C.UNKNOWN, `no household ${p.householdId}`);
        }
        await write(`plot ${p.plotId}`, () =>
          client.query("INSERT INTO registry_plots (plot_id, household_id, name, area_milli_mu, lat_e6, lon_e6, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)", [
            p.plotId,
            p.householdId,
            p.name,
            p.areaMilliMu,
            p.latE6 ?? null,
            p.lonE6 ?? null,
            now(),
          ]),
        );
        await insertCrop(client, p.plotId, p.crop, p.cropFrom, p.recordedBy);
        const plot = await plotIn(client, p.plotId);
        if (plot === undefined) throw new RegistryError(C.UNKNOWN, `plot ${p.plotId} vanished after insert`);
        return plot;
      });
    },
    getPlot: (plotId) => plotIn(pool, plotId),
    async plotsOfHousehold(householdId) {
      return (await rows<PlotRow>(pool, `${PLOT_SELECT} WHERE p.household_id = $1 ORDER BY p.plot_id COLLATE "C"`, [householdId])).map(toPlot);
    },
    async plotsOfVillage(villageId) {
      return (await rows<PlotRow>(pool, `${PLOT_SELECT} WHERE h.village_id = $1 ORDER BY p.plot_id COLLATE "C"`, [villageId])).map(toPlot);
    },
    async setPlotCrop(plotId, crop, effectiveFromMs, recordedBy) {
      await requirePlot(plotId);
      return insertCrop(pool, plotId, crop, effectiveFromMs, recordedBy);
    },
    async cropHistory(plotId) {
      const found = await rows<CropRow>(pool, "SELECT plot_id, effective_from_ms, crop, recorded_by FROM registry_plot_crops WHERE plot_id = $1 ORDER BY effective_from_ms", [plotId]);
      return found.map(toCrop);
    },
    async cropAt(plotId, atMs) {
      const r = await firstRow<{ crop: string }>(
        pool,
        "SELECT crop FROM registry_plot_crops WHERE plot_id = $1 AND effective_from_ms <= $2 ORDER BY effective_from_ms DESC LIMIT 1",
        [plotId, atMs],
      );
      return r?.crop;
    },
    async bindMeterToPlot(meterId, plotId, litresPerKwh) {
      const plot = await requirePlot(plotId);
      checkLitresPerKwh(litresPerKwh);
      const meter = await firstRow<{ household_id: string }>(pool, "SELECT household_id FROM registry_meters WHERE meter_id = $1", [meterId]);
      if (meter === undefined) throw new RegistryError(C.UNKNOWN, `no meter ${meterId}`);
      checkMeterPlotHousehold(meterId, meter.household_id, plot);
      await pool.query("UPDATE registry_meters SET plot_id = $1, litres_per_kwh = $2 WHERE meter_id = $3", [plotId, litresPerKwh ?? null, meterId]);
    },
    async meterPlot(meterId) {
      const r = await firstRow<{ plot_id: string | null; litres_per_kwh: number | null }>(pool, "SELECT plot_id, litres_per_kwh FROM registry_meters WHERE meter_id = $1", [meterId]);
      return r === undefined ? undefined : toMeterPlot(r);
    },
    async addVillagePolicy(input) {
      const p = parse(villagePolicySchema, input, "village policy");
      return inTransaction(pool, async (client) => {
        if ((await firstRow(client, "SELECT 1 FROM registry_villages WHERE village_id = $1 FOR UPDATE", [p.villageId])) === undefined) {
          throw new RegistryError(C.UNKNOWN, `no village ${p.villageId}`);
        }
        checkPolicyJoins(await policiesIn(client, p.villageId), p);
        await write(`village policy ${p.villageId}@v${p.version}`, () =>
          client.query("INSERT INTO registry_village_policies (village_id, version, effective_from_ms, policy_json, created_at_ms) VALUES ($1, $2, $3, $4, $5)", [
            p.villageId,
            p.version,
            p.effectiveFrom,
            JSON.stringify(p.policy),
            now(),
          ]),
        );
        return p;
      });
    },
    villagePolicies: (villageId) => policiesIn(pool, villageId),
    villagePolicyAt: async (villageId, atMs) => policyAt(await policiesIn(pool, villageId), atMs),
  };
}
