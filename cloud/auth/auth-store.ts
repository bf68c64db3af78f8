// Users, sessions and API tokens on SQLite (cloud.db), the store behind the HTTP API's login (issue #4).
// Passwords are scrypt strings with per-user salt and parameters (broker/secrets.ts, the same encoding as gateway
// secrets); tokens are stored as SHA-256 digests (opaque-token.ts). Every change to a user — create, roles or scope,
// disable, password, API token — is written with its audit entry in ONE transaction on the same handle, so there is
// never a change without its who/when/why, nor an entry for a change that rolled back.
//
// Who may make a change (an officer creating a farmer of their village…) is the route's decision; this store
// enforces what a user IS: the role/scope rules of user-schema.ts and the password rules of password-rules.ts.

import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import { z } from "zod";
import { issuesToText } from "../../protocols/validation.js";
import { openAuditLog, type AuditLog } from "../audit/audit-log.js";
import { hashSecret, verifySecret } from "../broker/secrets.js";
import { isUniqueViolation, openDurableDatabase } from "../sqlite.js";
import { AuthError, AUTH_ERROR_CODES as C } from "./errors.js";
import { migrateAuth } from "./migrations.js";
import { API_TOKEN_PREFIX, newOpaqueToken, newTokenId, SESSION_TOKEN_PREFIX, tokenDigest, tokenKind } from "./opaque-token.js";
import { passwordProblem } from "./password-rules.js";
import type { Principal, Role } from "./principal.js";
import { newUserSchema, scopeProblems, userIdSchema, userPatchSchema, type NewUserInput, type UserPatch, type UserScope, type UserView } from "./user-schema.js";

export interface SessionPolicy {
  /** A session ends this long after login, however busy. */
  readonly absoluteTtlMs: number;
  /** …or after this long without a request. */
  readonly idleTimeoutMs: number;
  /** last_seen is written at most this often per session (a request is not a disk write). */
  readonly touchEveryMs: number;
}

export const DEFAULT_SESSION_POLICY: SessionPolicy = { absoluteTtlMs: 12 * 3600_000, idleTimeoutMs: 2 * 3600_000, touchEveryMs: 60_000 };

