// Row-level scope for the domain routes (ARCHITECTURE.md invariant 10): route.ts checks the caller's role, these
// check the row. An id that does not exist is 404; one that exists outside the caller's villages or household is 403,
// so an officer of v1 learns nothing about v2 beyond "not yours" and a farmer nothing beyond their own household.

import { coversHousehold, coversVillage, type Principal } from "../../auth/principal.js";
import type { VillageRow } from "../../registry/land.js";
import type { Household, Meter, Registry } from "../../registry/registry.js";
import { forbidden, notFound } from "../problem.js";

export async function requireVillage(registry: Registry, principal: Principal, villageId: string): Promise<VillageRow> {
  const village = await registry.getVillage(villageId);
  if (village === undefined) throw notFound(`village ${villageId}`);
  if (!coversVillage(principal, villageId)) throw forbidden(`village ${villageId} is not one of yours`);
  return village;
}

export async function requireHousehold(registry: Registry, principal: Principal, householdId: string): Promise<Household> {
  const household = await registry.getHousehold(householdId);
  if (household === undefined) throw notFound(`household ${householdId}`);
  if (!coversHousehold(principal, household)) throw forbidden(`household ${householdId} is not yours`);
  return household;
}

/** A household an officer (or admin) may change: a farmer may read their own, never change it. */
export async function requireHouseholdForOfficer(registry: Registry, principal: Principal, householdId: string): Promise<Household> {
  const household = await registry.getHousehold(householdId);
  if (household === undefined) throw notFound(`household ${householdId}`);
  if (!coversVillage(principal, household.villageId)) throw forbidden(`household ${householdId} is not in one of your villages`);
  return household;
}

export async function requireMeter(registry: Registry, principal: Principal, meterId: string): Promise<{ meter: Meter; household: Household }> {
  const meter = await registry.getMeter(meterId);
  if (meter === undefined) throw notFound(`meter ${meterId}`);
  const household = await registry.getHousehold(meter.householdId);
  if (household === undefined || !coversHousehold(principal, household)) throw forbidden(`meter ${meterId} is not yours`);
  return { meter, household };
}

