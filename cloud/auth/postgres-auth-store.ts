// The auth store on PostgreSQL: users, sessions and API tokens shared by several cloud workers. Same contract as
// the SQLite engine (auth-store.contract.ts), same rules (auth-changes.ts). One pool serves the store and its audit
// log (postgres-audit-log.ts); a user change takes the user's row lock (SELECT … FOR UPDATE), writes, and appends
// its audit entry on the same connection, all in one transaction, so a change and its entry commit together.
//
// Sessions across workers: nothing is cached. Every authenticate is one statement that reads the session (or token)
// with its user and, when due, moves last_seen forward in the same statement (a data-modifying CTE) — so a session
// revoked, or a user disabled, through one pool is refused by the next request on any other, and last_seen only
// ever moves forward (`last_seen_at_ms < now`) whichever worker's request touched it last.

import { randomBytes } from "node:crypto";
import type pg from "pg";
import { appendAuditEntry, postgresAuditLogOnPool, safeInteger, safeIntegerOrNull, type PostgresAuditLog } from "../audit/postgres-audit-log.js";
import { migratePostgresAuditSchema } from "../audit/postgres-audit-migrations.js";
import { inTransaction, isPgUniqueViolation, migrateOnConnection, openMigratedPool } from "../postgres.js";
import { hashSecret, verifySecret } from "../broker/secrets.js";
import {
  applyPatch,
  losesAdmin,
  auditVillageOf,
  canonicalUserId,
  checkPassword,
  parseNewUser,
  parsePatch,
  parseTokenSpec,
  scopeColumns,
  sessionIsLive,
  tokenChangeEntry,
  tokenIsLive,
  userChangeEntry,
  userView,
} from "./auth-changes.js";
import { DEFAULT_SESSION_POLICY, principalOf, type ApiTokenView, type AuthStore, type AuthStoreCommonOptions, type SessionPolicy } from "./auth-store.js";
import { AuthError, AUTH_ERROR_CODES as C } from "./errors.js";
import { API_TOKEN_PREFIX, newOpaqueToken, newTokenId, SESSION_TOKEN_PREFIX, tokenDigest, tokenKind } from "./opaque-token.js";
import { migratePostgresAuthSchema } from "./postgres-auth-migrations.js";
import type { UserScope, UserView } from "./user-schema.js";


/** First key of pg_advisory_xact_lock(int4, int4) for changes that may take an admin away: "auad". */
const ADMIN_CHANGE_LOCK_CLASS = 0x61756164;
export interface PostgresAuthStoreOptions extends AuthStoreCommonOptions {
  readonly connectionString: string;
  /** Connections in the pool (default 4), shared with the store's audit log. */
  readonly poolSize?: number;
}

export interface PostgresAuthStore extends AuthStore {
  readonly kind: "postgres";
  readonly audit: PostgresAuditLog;
  /** The migrations this open performed (fromVersion = toVersion when there was nothing to do). */
  readonly migration: { readonly auth: Migrated; readonly audit: Migrated };
}

interface Migrated {
  readonly fromVersion: number;
  readonly toVersion: number;
}

interface UserRow {
  user_id: string;
  name: string;
  password_hash: string;
  roles_json: string;
  village_ids_json: string;
  household_id: string | null;
  jurisdiction_ids_json: string;
  disabled: boolean;
  created_at_ms: unknown;
  updated_at_ms: unknown;
}

interface TokenRow {
  token_id: string;
  user_id: string;
  name: string;
  created_at_ms: unknown;
  created_by: string;
  expires_at_ms: unknown;
  last_used_at_ms: unknown;
  revoked_at_ms: unknown;
}

/** An API token joined with its user, for authenticate: the token's own name and creation renamed apart. */
type TokenAuthRow = UserRow & Omit<TokenRow, "name" | "created_at_ms"> & { token_name: string; token_created_at_ms: unknown };