export interface AuthStoreOptions {
  /** cloud.db, or a handle another store opened (then close() leaves it open). */
  readonly path?: string;
  readonly db?: Database.Database;
  readonly now?: () => number;
  readonly busyTimeoutMs?: number;
  readonly sessions?: Partial<SessionPolicy>;
  /** The village of a household (registry), so a farmer's audit entries are visible to that village's officers. */
  readonly villageOfHousehold?: (householdId: string) => string | undefined;
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

export interface AuthStore {
  readonly db: Database.Database;
  /** The audit log on the same handle (user changes are recorded through it). */
  readonly audit: AuditLog;
  createUser(input: NewUserInput, change: ChangeContext): Promise<UserView>;
  getUser(userId: string): UserView | undefined;
  listUsers(): UserView[];
  updateUser(userId: string, patch: UserPatch, change: ChangeContext): UserView;
  setPassword(userId: string, password: string, change: ChangeContext): Promise<UserView>;
  /** The user when the password is right and the user enabled; undefined otherwise, in about the same time. */
  verifyLogin(userId: string, password: string): Promise<UserView | undefined>;
  startSession(userId: string): { readonly token: string; readonly expiresAtMs: number };
  /** Revokes the session of this token; false when it was not a live session. */
  endSession(token: string): boolean;
  /** The principal behind a session or API token, or undefined (unknown, expired, idle, revoked, user disabled). */
  authenticate(token: string): Authenticated | undefined;
  createApiToken(userId: string, token: { readonly name: string; readonly expiresAtMs?: number }, change: ChangeContext): ApiTokenView & { readonly token: string };
  getApiToken(tokenId: string): ApiTokenView | undefined;
  listApiTokens(userId: string): ApiTokenView[];
  revokeApiToken(tokenId: string, change: ChangeContext): ApiTokenView;
  close(): void;
}

interface UserRow {
  user_id: string;
  name: string;
  password_hash: string;
  roles_json: string;
  village_ids_json: string;
  household_id: string | null;
  jurisdiction_ids_json: string;
  disabled: 0 | 1;
  created_at_ms: number;
  updated_at_ms: number;
}

interface SessionRow {
  session_digest: string;
  user_id: string;
  created_at_ms: number;
  last_seen_at_ms: number;
  expires_at_ms: number;
  revoked_at_ms: number | null;
}

interface TokenRow {
  token_id: string;
  token_digest: string;
  user_id: string;
  name: string;
  created_at_ms: number;
  created_by: string;
  expires_at_ms: number | null;
  last_used_at_ms: number | null;
  revoked_at_ms: number | null;
}

const stringList = z.array(z.string());

function toView(row: UserRow): UserView {
  return {
    userId: row.user_id,
    name: row.name,
    roles: stringList.parse(JSON.parse(row.roles_json)) as Role[],
    villageIds: stringList.parse(JSON.parse(row.village_ids_json)),
    ...(row.household_id === null ? {} : { householdId: row.household_id }),
    jurisdictionIds: stringList.parse(JSON.parse(row.jurisdiction_ids_json)),
    disabled: row.disabled === 1,
    createdAtMs: row.created_at_ms,
    updatedAtMs: row.updated_at_ms,
  };
}

function toTokenView(row: TokenRow): ApiTokenView {
  return {
    tokenId: row.token_id,
    userId: row.user_id,
    name: row.name,
    createdAtMs: row.created_at_ms,
    createdBy: row.created_by,
    ...(row.expires_at_ms === null ? {} : { expiresAtMs: row.expires_at_ms }),
    ...(row.last_used_at_ms === null ? {} : { lastUsedAtMs: row.last_used_at_ms }),
    ...(row.revoked_at_ms === null ? {} : { revokedAtMs: row.revoked_at_ms }),
  };
}

export const principalOf = (user: UserView): Principal => ({
  userId: user.userId,
  name: user.name,
  roles: user.roles,
  villageIds: user.villageIds,
  ...(user.householdId === undefined ? {} : { householdId: user.householdId }),
  jurisdictionIds: user.jurisdictionIds,
});

/** What the audit log keeps of a user: the view, never the hash. */
const auditSnapshot = ({ createdAtMs: _c, updatedAtMs: _u, ...rest }: UserView): Omit<UserView, "createdAtMs" | "updatedAtMs"> => rest;

function invalid(what: string, issues: readonly { path: readonly PropertyKey[]; message: string }[]): AuthError {
  return new AuthError(C.INVALID, `${what} is invalid:\n${issuesToText(issues)}`);
}

function checkScope(scope: UserScope): void {
  const problems = scopeProblems(scope);
  if (problems.length > 0) throw invalid("the user's scope", problems.map((p) => ({ path: [p.path], message: p.message })));
}

function checkPassword(password: string, userId: string): void {
  const problem = passwordProblem(password, userId);
  if (problem !== undefined) throw new AuthError(C.WEAK_PASSWORD, problem);
}

export function openAuthStore(options: AuthStoreOptions): AuthStore {
  const now = options.now ?? Date.now;
  const policy: SessionPolicy = { ...DEFAULT_SESSION_POLICY, ...options.sessions };
  const owned = options.db === undefined;
  let db: Database.Database;
  if (options.db !== undefined) {
    db = options.db;
    migrateAuth(db, now());
  } else if (options.path !== undefined) {
    db = openDurableDatabase(options.path, options.busyTimeoutMs ?? 5000, (d) => migrateAuth(d, now()));
  } else {
    throw new AuthError(C.INVALID, "openAuthStore needs a path or a db");
  }
  const audit = openAuditLog(db, { now });

  const selectUser = db.prepare("SELECT * FROM auth_users WHERE user_id = ?");
  const selectSession = db.prepare("SELECT * FROM auth_sessions WHERE session_digest = ?");
  const selectTokenByDigest = db.prepare("SELECT * FROM auth_api_tokens WHERE token_digest = ?");
  const selectToken = db.prepare("SELECT * FROM auth_api_tokens WHERE token_id = ?");
  const revokeSessionsOf = db.prepare("UPDATE auth_sessions SET revoked_at_ms = ? WHERE user_id = ? AND revoked_at_ms IS NULL");
  // A password change or a disable ends the API tokens too: a token minted from a stolen session must not outlive it.
  const revokeTokensOf = db.prepare("UPDATE auth_api_tokens SET revoked_at_ms = ? WHERE user_id = ? AND revoked_at_ms IS NULL");

  const userRow = (userId: string): UserRow | undefined => {
    const parsed = userIdSchema.safeParse(userId);
    return parsed.success ? (selectUser.get(parsed.data) as UserRow | undefined) : undefined;
  };
  const requireUser = (userId: string): UserRow => {
    const row = userRow(userId);
    if (row === undefined) throw new AuthError(C.UNKNOWN, `no user ${userId}`);
    return row;
  };
  const villageOf = (user: UserScope): string | undefined => {
    if (user.householdId !== undefined && options.villageOfHousehold !== undefined) {
      const village = options.villageOfHousehold(user.householdId);
      if (village !== undefined) return village;
    }
    return user.villageIds[0];
  };
  const recordUserChange = (action: string, change: ChangeContext, before: UserView | undefined, after: UserView, atMs: number): void => {
    const villageId = villageOf(after) ?? (before === undefined ? undefined : villageOf(before));
    audit.record({
      actor: change.actor,
      action,
      entityType: "user",
      entityId: after.userId,
      atMs,
      ...(villageId === undefined ? {} : { villageId }),
      ...(change.reason === undefined ? {} : { reason: change.reason }),
      ...(before === undefined ? {} : { before: auditSnapshot(before) }),
      after: auditSnapshot(after),
    });
  };

  // A login for an unknown user still runs scrypt, against this throwaway hash, so timing does not tell who exists.
  // Made at open, so even the first such login costs one scrypt, not two.
  const decoyHash = hashSecret(randomBytes(18).toString("base64"));
  decoyHash.catch(() => undefined);

  const liveSession = (token: string, nowMs: number): SessionRow | undefined => {
    const row = selectSession.get(tokenDigest(token)) as SessionRow | undefined;
    if (row === undefined || row.revoked_at_ms !== null) return undefined;
    if (nowMs >= row.expires_at_ms || nowMs - row.last_seen_at_ms >= policy.idleTimeoutMs) return undefined;
    return row;
  };

  return {
    db,
    audit,

    async createUser(input, change) {
      const parsed = newUserSchema.safeParse(input);
      if (!parsed.success) throw invalid("the user", parsed.error.issues);
      const user = parsed.data;
      checkScope(user);
      checkPassword(user.password, user.userId);
      const passwordHash = await hashSecret(user.password);
      const atMs = now();
      const create = db.transaction(() => {
        try {
          db.prepare(
            `INSERT INTO auth_users (user_id, name, password_hash, roles_json, village_ids_json, household_id, jurisdiction_ids_json, disabled, created_at_ms, updated_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
          ).run(user.userId, user.name, passwordHash, JSON.stringify(user.roles), JSON.stringify(user.villageIds), user.householdId ?? null, JSON.stringify(user.jurisdictionIds), atMs, atMs);
        } catch (error) {
          if (isUniqueViolation(error)) throw new AuthError(C.EXISTS, `user ${user.userId} already exists`);
          throw error;
        }
        const view = toView(requireUser(user.userId));
        recordUserChange("user.create", change, undefined, view, atMs);
        return view;
      });
      return create.immediate();
    },

    getUser(userId) {
      const row = userRow(userId);
      return row === undefined ? undefined : toView(row);
    },

    listUsers() {
      return (db.prepare("SELECT * FROM auth_users ORDER BY user_id").all() as UserRow[]).map(toView);
    },

    updateUser(userId, patch, change) {
      const parsed = userPatchSchema.safeParse(patch);
      if (!parsed.success) throw invalid("the change", parsed.error.issues);
      const p = parsed.data;
      const atMs = now();
      const update = db.transaction(() => {
        const before = toView(requireUser(userId));
        const householdId = p.householdId === null ? undefined : (p.householdId ?? before.householdId);
        const next = {
          name: p.name ?? before.name,
          roles: p.roles ?? before.roles,
          villageIds: p.villageIds ?? before.villageIds,
          jurisdictionIds: p.jurisdictionIds ?? before.jurisdictionIds,
          disabled: p.disabled ?? before.disabled,
          ...(householdId === undefined ? {} : { householdId }),
        };
        checkScope(next);
        db.prepare(
          `UPDATE auth_users SET name = ?, roles_json = ?, village_ids_json = ?, household_id = ?, jurisdiction_ids_json = ?, disabled = ?, updated_at_ms = ?
           WHERE user_id = ?`,
        ).run(next.name, JSON.stringify(next.roles), JSON.stringify(next.villageIds), next.householdId ?? null, JSON.stringify(next.jurisdictionIds), next.disabled ? 1 : 0, atMs, before.userId);
        // A disabled user is out now, not when their sessions expire; a narrowed scope applies at the next request
        // anyway (authenticate reads the user row every time).
        if (next.disabled) {
          revokeSessionsOf.run(atMs, before.userId);
          revokeTokensOf.run(atMs, before.userId);
        }
        const after = toView(requireUser(before.userId));
        const action = p.disabled === true && !before.disabled ? "user.disable" : p.disabled === false && before.disabled ? "user.enable" : "user.update";
        recordUserChange(action, change, before, after, atMs);
        return after;
      });
      return update.immediate();
    },

    async setPassword(userId, password, change) {
      const existing = toView(requireUser(userId));
      checkPassword(password, existing.userId);
      const passwordHash = await hashSecret(password);
      const atMs = now();
      const set = db.transaction(() => {
        const before = toView(requireUser(existing.userId));
        db.prepare("UPDATE auth_users SET password_hash = ?, updated_at_ms = ? WHERE user_id = ?").run(passwordHash, atMs, before.userId);
        // Whoever held a session under the old password is logged out (a stolen session ends with a reset).
        revokeSessionsOf.run(atMs, before.userId);
        revokeTokensOf.run(atMs, before.userId);
        const after = toView(requireUser(before.userId));
        recordUserChange("user.password", change, before, after, atMs);
        return after;
      });
      return set.immediate();
    },

    async verifyLogin(userId, password) {
      const row = userRow(userId);
      if (row === undefined || password.length > 1024) {
        await verifySecret(password.slice(0, 1024), await decoyHash);
        return undefined;
      }
      const ok = await verifySecret(password, row.password_hash);
      return ok && row.disabled === 0 ? toView(row) : undefined;
    },

    startSession(userId) {
      const user = requireUser(userId);
      const token = newOpaqueToken(SESSION_TOKEN_PREFIX);
      const atMs = now();
      const expiresAtMs = atMs + policy.absoluteTtlMs;
      db.prepare("INSERT INTO auth_sessions (session_digest, user_id, created_at_ms, last_seen_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?)").run(
        tokenDigest(token),
        user.user_id,
        atMs,
        atMs,
        expiresAtMs,
      );
      return { token, expiresAtMs };
    },

    endSession(token) {
      if (tokenKind(token) !== "session") return false;
      const atMs = now();
      const row = liveSession(token, atMs);
      if (row === undefined) return false;
      db.prepare("UPDATE auth_sessions SET revoked_at_ms = ? WHERE session_digest = ?").run(atMs, row.session_digest);
      return true;
    },

    authenticate(token) {
      const kind = tokenKind(token);
      if (kind === undefined) return undefined;
      const atMs = now();
      if (kind === "session") {
        const session = liveSession(token, atMs);
        if (session === undefined) return undefined;
        const user = selectUser.get(session.user_id) as UserRow | undefined;
        if (user === undefined || user.disabled === 1) return undefined;
        if (atMs - session.last_seen_at_ms >= policy.touchEveryMs) {
          db.prepare("UPDATE auth_sessions SET last_seen_at_ms = ? WHERE session_digest = ?").run(atMs, session.session_digest);
        }
        return { principal: principalOf(toView(user)), via: "session" };
      }
      const row = selectTokenByDigest.get(tokenDigest(token)) as TokenRow | undefined;
      if (row === undefined || row.revoked_at_ms !== null || (row.expires_at_ms !== null && atMs >= row.expires_at_ms)) return undefined;
      const user = selectUser.get(row.user_id) as UserRow | undefined;
      if (user === undefined || user.disabled === 1) return undefined;
      if (row.last_used_at_ms === null || atMs - row.last_used_at_ms >= policy.touchEveryMs) {
        db.prepare("UPDATE auth_api_tokens SET last_used_at_ms = ? WHERE token_id = ?").run(atMs, row.token_id);
      }
      return { principal: principalOf(toView(user)), via: "api-token", tokenId: row.token_id };
    },

    createApiToken(userId, spec, change) {
      const parsed = z
        .strictObject({ name: z.string().trim().min(1).max(100), expiresAtMs: z.number().int().positive().optional() })
        .safeParse(spec);
      if (!parsed.success) throw invalid("the token", parsed.error.issues);
      const atMs = now();
      if (parsed.data.expiresAtMs !== undefined && parsed.data.expiresAtMs <= atMs) throw new AuthError(C.INVALID, "expiresAtMs is in the past");
      const token = newOpaqueToken(API_TOKEN_PREFIX);
      const create = db.transaction(() => {
        const user = toView(requireUser(userId));
        const tokenId = newTokenId();
        db.prepare(
          "INSERT INTO auth_api_tokens (token_id, token_digest, user_id, name, created_at_ms, created_by, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ).run(tokenId, tokenDigest(token), user.userId, parsed.data.name, atMs, change.actor, parsed.data.expiresAtMs ?? null);
        const view = toTokenView(selectToken.get(tokenId) as TokenRow);
        const villageId = villageOf(user);
        audit.record({
          actor: change.actor,
          action: "api-token.create",
          entityType: "user",
          entityId: user.userId,
          atMs,
          ...(villageId === undefined ? {} : { villageId }),
          ...(change.reason === undefined ? {} : { reason: change.reason }),
          after: view,
        });
        return view;
      });
      return { ...create.immediate(), token };
    },

    getApiToken(tokenId) {
      const row = selectToken.get(tokenId) as TokenRow | undefined;
      return row === undefined ? undefined : toTokenView(row);
    },

    listApiTokens(userId) {
      return (db.prepare("SELECT * FROM auth_api_tokens WHERE user_id = ? ORDER BY created_at_ms, token_id").all(userId) as TokenRow[]).map(toTokenView);
    },

    revokeApiToken(tokenId, change) {
      const atMs = now();
      const revoke = db.transaction(() => {
        const row = selectToken.get(tokenId) as TokenRow | undefined;
        if (row === undefined) throw new AuthError(C.UNKNOWN, `no API token ${tokenId}`);
        const before = toTokenView(row);
        if (row.revoked_at_ms !== null) return before;
        db.prepare("UPDATE auth_api_tokens SET revoked_at_ms = ? WHERE token_id = ?").run(atMs, tokenId);
        const after = toTokenView(selectToken.get(tokenId) as TokenRow);
        const user = userRow(row.user_id);
        const villageId = user === undefined ? undefined : villageOf(toView(user));
        audit.record({
          actor: change.actor,
          action: "api-token.revoke",
          entityType: "user",
          entityId: row.user_id,
          atMs,
          ...(villageId === undefined ? {} : { villageId }),
          ...(change.reason === undefined ? {} : { reason: change.reason }),
          before,
          after,
        });
        return after;
      });
      return revoke.immediate();
    },

    close() {
      if (owned) db.close();
    },
  };
}
