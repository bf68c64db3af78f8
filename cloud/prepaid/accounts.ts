// Which ledger accounts the prepaid flow posts to, by naming rule, and opening them (idempotent): a household's
// prepaid account, its village's cash box (where an officer's cash top-up comes from) and the village's electricity
// revenue (what charges pay into).

import type { Ledger } from "../ledger/store/ledger.js";

export const householdAccountId = (householdId: string): string => `household:${householdId}:prepaid`;
export const villageCashAccountId = (villageId: string): string => `village:${villageId}:cash`;
export const villageRevenueAccountId = (villageId: string): string => `village:${villageId}:revenue-electricity`;

export async function openVillageAccounts(ledger: Ledger, villageId: string): Promise<void> {
  await ledger.openAccount({ accountId: villageCashAccountId(villageId), kind: "village-cash", villageId });
  await ledger.openAccount({ accountId: villageRevenueAccountId(villageId), kind: "revenue-electricity", villageId });
}

export async function openHouseholdAccount(ledger: Ledger, villageId: string, householdId: string): Promise<void> {
  await openVillageAccounts(ledger, villageId);
  await ledger.openAccount({ accountId: householdAccountId(householdId), kind: "household-prepaid", villageId, householdId });
}
