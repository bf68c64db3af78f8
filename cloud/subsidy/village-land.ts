// The VillageLand port: what settlement needs from the registry about one village — its households (names for the
// notice), its plots with their crop histories, and its meters with the plot each one's pump irrigates. An adapter
// over the registry is below; the bench feeds a generated county through the same port.

import type { Registry } from "../registry/registry.js";
import type { SettlementHousehold, SettlementMeter, SettlementPlot } from "./settle.js";

export interface VillageLand {
  villageName(villageId: string): Promise<string | undefined>;
  households(villageId: string): Promise<SettlementHousehold[]>;
  plots(villageId: string): Promise<SettlementPlot[]>;
  meters(villageId: string): Promise<SettlementMeter[]>;
  /** The village of a household, for scope checks (undefined when unknown). */
  householdVillage(householdId: string): Promise<string | undefined>;
}

export function registryLand(registry: Registry): VillageLand {
  return {
    villageName: async (villageId) => (await registry.getVillage(villageId))?.name,
    households: async (villageId) => (await registry.householdsOfVillage(villageId)).map((h) => ({ householdId: h.householdId, name: h.name })),
    plots: async (villageId) => {
      const plots: SettlementPlot[] = [];
      for (const p of await registry.plotsOfVillage(villageId)) {
        const crops = await registry.cropHistory(p.plotId);
        plots.push({ plotId: p.plotId, householdId: p.householdId, areaMilliMu: p.areaMilliMu, crops: crops.map((c) => ({ effectiveFromMs: c.effectiveFromMs, crop: c.crop })) });
      }
      return plots;
    },
    meters: async (villageId) => {
      const meters: SettlementMeter[] = [];
      for (const h of await registry.householdsOfVillage(villageId)) {
        for (const m of await registry.metersOfHousehold(h.householdId)) {
          const binding = await registry.meterPlot(m.meterId);
          meters.push({
            meterId: m.meterId,
            householdId: m.householdId,
            ...(binding?.plotId === undefined ? {} : { plotId: binding.plotId }),
            ...(binding?.litresPerKwh === undefined ? {} : { litresPerKwh: binding.litresPerKwh }),
          });
        }
      }
      return meters;
    },
    householdVillage: async (householdId) => (await registry.getHousehold(householdId))?.villageId,
  };
}