const USER_COLUMNS = "user_id, name, password_hash, roles_json, village_ids_json, household_id, jurisdiction_ids_json, disabled, created_at_ms, updated_at_ms";
const USER_COLUMNS_OF_U = USER_COLUMNS.split(", ").map((c) => `u.${c}`).join(", ");
const TOKEN_COLUMNS = "token_id, user_id, name, created_at_ms, created_by, expires_at_ms, last_used_at_ms, revoked_at_ms";

const toUser = (r: UserRow): UserView =>
  userView({
    userId: r.user_id,
    name: r.name,
    passwordHash: r.password_hash,
    rolesJson: r.roles_json,
    villageIdsJson: r.village_ids_json,
    householdId: r.household_id,
    jurisdictionIdsJson: r.jurisdiction_ids_json,
    disabled: r.disabled,
    createdAtMs: safeInteger(r.created_at_ms, "created_at_ms"),
    updatedAtMs: safeInteger(r.updated_at_ms, "updated_at_ms"),
  });

function toToken(r: TokenRow): ApiTokenView {
  const expiresAtMs = safeIntegerOrNull(r.expires_at_ms, "expires_at_ms");
  const lastUsedAtMs = safeIntegerOrNull(r.last_used_at_ms, "last_used_at_ms");
  const revokedAtMs = safeIntegerOrNull(r.revoked_at_ms, "revoked_at_ms");
  return {
    tokenId: r.token_id,
    userId: r.user_id,
    name: r.name,
    createdAtMs: safeInteger(r.created_at_ms, "created_at_ms"),
    createdBy: r.created_by,
    ...(expiresAtMs === null ? {} : { expiresAtMs }),
    ...(lastUsedAtMs === null ? {} : { lastUsedAtMs }),
    ...(revokedAtMs === null ? {} : { revokedAtMs }),
  };
}

