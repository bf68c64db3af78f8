// The audit log on PostgreSQL: the engine when the cloud's DATABASE_URL is postgres://, shared by several cloud
// workers. appendAuditEntry runs on a caller's connection, so a store with its own pg transaction (the auth store)
// writes its change and the entry in one commit; record() is that in a transaction of its own.
//
// Ids ascend in commit order, not only in allocation order. An identity value is taken at INSERT, so without more,
// a transaction that took id 7 and commits after another that took id 8 would let a reader paging with afterId=8
// skip 7 for ever. Each append therefore first takes a transaction-scoped advisory lock: appends are serialised
// until their transaction ends. Audited changes are human-paced (users, tariffs, top-ups), so the queue is short.

import type pg from "pg";
import { inTransaction, migrateOnConnection, openMigratedPool, pgSafeInteger } from "../postgres.js";
import { auditEntryOf, auditRowValues, parseAuditQuery, type AuditEntry, type AuditEntryInput, type AuditLog } from "./audit-log.js";
import { AuditError, AUDIT_ERROR_CODES as C } from "./errors.js";
import { migratePostgresAuditSchema } from "./postgres-audit-migrations.js";

/** "agri" "auda" in ASCII: held by an append until its transaction ends. */
export const AUDIT_APPEND_LOCK_KEY = 0x61677269_61756461n;

export interface PostgresAuditLogOptions {
  readonly connectionString: string;
  readonly now?: () => number;
  readonly poolSize?: number;
}

export interface PostgresAuditLog extends AuditLog {
  readonly kind: "postgres";
  /** The migration this open performed (fromVersion = toVersion when there was nothing to do). */
  readonly migration: { readonly fromVersion: number; readonly toVersion: number };
}

/**
 * A value read from a BIGINT column of the audit log or the auth store (which shares its pool): the number, or
 * AUDIT_NON_INTEGER_VALUE — never rounded. Decimal text is accepted too, for a caller's connection that lacks the
 * pool's parsers (appendAuditEntry on any client).
 */
export const safeInteger = (value: unknown, what: string): number => pgSafeInteger(value, what, (message) => new AuditError(C.NON_INTEGER, message));

/** safeInteger for a nullable column. */
export const safeIntegerOrNull = (value: unknown, what: string): number | null => (value === null ? null : safeInteger(value, what));

interface AuditRow {
  audit_id: unknown;
  at_ms: unknown;
  actor: string;
  action: string;
  entity_type: string;
  entity_id: string;
  village_id: string | null;
  reason: string | null;
  before_json: string | null;
  after_json: string | null;
}

const fromRow = (r: AuditRow): AuditEntry =>
  auditEntryOf(safeInteger(r.audit_id, "audit id"), {
    atMs: safeInteger(r.at_ms, "atMs"),
    actor: r.actor,
    action: r.action,
    entityType: r.entity_type,
    entityId: r.entity_id,
    villageId: r.village_id,
    reason: r.reason,
    before: r.before_json,
    after: r.after_json,
  });

/**
 * Appends one entry on `client`, which must be inside a transaction: the append lock is held until it ends, so make
 * it the transaction's last write (every engine here does) — a lock taken after it would be held in that queue too.
 */
export async function appendAuditEntry(client: pg.ClientBase, entry: AuditEntryInput): Promise<AuditEntry> {
  const v = auditRowValues(entry);
  await client.query("SELECT pg_advisory_xact_lock($1)", [AUDIT_APPEND_LOCK_KEY.toString()]);
  const r = await client.query<{ audit_id: unknown }>(
    `INSERT INTO audit_log (at_ms, actor, action, entity_type, entity_id, village_id, reason, before_json, after_json)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING audit_id`,
    [v.atMs, v.actor, v.action, v.entityType, v.entityId, v.villageId, v.reason, v.before, v.after],
  );
  return auditEntryOf(safeInteger(r.rows[0]?.audit_id, "audit id"), v);
}

/** The port over a pool someone else opened and migrated (the auth store's): close() leaves the pool open. */
export function postgresAuditLogOnPool(pool: pg.Pool, migration: PostgresAuditLog["migration"], onClose: () => Promise<void> = () => Promise.resolve()): PostgresAuditLog {
  return {
    kind: "postgres",
    migration,
    record: async (entry) => {
      // Checked before a connection is taken: a bad entry costs no round trip.
      auditRowValues(entry);
      return inTransaction(pool, (client) => appendAuditEntry(client, entry));
    },
    list: async (query) => {
      const q = parseAuditQuery(query);
      if (q.villageIds !== undefined && q.villageIds.length === 0) return [];
      const where: string[] = [];
      const args: unknown[] = [];
      const add = (clause: (n: string) => string, value: unknown): void => {
        args.push(value);
        where.push(clause(`$${args.length}`));
      };
      if (q.entityType !== undefined) add((n) => `entity_type = ${n}`, q.entityType);
      if (q.entityId !== undefined) add((n) => `entity_id = ${n}`, q.entityId);
      if (q.actor !== undefined) add((n) => `actor = ${n}`, q.actor);
      if (q.villageIds !== undefined) add((n) => `village_id = ANY(${n}::text[])`, q.villageIds);
      if (q.fromMs !== undefined) add((n) => `at_ms >= ${n}`, q.fromMs);
      if (q.toMs !== undefined) add((n) => `at_ms < ${n}`, q.toMs);
      if (q.afterId !== undefined) add((n) => `audit_id > ${n}`, q.afterId);
      args.push(q.limit);
      const sql = `SELECT * FROM audit_log ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`} ORDER BY audit_id LIMIT $${args.length}`;
      return (await pool.query<AuditRow>(sql, args)).rows.map(fromRow);
    },
    close: onClose,
  };
}

export async function openPostgresAuditLog(options: PostgresAuditLogOptions): Promise<PostgresAuditLog> {
  const now = options.now ?? Date.now;
  const { pool, migration } = await openMigratedPool({ connectionString: options.connectionString, poolSize: options.poolSize ?? 4, applicationName: "agri-audit" }, (client) =>
    migratePostgresAuditSchema(client, now()),
  );
  let closed = false;
  return postgresAuditLogOnPool(pool, migration, async () => {
    if (closed) return;
    closed = true;
    await pool.end();
  });
}

/** For `agri-cloud migrate`: brings the audit schema at `connectionString` to this code's version. */
export function migratePostgresAudit(connectionString: string, nowMs: number): Promise<{ fromVersion: number; toVersion: number }> {
  return migrateOnConnection(connectionString, "agri-migrate", (client) => migratePostgresAuditSchema(client, nowMs));
}
