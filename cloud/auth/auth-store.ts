// The auth store's port (issue #4): users with roles and scope, sessions and API tokens, behind the HTTP API's
// login. Two engines implement it and pass one contract (auth-store.contract.ts): sqlite-auth-store.ts (cloud.db,
// the default) and postgres-auth-store.ts (DATABASE_URL=postgres://…, shared by several cloud workers);
// open-auth.ts chooses. On both, every change to a user — create, roles or scope, disable, password, API token — is
// written with its audit entry in ONE transaction, so there is never a change without its who/when/why, nor an
// entry for a change that rolled back; and every request's token is checked against the database, so a session
// ended or a user disabled through one worker is refused by every other at once.
//
// Who may make a change (an officer creating a farmer of their village…) is the route's decision; the store
// enforces what a user IS: the role/scope rules of user-schema.ts and the password rules of password-rules.ts.

import type { AuditLog } from "../audit/audit-log.js";
import type { Principal } from "./principal.js";
import type { NewUserInput, UserPatch, UserView } from "./user-schema.js";

export interface SessionPolicy {
  /** A session ends this long after login, however busy. */
  readonly absoluteTtlMs: number;
  /** …or after this long without a request. */
  readonly idleTimeoutMs: number;
  /** last_seen is written at most this often per session (a request is not a disk write). */
  readonly touchEveryMs: number;
}

export const DEFAULT_SESSION_POLICY: SessionPolicy = { absoluteTtlMs: 12 * 3600_000, idleTimeoutMs: 2 * 3600_000, touchEveryMs: 60_000 };

/** The village of a household (the registry's), so a farmer's audit entries are visible to that village's officers. */
export type VillageOfHousehold = (householdId: string) => Promise<string | undefined>;

/** What both engines take besides where their data lives. */
export interface AuthStoreCommonOptions {
  readonly now?: () => number;
  readonly sessions?: Partial<SessionPolicy>;
  readonly villageOfHousehold?: VillageOfHousehold;
}

/** Who makes a change and why: written to the audit log with it. */
export interface ChangeContext {
  readonly actor: string;
  readonly reason?: string;
}

export interface Authenticated {
  readonly principal: Principal;
  readonly via: "session" | "api-token";
  /** For an API token: its id. */
  readonly tokenId?: string;
}

export interface ApiTokenView {
  readonly tokenId: string;
  readonly userId: string;
  readonly name: string;
  readonly createdAtMs: number;
  readonly createdBy: string;
  readonly expiresAtMs?: number;
  readonly lastUsedAtMs?: number;
  readonly revokedAtMs?: number;
}

export type AuthStoreKind = "sqlite" | "postgres";

export interface AuthStore {
  readonly kind: AuthStoreKind;
  /** The audit log on the same database (user changes are recorded there, in their own transaction). */
  readonly audit: AuditLog;
  createUser(input: NewUserInput, change: ChangeContext): Promise<UserView>;
  getUser(userId: string): Promise<UserView | undefined>;
  listUsers(): Promise<UserView[]>;
  updateUser(userId: string, patch: UserPatch, change: ChangeContext): Promise<UserView>;
  setPassword(userId: string, password: string, change: ChangeContext): Promise<UserView>;
  /** The user when the password is right and the user enabled; undefined otherwise, in about the same time. */
  verifyLogin(userId: string, password: string): Promise<UserView | undefined>;
  /**
   * A new session for the user. With `unchangedSinceMs` (when the password check began), only if the user is still
   * enabled and unchanged since then — AUTH_ACCOUNT_CHANGED otherwise: a password reset or a disable committed while
   * the old password was being checked must not leave a session behind that outlives it.
   */
  startSession(userId: string, options?: { readonly unchangedSinceMs?: number }): Promise<{ readonly token: string; readonly expiresAtMs: number }>;
  /** Revokes the session of this token; false when it was not a live session. */
  endSession(token: string): Promise<boolean>;
  /** The principal behind a session or API token, or undefined (unknown, expired, idle, revoked, user disabled). */
  authenticate(token: string): Promise<Authenticated | undefined>;
  createApiToken(userId: string, token: { readonly name: string; readonly expiresAtMs?: number }, change: ChangeContext): Promise<ApiTokenView & { readonly token: string }>;
  getApiToken(tokenId: string): Promise<ApiTokenView | undefined>;
  listApiTokens(userId: string): Promise<ApiTokenView[]>;
  revokeApiToken(tokenId: string, change: ChangeContext): Promise<ApiTokenView>;
  /** Closes the store and its audit log (a database handle the caller passed in stays open). */
  close(): Promise<void>;
}

export const principalOf = (user: UserView): Principal => ({
  userId: user.userId,
  name: user.name,
  roles: user.roles,
  villageIds: user.villageIds,
  ...(user.householdId === undefined ? {} : { householdId: user.householdId }),
  jurisdictionIds: user.jurisdictionIds,
});