export async function openPostgresAuthStore(options: PostgresAuthStoreOptions): Promise<PostgresAuthStore> {
  const now = options.now ?? Date.now;
  const policy: SessionPolicy = { ...DEFAULT_SESSION_POLICY, ...options.sessions };
  // The audit schema first: every user change appends to it.
  const { pool, migration } = await openMigratedPool(
    { connectionString: options.connectionString, poolSize: options.poolSize ?? 4, applicationName: "agri-auth" },
    async (client): Promise<PostgresAuthStore["migration"]> => {
      const audit = await migratePostgresAuditSchema(client, now());
      const auth = await migratePostgresAuthSchema(client, now());
      return { auth, audit };
    },
  );
  const audit = postgresAuditLogOnPool(pool, migration.audit);

  const villageOf = async (user: UserScope): Promise<string | undefined> =>
    auditVillageOf(user, user.householdId === undefined || options.villageOfHousehold === undefined ? undefined : await options.villageOfHousehold(user.householdId));

  const selectUser = async (client: pg.ClientBase | pg.Pool, userId: string, lock = ""): Promise<UserView | undefined> => {
    const id = canonicalUserId(userId);
    if (id === undefined) return undefined;
    const row = (await client.query<UserRow>(`SELECT ${USER_COLUMNS} FROM auth_users WHERE user_id = $1 ${lock}`, [id])).rows[0];
    return row === undefined ? undefined : toUser(row);
  };
  const requireUser = async (client: pg.ClientBase | pg.Pool, userId: string, lock = ""): Promise<UserView> => {
    const user = await selectUser(client, userId, lock);
    if (user === undefined) throw new AuthError(C.UNKNOWN, `no user ${userId}`);
    return user;
  };
  const selectToken = async (client: pg.ClientBase | pg.Pool, tokenId: string, lock = ""): Promise<ApiTokenView | undefined> => {
    const row = (await client.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM auth_api_tokens WHERE token_id = $1 ${lock}`, [tokenId])).rows[0];
    return row === undefined ? undefined : toToken(row);
  };
  const revokeAllOf = async (client: pg.ClientBase, userId: string, atMs: number): Promise<void> => {
    await client.query("UPDATE auth_sessions SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL", [atMs, userId]);
    // A password change or a disable ends the API tokens too: a token minted from a stolen session must not outlive it.
    await client.query("UPDATE auth_api_tokens SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL", [atMs, userId]);
  };

  // A login for an unknown user still runs scrypt, against this throwaway hash, so timing does not tell who exists.
  const decoyHash = hashSecret(randomBytes(18).toString("base64"));
  decoyHash.catch(() => undefined);

  let closed = false;
  return {
    kind: "postgres",
    migration,
    audit,

    async createUser(input, change) {
      const user = parseNewUser(input);
      const passwordHash = await hashSecret(user.password);
      const atMs = now();
      return inTransaction(pool, async (client) => {
        const c = scopeColumns(user);
        try {
          await client.query(
            `INSERT INTO auth_users (${USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, false, $8, $8)`,
            [user.userId, user.name, passwordHash, c.rolesJson, c.villageIdsJson, c.householdId, c.jurisdictionIdsJson, atMs],
          );
        } catch (error) {
          if (isPgUniqueViolation(error)) throw new AuthError(C.EXISTS, `user ${user.userId} already exists`, { cause: error });
          throw error;
        }
        const view = await requireUser(client, user.userId);
        await appendAuditEntry(client, userChangeEntry("user.create", change, undefined, view, atMs, await villageOf(view)));
        return view;
      });
    },

    getUser: (userId) => selectUser(pool, userId),

    listUsers: async () => (await pool.query<UserRow>(`SELECT ${USER_COLUMNS} FROM auth_users ORDER BY user_id`)).rows.map(toUser),

    async updateUser(userId, patch, change) {
      const p = parsePatch(patch);
      const atMs = now();
      return inTransaction(pool, async (client) => {
        // A change that may take an admin away waits for any other such change (on any worker), so the count of
        // the admins left below sees it committed: two admins disabling each other at once cannot leave none.
        if (p.disabled === true || p.roles !== undefined) await client.query("SELECT pg_advisory_xact_lock($1, 0)", [ADMIN_CHANGE_LOCK_CLASS]);
        const before = await requireUser(client, userId, "FOR UPDATE");
        const { next, action } = applyPatch(before, p);
        if (losesAdmin(before, next)) {
          const others = await client.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM auth_users WHERE user_id <> $1 AND NOT disabled AND roles_json LIKE '%"admin"%'`, [before.userId]);
          if ((others.rows[0]?.n ?? 0) === 0) throw new AuthError(C.LAST_ADMIN, `${before.userId} is the last enabled admin; make another admin first`);
        }
        const c = scopeColumns(next);
        await client.query(
          `UPDATE auth_users SET name = $1, roles_json = $2, village_ids_json = $3, household_id = $4, jurisdiction_ids_json = $5, disabled = $6, updated_at_ms = $7
           WHERE user_id = $8`,
          [next.name, c.rolesJson, c.villageIdsJson, c.householdId, c.jurisdictionIdsJson, next.disabled, atMs, before.userId],
        );
        // A disabled user is out now, not when their sessions expire.
        if (next.disabled) await revokeAllOf(client, before.userId, atMs);
        const after = await requireUser(client, before.userId);
        await appendAuditEntry(client, userChangeEntry(action, change, before, after, atMs, (await villageOf(after)) ?? (await villageOf(before))));
        return after;
      });
    },

    async setPassword(userId, password, change) {
      const existing = await requireUser(pool, userId);
      checkPassword(password, existing.userId);
      const passwordHash = await hashSecret(password);
      const atMs = now();
      return inTransaction(pool, async (client) => {
        const before = await requireUser(client, existing.userId, "FOR UPDATE");
        await client.query("UPDATE auth_users SET password_hash = $1, updated_at_ms = $2 WHERE user_id = $3", [passwordHash, atMs, before.userId]);
        // Whoever held a session under the old password is logged out (a stolen session ends with a reset).
        await revokeAllOf(client, before.userId, atMs);
        const after = await requireUser(client, before.userId);
        await appendAuditEntry(client, userChangeEntry("user.password", change, before, after, atMs, await villageOf(after)));
        return after;
      });
    },

    async verifyLogin(userId, password) {
      const id = canonicalUserId(userId);
      const row = id === undefined ? undefined : (await pool.query<UserRow>(`SELECT ${USER_COLUMNS} FROM auth_users WHERE user_id = $1`, [id])).rows[0];
      if (row === undefined || password.length > 1024) {
        await verifySecret(password.slice(0, 1024), await decoyHash);
        return undefined;
      }
      const ok = await verifySecret(password, row.password_hash);
      return ok && !row.disabled ? toUser(row) : undefined;
    },

    async startSession(userId, options) {
      const token = newOpaqueToken(SESSION_TOKEN_PREFIX);
      const atMs = now();
      const expiresAtMs = atMs + policy.absoluteTtlMs;
      const id = canonicalUserId(userId);
      const since = options?.unchangedSinceMs ?? null;
      // One statement: the user row's state is checked where the session is inserted, so a reset committing in
      // between cannot be missed.
      const inserted =
        id === undefined
          ? 0
          : (
              await pool.query(
                `INSERT INTO auth_sessions (session_digest, user_id, created_at_ms, last_seen_at_ms, expires_at_ms)
                 SELECT $1, user_id, $2, $2, $3 FROM auth_users WHERE user_id = $4 AND ($5::bigint IS NULL OR (NOT disabled AND updated_at_ms <= $5))`,
                [tokenDigest(token), atMs, expiresAtMs, id, since],
              )
            ).rowCount;
      if (inserted !== 1) {
        if (id !== undefined && since !== null && (await selectUser(pool, id)) !== undefined) throw new AuthError(C.ACCOUNT_CHANGED, `user ${userId} changed while logging in; log in again`);
        throw new AuthError(C.UNKNOWN, `no user ${userId}`);
      }
      return { token, expiresAtMs };
    },

    async endSession(token) {
      if (tokenKind(token) !== "session") return false;
      const atMs = now();
      const r = await pool.query(
        `UPDATE auth_sessions SET revoked_at_ms = $1
          WHERE session_digest = $2 AND revoked_at_ms IS NULL AND $1 < expires_at_ms AND $1 - last_seen_at_ms < $3`,
        [atMs, tokenDigest(token), policy.idleTimeoutMs],
      );
      return r.rowCount === 1;
    },

    async authenticate(token) {
      const kind = tokenKind(token);
      if (kind === undefined) return undefined;
      const atMs = now();
      const digest = tokenDigest(token);
      if (kind === "session") {
        // The touch is filtered exactly like the liveness check, so a dead session is never touched back to life.
        const row = (
          await pool.query<UserRow & { last_seen_at_ms: unknown; expires_at_ms: unknown; revoked_at_ms: unknown }>(
            `WITH touched AS (
               UPDATE auth_sessions SET last_seen_at_ms = $2
                WHERE session_digest = $1 AND revoked_at_ms IS NULL AND $2 < expires_at_ms
                  AND $2 - last_seen_at_ms < $3 AND $2 - last_seen_at_ms >= $4
             )
             SELECT s.last_seen_at_ms, s.expires_at_ms, s.revoked_at_ms, ${USER_COLUMNS_OF_U}
               FROM auth_sessions s JOIN auth_users u USING (user_id) WHERE s.session_digest = $1`,
            [digest, atMs, policy.idleTimeoutMs, policy.touchEveryMs],
          )
        ).rows[0];
        if (row === undefined || row.disabled) return undefined;
        const session = {
          userId: row.user_id,
          lastSeenAtMs: safeInteger(row.last_seen_at_ms, "last_seen_at_ms"),
          expiresAtMs: safeInteger(row.expires_at_ms, "expires_at_ms"),
          revokedAtMs: safeIntegerOrNull(row.revoked_at_ms, "revoked_at_ms"),
        };
        return sessionIsLive(session, atMs, policy) ? { principal: principalOf(toUser(row)), via: "session" } : undefined;
      }
      const row = (
        await pool.query<TokenAuthRow>(
          `WITH touched AS (
             UPDATE auth_api_tokens SET last_used_at_ms = $2
              WHERE token_digest = $1 AND revoked_at_ms IS NULL AND (expires_at_ms IS NULL OR $2 < expires_at_ms)
                AND (last_used_at_ms IS NULL OR $2 - last_used_at_ms >= $3)
           )
           SELECT t.token_id, t.name AS token_name, t.created_by, t.created_at_ms AS token_created_at_ms, t.expires_at_ms,
                  t.last_used_at_ms, t.revoked_at_ms, ${USER_COLUMNS_OF_U}
             FROM auth_api_tokens t JOIN auth_users u USING (user_id) WHERE t.token_digest = $1`,
          [digest, atMs, policy.touchEveryMs],
        )
      ).rows[0];
      if (row === undefined || row.disabled) return undefined;
      const view = toToken({ ...row, name: row.token_name, created_at_ms: row.token_created_at_ms });
      if (!tokenIsLive(view, atMs)) return undefined;
      return { principal: principalOf(toUser(row)), via: "api-token", tokenId: view.tokenId };
    },

    async createApiToken(userId, spec, change) {
      const atMs = now();
      const parsed = parseTokenSpec(spec, atMs);
      const token = newOpaqueToken(API_TOKEN_PREFIX);
      const view = await inTransaction(pool, async (client) => {
        // FOR SHARE: the owner cannot be changed (disabled) between this check and the commit.
        const user = await requireUser(client, userId, "FOR SHARE");
        const tokenId = newTokenId();
        await client.query(
          `INSERT INTO auth_api_tokens (token_id, token_digest, user_id, name, created_at_ms, created_by, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [tokenId, tokenDigest(token), user.userId, parsed.name, atMs, change.actor, parsed.expiresAtMs ?? null],
        );
        const created = await selectToken(client, tokenId);
        if (created === undefined) throw new Error(`API token ${tokenId} vanished inside its own transaction`);
        await appendAuditEntry(client, tokenChangeEntry("api-token.create", change, undefined, created, atMs, await villageOf(user)));
        return created;
      });
      return { ...view, token };
    },

    getApiToken: (tokenId) => selectToken(pool, tokenId),

    listApiTokens: async (userId) =>
      (await pool.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM auth_api_tokens WHERE user_id = $1 ORDER BY created_at_ms, token_id`, [canonicalUserId(userId) ?? userId])).rows.map(toToken),

    async revokeApiToken(tokenId, change) {
      const atMs = now();
      return inTransaction(pool, async (client) => {
        const before = await selectToken(client, tokenId, "FOR UPDATE");
        if (before === undefined) throw new AuthError(C.UNKNOWN, `no API token ${tokenId}`);
        if (before.revokedAtMs !== undefined) return before;
        await client.query("UPDATE auth_api_tokens SET revoked_at_ms = $1 WHERE token_id = $2", [atMs, tokenId]);
        const after = await selectToken(client, tokenId);
        if (after === undefined) throw new Error(`API token ${tokenId} vanished inside its own transaction`);
        const user = await selectUser(client, before.userId);
        await appendAuditEntry(client, tokenChangeEntry("api-token.revoke", change, before, after, atMs, user === undefined ? undefined : await villageOf(user)));
        return after;
      });
    },

    close: async () => {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

/** For `agri-cloud migrate`: brings the auth schema at `connectionString` to this code's version (the audit log's is
 * migratePostgresAudit's; openPostgresAuthStore applies both). */
export function migratePostgresAuth(connectionString: string, nowMs: number): Promise<{ fromVersion: number; toVersion: number }> {
  return migrateOnConnection(connectionString, "agri-migrate", (client) => migratePostgresAuthSchema(client, nowMs));
}
