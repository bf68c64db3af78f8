// The VillageLand port: what settlement needs from the registry about one village — its households (names for the
// notice), its plots with their crop histories, and its meters with the plot each one's pump irrigates. An adapter
// over the registry is below; the bench feeds a generated county through the same port.

import type { Registry } from "../registry/registry.js";
import type { SettlementHousehold, SettlementMeter, SettlementPlot } from "./settle.js";

export interface VillageLand {
  villageName(villageId: string): string | undefined;
  households(villageId: string): SettlementHousehold[];
  plots(villageId: string): SettlementPlot[];
  meters(villageId: string): SettlementMeter[];
  /** The village of a household, for scope checks (undefined when unknown). */
  householdVillage(householdId: string): string | undefined;
}

export function registryLand(registry: Registry): VillageLand {
  return {
    villageName: (villageId) => registry.getVillage(villageId)?.name,
    households: (villageId) => registry.householdsOfVillage(villageId).map((h) => ({ householdId: h.householdId, name: h.name })),
    plots: (villageId) =>
      registry.plotsOfVillage(villageId).map((p) => ({
        plotId: p.plotId,
        householdId: p.householdId,
        areaMilliMu: p.areaMilliMu,
        crops: registry.cropHistory(p.plotId).map((c) => ({ effectiveFromMs: c.effectiveFromMs, crop: c.crop })),
      })),
    meters: (villageId) =>
      registry.householdsOfVillage(villageId).flatMap((h) =>
        registry.metersOfHousehold(h.householdId).map((m) => {
          const binding = registry.meterPlot(m.meterId);
          return {
            meterId: m.meterId,
            householdId: m.householdId,
            ...(binding?.plotId === undefined ? {} : { plotId: binding.plotId }),
            ...(binding?.litresPerKwh === undefined ? {} : { litresPerKwh: binding.litresPerKwh }),
          };
        }),
      ),
    householdVillage: (householdId) => registry.getHousehold(householdId)?.villageId,
  };
}
