// Who is asking, and what they may see (ARCHITECTURE.md invariant 10): the roles of the issue (#4) and the scope
// each one is limited to. Pure: the HTTP layer resolves a session or token to a Principal; every domain checks its
// own rows against these predicates, so a farmer sees one household, an officer their villages, a dispatcher their
// jurisdictions, and only an admin everything.

export const ROLES = ["farmer", "village-officer", "village-approver", "police-dispatcher", "admin"] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  readonly userId: string;
  readonly name: string;
  readonly roles: readonly Role[];
  /** The villages an officer or approver works for. */
  readonly villageIds: readonly string[];
  /** The one household a farmer may see. */
  readonly householdId?: string;
  /** The jurisdictions (alerts) a dispatcher works for; each covers its descendants too. */
  readonly jurisdictionIds: readonly string[];
}

export const isAdmin = (p: Principal): boolean => p.roles.includes("admin");

export const hasAnyRole = (p: Principal, roles: readonly Role[]): boolean => isAdmin(p) || p.roles.some((r) => roles.includes(r));

/** An officer/approver of this village (or an admin). A farmer is never village-scoped. */
export const coversVillage = (p: Principal, villageId: string): boolean => isAdmin(p) || p.villageIds.includes(villageId);

/** The household's own farmer, an officer/approver of its village, or an admin. */
export const coversHousehold = (p: Principal, household: { readonly householdId: string; readonly villageId: string }): boolean =>
  coversVillage(p, household.villageId) || (p.roles.includes("farmer") && p.householdId === household.householdId);

/**
 * A dispatcher of the jurisdiction or of one of its ancestors (or an admin). `ancestorsOf` lists the jurisdiction
 * itself first, then its parent, up to the root.
 */
export const coversJurisdiction = (p: Principal, ancestorsOf: readonly string[]): boolean =>
  isAdmin(p) || ancestorsOf.some((j) => p.jurisdictionIds.includes(j));
