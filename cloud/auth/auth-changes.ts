// What the two auth engines decide alike, as pure functions over plain rows: a stored user as its view, a new user
// or a patch checked against the role/scope and password rules, which audit action a patch is, the audit entry of
// a change, and whether a session is still live or due a touch. The engines only read and write rows around these,
// so SQLite and PostgreSQL cannot drift apart in what they accept or record.

import { z } from "zod";
import type { AuditEntryInput } from "../audit/audit-log.js";
import { issuesToText } from "../../protocols/validation.js";
import type { ApiTokenView, ChangeContext, SessionPolicy } from "./auth-store.js";
import { AuthError, AUTH_ERROR_CODES as C } from "./errors.js";
import { passwordProblem } from "./password-rules.js";
import type { Role } from "./principal.js";
import { newUserSchema, scopeProblems, userIdSchema, userPatchSchema, type NewUserInput, type UserPatch, type UserScope, type UserView } from "./user-schema.js";

/** A user's row, engine-neutral (SQLite's 0/1 and PostgreSQL's boolean both become `disabled`). */
export interface UserRecord {
  readonly userId: string;
  readonly name: string;
  readonly passwordHash: string;
  readonly rolesJson: string;
  readonly villageIdsJson: string;
  readonly householdId: string | null;
  readonly jurisdictionIdsJson: string;
  readonly disabled: boolean;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}

export interface SessionRecord {
  readonly userId: string;
  readonly lastSeenAtMs: number;
  readonly expiresAtMs: number;
  readonly revokedAtMs: number | null;
}

const stringList = z.array(z.string());

export function userView(row: UserRecord): UserView {
  return {
    userId: row.userId,
    name: row.name,
    roles: stringList.parse(JSON.parse(row.rolesJson)) as Role[],
    villageIds: stringList.parse(JSON.parse(row.villageIdsJson)),
    ...(row.householdId === null ? {} : { householdId: row.householdId }),
    jurisdictionIds: stringList.parse(JSON.parse(row.jurisdictionIdsJson)),
    disabled: row.disabled,
    createdAtMs: row.createdAtMs,
    updatedAtMs: row.updatedAtMs,
  };
}

/** The scope columns as stored: lists as JSON text. */
export function scopeColumns(user: UserScope): { rolesJson: string; villageIdsJson: string; householdId: string | null; jurisdictionIdsJson: string } {
  return { rolesJson: JSON.stringify(user.roles), villageIdsJson: JSON.stringify(user.villageIds), householdId: user.householdId ?? null, jurisdictionIdsJson: JSON.stringify(user.jurisdictionIds) };
}

/** The canonical user id, or undefined for anything that cannot be one (so it is never looked up). */
export function canonicalUserId(userId: string): string | undefined {
  const parsed = userIdSchema.safeParse(userId);
  return parsed.success ? parsed.data : undefined;
}

export function invalid(what: string, issues: readonly { path: readonly PropertyKey[]; message: string }[]): AuthError {
  return new AuthError(C.INVALID, `${what} is invalid:\n${issuesToText(issues)}`);
}

function checkScope(scope: UserScope): void {
  const problems = scopeProblems(scope);
  if (problems.length > 0) throw invalid("the user's scope", problems.map((p) => ({ path: [p.path], message: p.message })));
}

export function checkPassword(password: string, userId: string): void {
  const problem = passwordProblem(password, userId);
  if (problem !== undefined) throw new AuthError(C.WEAK_PASSWORD, problem);
}

export type NewUser = z.output<typeof newUserSchema>;

/** A new user checked: fields, role/scope rules, password rules. */
export function parseNewUser(input: NewUserInput): NewUser {
  const parsed = newUserSchema.safeParse(input);
  if (!parsed.success) throw invalid("the user", parsed.error.issues);
  checkScope(parsed.data);
  checkPassword(parsed.data.password, parsed.data.userId);
  return parsed.data;
}

export type ParsedPatch = z.output<typeof userPatchSchema>;

export function parsePatch(patch: UserPatch): ParsedPatch {
  const parsed = userPatchSchema.safeParse(patch);
  if (!parsed.success) throw invalid("the change", parsed.error.issues);
  return parsed.data;
}

