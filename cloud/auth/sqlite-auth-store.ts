// The auth store on SQLite (cloud.db, better-sqlite3): users, sessions and API tokens beside the registry, the
// ledger and the audit log. Passwords are scrypt strings with per-user salt and parameters (broker/secrets.ts);
// tokens are stored as SHA-256 digests (opaque-token.ts). A user change and its audit entry are one synchronous
// transaction on one handle (sqlite-audit-log.ts's recordSync). What must be awaited — scrypt, and the registry's
// village of a household for the entry — is done before that transaction; should the transaction meet a
// household it did not look up (the user changed in between), it rolls back, looks it up, and runs again.

/* eslint-disable @typescript-eslint/require-await -- the port is async; most of this engine answers synchronously, and
   an async method turns its throw into a rejection, so callers see one error path on both engines. */

import { randomBytes } from "node:crypto";
import type Database from "better-sqlite3";
import { openSqliteAuditLog, type SqliteAuditLog } from "../audit/sqlite-audit-log.js";
import { hashSecret, verifySecret } from "../broker/secrets.js";
import { isUniqueViolation, openDurableDatabase } from "../sqlite.js";
import {
  applyPatch,
  losesAdmin,
  auditVillageOf,
  canonicalUserId,
  checkPassword,
  dueForTouch,
  parseNewUser,
  parsePatch,
  parseTokenSpec,
  scopeColumns,
  sessionIsLive,
  tokenChangeEntry,
  tokenIsLive,
  userChangeEntry,
  userView,
  type UserRecord,
} from "./auth-changes.js";
import { DEFAULT_SESSION_POLICY, principalOf, type ApiTokenView, type AuthStore, type AuthStoreCommonOptions, type SessionPolicy } from "./auth-store.js";
import { AuthError, AUTH_ERROR_CODES as C } from "./errors.js";
import { migrateAuth } from "./migrations.js";
import { API_TOKEN_PREFIX, newOpaqueToken, newTokenId, SESSION_TOKEN_PREFIX, tokenDigest, tokenKind } from "./opaque-token.js";
import type { UserScope, UserView } from "./user-schema.js";

export interface SqliteAuthStoreOptions extends AuthStoreCommonOptions {
  /** cloud.db, or a handle another store opened (then close() leaves it open). */
  readonly path?: string;
  readonly db?: Database.Database;
  readonly busyTimeoutMs?: number;
}

