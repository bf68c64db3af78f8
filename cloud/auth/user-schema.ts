// What a user is, at the boundary (zod), and the rules tying roles to scopes (ARCHITECTURE.md invariant 10): a
// farmer has exactly the one household they may see; an officer or approver at least one village; a dispatcher at
// least one jurisdiction; and a scope is only allowed with the role that uses it — a farmer given villageIds would
// pass coversVillage and see the whole village. Admins need no scope. Pure.

import { z } from "zod";
import { ROLES, type Role } from "./principal.js";

/** Stored and compared lower-case: "Li.Wei" and "li.wei" are one person. */
export const userIdSchema = z
  .string()
  .trim()
  .toLowerCase()
  .regex(/^[a-z0-9][a-z0-9._-]{1,63}$/, "user ids are 2..64 chars of a-z, 0-9, '.', '_' and '-'");

const scopeIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "ids are 1..64 chars of A-Z, a-z, 0-9, '.', '_' and '-'");
const uniqueList = <T extends z.ZodType<string>>(item: T, max: number) =>
  z
    .array(item)
    .max(max)
    .refine((list) => new Set(list).size === list.length, "must not repeat an entry");

export const roleSchema = z.enum(ROLES);
export const rolesSchema = uniqueList(roleSchema, ROLES.length).refine((roles) => roles.length > 0, "a user needs at least one role");

export const scopeSchema = z.object({
  roles: rolesSchema,
  villageIds: uniqueList(scopeIdSchema, 200).default([]),
  householdId: scopeIdSchema.optional(),
  jurisdictionIds: uniqueList(scopeIdSchema, 200).default([]),
});
export type UserScope = { readonly roles: readonly Role[]; readonly villageIds: readonly string[]; readonly householdId?: string | undefined; readonly jurisdictionIds: readonly string[] };

const VILLAGE_ROLES: readonly Role[] = ["village-officer", "village-approver"];

/** Each rule broken, by field; empty when the scope fits the roles. */
export function scopeProblems(scope: UserScope): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  const has = (role: Role): boolean => scope.roles.includes(role);
  const villageRole = scope.roles.some((r) => VILLAGE_ROLES.includes(r));
  if (has("farmer") && scope.householdId === undefined) problems.push({ path: "householdId", message: "a farmer needs the household they may see" });
  if (!has("farmer") && scope.householdId !== undefined) problems.push({ path: "householdId", message: "only a farmer has a household scope" });
  if (villageRole && scope.villageIds.length === 0) problems.push({ path: "villageIds", message: "a village officer or approver needs at least one village" });
  if (!villageRole && scope.villageIds.length > 0) problems.push({ path: "villageIds", message: "only a village officer or approver has village scopes" });
  if (has("police-dispatcher") && scope.jurisdictionIds.length === 0) problems.push({ path: "jurisdictionIds", message: "a police dispatcher needs at least one jurisdiction" });
  if (!has("police-dispatcher") && scope.jurisdictionIds.length > 0) problems.push({ path: "jurisdictionIds", message: "only a police dispatcher has jurisdiction scopes" });
  return problems;
}

export const newUserSchema = scopeSchema.extend({
  userId: userIdSchema,
  name: z.string().trim().min(1).max(200),
  password: z.string(),
});
export type NewUserInput = z.input<typeof newUserSchema>;

/** A change to an existing user: any of these; householdId null removes it. */
export const userPatchSchema = z.strictObject({
  name: z.string().trim().min(1).max(200).optional(),
  roles: rolesSchema.optional(),
  villageIds: uniqueList(scopeIdSchema, 200).optional(),
  householdId: scopeIdSchema.nullable().optional(),
  jurisdictionIds: uniqueList(scopeIdSchema, 200).optional(),
  disabled: z.boolean().optional(),
});
export type UserPatch = z.input<typeof userPatchSchema>;

/** A user as every reader sees it: never the password hash. */
export interface UserView extends UserScope {
  readonly userId: string;
  readonly name: string;
  readonly disabled: boolean;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}