export interface PatchedUser extends UserScope {
  readonly name: string;
  readonly disabled: boolean;
}

/** True when a change takes an enabled admin out of the admins: disabled, or the admin role taken away. The stores
 * refuse it (AUTH_LAST_ADMIN) when no other enabled admin is left, counting inside the change's transaction. */
export function losesAdmin(before: UserView, next: PatchedUser): boolean {
  return before.roles.includes("admin") && !before.disabled && (next.disabled || !next.roles.includes("admin"));
}

/** The user after the patch, checked against the role/scope rules, and the audit action it amounts to. */
export function applyPatch(before: UserView, p: ParsedPatch): { next: PatchedUser; action: string } {
  const householdId = p.householdId === null ? undefined : (p.householdId ?? before.householdId);
  const next: PatchedUser = {
    name: p.name ?? before.name,
    roles: p.roles ?? before.roles,
    villageIds: p.villageIds ?? before.villageIds,
    jurisdictionIds: p.jurisdictionIds ?? before.jurisdictionIds,
    disabled: p.disabled ?? before.disabled,
    ...(householdId === undefined ? {} : { householdId }),
  };
  checkScope(next);
  const action = p.disabled === true && !before.disabled ? "user.disable" : p.disabled === false && before.disabled ? "user.enable" : "user.update";
  return { next, action };
}

/** An API token's name and expiry, checked; an expiry must lie ahead of `atMs`. */
export function parseTokenSpec(spec: { readonly name: string; readonly expiresAtMs?: number }, atMs: number): { name: string; expiresAtMs?: number | undefined } {
  const parsed = z.strictObject({ name: z.string().trim().min(1).max(100), expiresAtMs: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional() }).safeParse(spec);
  if (!parsed.success) throw invalid("the token", parsed.error.issues);
  if (parsed.data.expiresAtMs !== undefined && parsed.data.expiresAtMs <= atMs) throw new AuthError(C.INVALID, "expiresAtMs is in the past");
  return parsed.data;
}

/** Live: not revoked, before its absolute expiry, and used within the idle timeout. */
export const sessionIsLive = (s: SessionRecord, atMs: number, policy: SessionPolicy): boolean =>
  s.revokedAtMs === null && atMs < s.expiresAtMs && atMs - s.lastSeenAtMs < policy.idleTimeoutMs;

/** A session's or token's last use is written at most once per touchEveryMs. */
export const dueForTouch = (lastAtMs: number | null, atMs: number, policy: SessionPolicy): boolean => lastAtMs === null || atMs - lastAtMs >= policy.touchEveryMs;

export const tokenIsLive = (t: ApiTokenView, atMs: number): boolean => t.revokedAtMs === undefined && (t.expiresAtMs === undefined || atMs < t.expiresAtMs);

/** The village an audit entry about this user is filed under: their household's, else their first village. */
export const auditVillageOf = (user: UserScope, householdVillage: string | undefined): string | undefined => householdVillage ?? user.villageIds[0];

/** What the audit log keeps of a user: the view, never the hash. */
const auditSnapshot = ({ createdAtMs: _c, updatedAtMs: _u, ...rest }: UserView): Omit<UserView, "createdAtMs" | "updatedAtMs"> => rest;

export function userChangeEntry(action: string, change: ChangeContext, before: UserView | undefined, after: UserView, atMs: number, villageId: string | undefined): AuditEntryInput {
  return {
    actor: change.actor,
    action,
    entityType: "user",
    entityId: after.userId,
    atMs,
    ...(villageId === undefined ? {} : { villageId }),
    ...(change.reason === undefined ? {} : { reason: change.reason }),
    ...(before === undefined ? {} : { before: auditSnapshot(before) }),
    after: auditSnapshot(after),
  };
}

export function tokenChangeEntry(action: "api-token.create" | "api-token.revoke", change: ChangeContext, before: ApiTokenView | undefined, after: ApiTokenView, atMs: number, villageId: string | undefined): AuditEntryInput {
  return {
    actor: change.actor,
    action,
    entityType: "user",
    entityId: after.userId,
    atMs,
    ...(villageId === undefined ? {} : { villageId }),
    ...(change.reason === undefined ? {} : { reason: change.reason }),
    ...(before === undefined ? {} : { before }),
    after,
  };
}