export interface SqliteAuthStore extends AuthStore {
  readonly kind: "sqlite";
  readonly db: Database.Database;
  readonly audit: SqliteAuditLog;
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

const userRecord = (r: UserRow): UserRecord => ({
  userId: r.user_id,
  name: r.name,
  passwordHash: r.password_hash,
  rolesJson: r.roles_json,
  villageIdsJson: r.village_ids_json,
  householdId: r.household_id,
  jurisdictionIdsJson: r.jurisdiction_ids_json,
  disabled: r.disabled === 1,
  createdAtMs: r.created_at_ms,
  updatedAtMs: r.updated_at_ms,
});

function tokenView(row: TokenRow): ApiTokenView {
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

/** Thrown inside a transaction that met a household whose village was not looked up before it: roll back, look, rerun. */
class VillageNotLookedUp extends Error {
  constructor(readonly householdId: string) {
    super(`village of household ${householdId} was not looked up`);
  }
}

const MAX_VILLAGE_RETRIES = 3;

export function openSqliteAuthStore(options: SqliteAuthStoreOptions): SqliteAuthStore {
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
    throw new AuthError(C.INVALID, "openSqliteAuthStore needs a path or a db");
  }
  let audit: SqliteAuditLog;
  try {
    audit = openSqliteAuditLog(db, { now });
  } catch (error) {
    if (owned) db.close();
    throw error;
  }

  const selectUser = db.prepare("SELECT * FROM auth_users WHERE user_id = ?");
  const selectSession = db.prepare("SELECT * FROM auth_sessions WHERE session_digest = ?");
  const selectTokenByDigest = db.prepare("SELECT * FROM auth_api_tokens WHERE token_digest = ?");
  const selectToken = db.prepare("SELECT * FROM auth_api_tokens WHERE token_id = ?");
  const revokeSessionsOf = db.prepare("UPDATE auth_sessions SET revoked_at_ms = ? WHERE user_id = ? AND revoked_at_ms IS NULL");
  // A password change or a disable ends the API tokens too: a token minted from a stolen session must not outlive it.
  // The role list is a JSON array of role names; "admin" in quotes matches that role only.
  const countOtherEnabledAdmins = db.prepare<[string], { n: number }>(`SELECT COUNT(*) AS n FROM auth_users WHERE user_id <> ? AND disabled = 0 AND roles_json LIKE '%"admin"%'`);
  const revokeTokensOf = db.prepare("UPDATE auth_api_tokens SET revoked_at_ms = ? WHERE user_id = ? AND revoked_at_ms IS NULL");

  const userRow = (userId: string): UserRow | undefined => {
    const id = canonicalUserId(userId);
    return id === undefined ? undefined : (selectUser.get(id) as UserRow | undefined);
  };
  const userOf = (userId: string): UserView | undefined => {
    const row = userRow(userId);
    return row === undefined ? undefined : userView(userRecord(row));
  };
  const requireUser = (userId: string): UserView => {
    const user = userOf(userId);
    if (user === undefined) throw new AuthError(C.UNKNOWN, `no user ${userId}`);
    return user;
  };

  /**
   * Runs `change` (a synchronous transaction) with the villages of `householdIds` looked up first; `villageOf`
   * inside it answers from those lookups, and a household missing from them restarts the change after one more.
   */
  async function withVillages<T>(householdIds: readonly (string | undefined)[], change: (villageOf: (user: UserScope) => string | undefined) => T): Promise<T> {
    const known = new Map<string, string | undefined>();
    const lookUp = async (ids: readonly (string | undefined)[]): Promise<void> => {
      for (const id of ids) if (id !== undefined && !known.has(id)) known.set(id, options.villageOfHousehold === undefined ? undefined : await options.villageOfHousehold(id));
    };
    await lookUp(householdIds);
    for (let attempt = 0; ; attempt += 1) {
      try {
        return change((user) => {
          if (user.householdId === undefined) return auditVillageOf(user, undefined);
          if (!known.has(user.householdId)) throw new VillageNotLookedUp(user.householdId);
          return auditVillageOf(user, known.get(user.householdId));
        });
      } catch (error) {
        if (!(error instanceof VillageNotLookedUp) || attempt >= MAX_VILLAGE_RETRIES) throw error;
        await lookUp([error.householdId]);
      }
    }
  }

  // A login for an unknown user still runs scrypt, against this throwaway hash, so timing does not tell who exists.
  // Made at open, so even the first such login costs one scrypt, not two.
  const decoyHash = hashSecret(randomBytes(18).toString("base64"));
  decoyHash.catch(() => undefined);

  const liveSession = (token: string, atMs: number): SessionRow | undefined => {
    const row = selectSession.get(tokenDigest(token)) as SessionRow | undefined;
    if (row === undefined) return undefined;
    return sessionIsLive({ userId: row.user_id, lastSeenAtMs: row.last_seen_at_ms, expiresAtMs: row.expires_at_ms, revokedAtMs: row.revoked_at_ms }, atMs, policy) ? row : undefined;
  };

  const enabledUser = (userId: string): UserView | undefined => {
    const row = selectUser.get(userId) as UserRow | undefined;
    return row === undefined || row.disabled === 1 ? undefined : userView(userRecord(row));
  };

  let closed = false;
  return {
    kind: "sqlite",
    db,
    audit,

    async createUser(input, change) {
      const user = parseNewUser(input);
      const passwordHash = await hashSecret(user.password);
      const atMs = now();
      return withVillages([user.householdId], (villageOf) =>
        db
          .transaction(() => {
            const c = scopeColumns(user);
            try {
              db.prepare(
                `INSERT INTO auth_users (user_id, name, password_hash, roles_json, village_ids_json, household_id, jurisdiction_ids_json, disabled, created_at_ms, updated_at_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
              ).run(user.userId, user.name, passwordHash, c.rolesJson, c.villageIdsJson, c.householdId, c.jurisdictionIdsJson, atMs, atMs);
            } catch (error) {
              if (isUniqueViolation(error)) throw new AuthError(C.EXISTS, `user ${user.userId} already exists`);
              throw error;
            }
            const view = requireUser(user.userId);
            audit.recordSync(userChangeEntry("user.create", change, undefined, view, atMs, villageOf(view)));
            return view;
          })
          .immediate(),
      );
    },

    getUser: async (userId) => userOf(userId),

    listUsers: async () => (db.prepare("SELECT * FROM auth_users ORDER BY user_id").all() as UserRow[]).map((r) => userView(userRecord(r))),

    async updateUser(userId, patch, change) {
      const p = parsePatch(patch);
      const current = requireUser(userId);
      const atMs = now();
      return withVillages([current.householdId, p.householdId ?? undefined], (villageOf) =>
        db
          .transaction(() => {
            const before = requireUser(userId);
            const { next, action } = applyPatch(before, p);
            if (losesAdmin(before, next) && countOtherEnabledAdmins.get(before.userId)?.n === 0) {
              throw new AuthError(C.LAST_ADMIN, `${before.userId} is the last enabled admin; make another admin first`);
            }
            const c = scopeColumns(next);
            db.prepare(
              `UPDATE auth_users SET name = ?, roles_json = ?, village_ids_json = ?, household_id = ?, jurisdiction_ids_json = ?, disabled = ?, updated_at_ms = ?
               WHERE user_id = ?`,
            ).run(next.name, c.rolesJson, c.villageIdsJson, c.householdId, c.jurisdictionIdsJson, next.disabled ? 1 : 0, atMs, before.userId);
            // A disabled user is out now, not when their sessions expire; a narrowed scope applies at the next
            // request anyway (authenticate reads the user row every time).
            if (next.disabled) {
              revokeSessionsOf.run(atMs, before.userId);
              revokeTokensOf.run(atMs, before.userId);
            }
            const after = requireUser(before.userId);
            audit.recordSync(userChangeEntry(action, change, before, after, atMs, villageOf(after) ?? villageOf(before)));
            return after;
          })
          .immediate(),
      );
    },

    async setPassword(userId, password, change) {
      const existing = requireUser(userId);
      checkPassword(password, existing.userId);
      const passwordHash = await hashSecret(password);
      const atMs = now();
      return withVillages([existing.householdId], (villageOf) =>
        db
          .transaction(() => {
            const before = requireUser(existing.userId);
            db.prepare("UPDATE auth_users SET password_hash = ?, updated_at_ms = ? WHERE user_id = ?").run(passwordHash, atMs, before.userId);
            // Whoever held a session under the old password is logged out (a stolen session ends with a reset).
            revokeSessionsOf.run(atMs, before.userId);
            revokeTokensOf.run(atMs, before.userId);
            const after = requireUser(before.userId);
            audit.recordSync(userChangeEntry("user.password", change, before, after, atMs, villageOf(after)));
            return after;
          })
          .immediate(),
      );
    },

    async verifyLogin(userId, password) {
      const row = userRow(userId);
      if (row === undefined || password.length > 1024) {
        await verifySecret(password.slice(0, 1024), await decoyHash);
        return undefined;
      }
      const ok = await verifySecret(password, row.password_hash);
      return ok && row.disabled === 0 ? userView(userRecord(row)) : undefined;
    },

    async startSession(userId, options) {
      const user = requireUser(userId);
      const since = options?.unchangedSinceMs;
      if (since !== undefined && (user.disabled || user.updatedAtMs > since)) throw new AuthError(C.ACCOUNT_CHANGED, `user ${userId} changed while logging in; log in again`);
      const token = newOpaqueToken(SESSION_TOKEN_PREFIX);
      const atMs = now();
      const expiresAtMs = atMs + policy.absoluteTtlMs;
      db.prepare("INSERT INTO auth_sessions (session_digest, user_id, created_at_ms, last_seen_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?)").run(
        tokenDigest(token),
        user.userId,
        atMs,
        atMs,
        expiresAtMs,
      );
      return { token, expiresAtMs };
    },

    async endSession(token) {
      if (tokenKind(token) !== "session") return false;
      const atMs = now();
      const row = liveSession(token, atMs);
      if (row === undefined) return false;
      db.prepare("UPDATE auth_sessions SET revoked_at_ms = ? WHERE session_digest = ?").run(atMs, row.session_digest);
      return true;
    },

    async authenticate(token) {
      const kind = tokenKind(token);
      if (kind === undefined) return undefined;
      const atMs = now();
      if (kind === "session") {
        const session = liveSession(token, atMs);
        if (session === undefined) return undefined;
        const user = enabledUser(session.user_id);
        if (user === undefined) return undefined;
        if (dueForTouch(session.last_seen_at_ms, atMs, policy)) {
          db.prepare("UPDATE auth_sessions SET last_seen_at_ms = ? WHERE session_digest = ? AND last_seen_at_ms < ?").run(atMs, session.session_digest, atMs);
        }
        return { principal: principalOf(user), via: "session" };
      }
      const row = selectTokenByDigest.get(tokenDigest(token)) as TokenRow | undefined;
      if (row === undefined || !tokenIsLive(tokenView(row), atMs)) return undefined;
      const user = enabledUser(row.user_id);
      if (user === undefined) return undefined;
      if (dueForTouch(row.last_used_at_ms, atMs, policy)) {
        db.prepare("UPDATE auth_api_tokens SET last_used_at_ms = ? WHERE token_id = ?").run(atMs, row.token_id);
      }
      return { principal: principalOf(user), via: "api-token", tokenId: row.token_id };
    },

    async createApiToken(userId, spec, change) {
      const atMs = now();
      const parsed = parseTokenSpec(spec, atMs);
      const owner = requireUser(userId);
      const token = newOpaqueToken(API_TOKEN_PREFIX);
      const view = await withVillages([owner.householdId], (villageOf) =>
        db
          .transaction(() => {
            const user = requireUser(owner.userId);
            const tokenId = newTokenId();
            db.prepare(
              "INSERT INTO auth_api_tokens (token_id, token_digest, user_id, name, created_at_ms, created_by, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ).run(tokenId, tokenDigest(token), user.userId, parsed.name, atMs, change.actor, parsed.expiresAtMs ?? null);
            const created = tokenView(selectToken.get(tokenId) as TokenRow);
            audit.recordSync(tokenChangeEntry("api-token.create", change, undefined, created, atMs, villageOf(user)));
            return created;
          })
          .immediate(),
      );
      return { ...view, token };
    },

    getApiToken: async (tokenId) => {
      const row = selectToken.get(tokenId) as TokenRow | undefined;
      return row === undefined ? undefined : tokenView(row);
    },

    listApiTokens: async (userId) =>
      (db.prepare("SELECT * FROM auth_api_tokens WHERE user_id = ? ORDER BY created_at_ms, token_id").all(canonicalUserId(userId) ?? userId) as TokenRow[]).map(tokenView),

    async revokeApiToken(tokenId, change) {
      const existing = selectToken.get(tokenId) as TokenRow | undefined;
      if (existing === undefined) throw new AuthError(C.UNKNOWN, `no API token ${tokenId}`);
      const atMs = now();
      return withVillages([userOf(existing.user_id)?.householdId], (villageOf) =>
        db
          .transaction(() => {
            const row = selectToken.get(tokenId) as TokenRow;
            const before = tokenView(row);
            if (row.revoked_at_ms !== null) return before;
            db.prepare("UPDATE auth_api_tokens SET revoked_at_ms = ? WHERE token_id = ?").run(atMs, tokenId);
            const after = tokenView(selectToken.get(tokenId) as TokenRow);
            const user = userOf(row.user_id);
            audit.recordSync(tokenChangeEntry("api-token.revoke", change, before, after, atMs, user === undefined ? undefined : villageOf(user)));
            return after;
          })
          .immediate(),
      );
    },

    close: async () => {
      if (closed) return;
      closed = true;
      if (owned) db.close();
    },
  };
}
