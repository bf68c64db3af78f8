// The audit log on SQLite (cloud.db, better-sqlite3): the default engine. Besides the async port it offers
// recordSync, because better-sqlite3 transactions are synchronous: a store that shares the database handle (the
// SQLite auth store, the subsidy store) calls it inside its own transaction, so the change and its entry commit or
// roll back together. The triggers of migrations.ts refuse any UPDATE or DELETE, whoever issues it.

/* eslint-disable @typescript-eslint/require-await -- the port is async; this engine answers synchronously, and an
   async method turns its throw into a rejection, so callers see one error path on both engines. */

import type Database from "better-sqlite3";
import { openDurableDatabase } from "../sqlite.js";
import { auditEntryOf, auditRowValues, parseAuditQuery, type AuditEntry, type AuditEntryInput, type AuditLog, type AuditQuery } from "./audit-log.js";
import { migrateAudit } from "./migrations.js";

export interface SqliteAuditLogOptions {
  readonly now?: () => number;
  readonly busyTimeoutMs?: number;
}

export interface SqliteAuditLog extends AuditLog {
  readonly kind: "sqlite";
  /** The database handle (shared with the caller when it passed one in). */
  readonly db: Database.Database;
  /** record, synchronously: joins the transaction open on `db`, if any. */
  recordSync(entry: AuditEntryInput): AuditEntry;
  listSync(query: AuditQuery): AuditEntry[];
}

interface AuditRow {
  audit_id: number;
  at_ms: number;
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
  auditEntryOf(r.audit_id, {
    atMs: r.at_ms,
    actor: r.actor,
    action: r.action,
    entityType: r.entity_type,
    entityId: r.entity_id,
    villageId: r.village_id,
    reason: r.reason,
    before: r.before_json,
    after: r.after_json,
  });

/** Opens the audit log on cloud.db (a path, closed by close()) or on a handle another store opened (left open). */
export function openSqliteAuditLog(target: Database.Database | string, options: SqliteAuditLogOptions = {}): SqliteAuditLog {
  const now = options.now ?? Date.now;
  const owned = typeof target === "string";
  const db = owned ? openDurableDatabase(target, options.busyTimeoutMs ?? 5000, (d) => migrateAudit(d, now())) : target;
  if (!owned) migrateAudit(db, now());

  const insert = db.prepare(
    `INSERT INTO audit_log (at_ms, actor, action, entity_type, entity_id, village_id, reason, before_json, after_json)
     VALUES (@atMs, @actor, @action, @entityType, @entityId, @villageId, @reason, @before, @after)`,
  );

  const recordSync = (entry: AuditEntryInput): AuditEntry => {
    const values = auditRowValues(entry);
    return auditEntryOf(Number(insert.run(values).lastInsertRowid), values);
  };

  const listSync = (query: AuditQuery): AuditEntry[] => {
    const q = parseAuditQuery(query);
    if (q.villageIds !== undefined && q.villageIds.length === 0) return [];
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (clause: string, ...values: (string | number)[]): void => {
      where.push(clause);
      args.push(...values);
    };
    if (q.entityType !== undefined) add("entity_type = ?", q.entityType);
    if (q.entityId !== undefined) add("entity_id = ?", q.entityId);
    if (q.actor !== undefined) add("actor = ?", q.actor);
    if (q.villageIds !== undefined) add(`village_id IN (${q.villageIds.map(() => "?").join(", ")})`, ...q.villageIds);
    if (q.fromMs !== undefined) add("at_ms >= ?", q.fromMs);
    if (q.toMs !== undefined) add("at_ms < ?", q.toMs);
    if (q.afterId !== undefined) add("audit_id > ?", q.afterId);
    const sql = `SELECT * FROM audit_log ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`} ORDER BY audit_id LIMIT ?`;
    return (db.prepare(sql).all(...args, q.limit) as AuditRow[]).map(fromRow);
  };

  return {
    kind: "sqlite",
    db,
    recordSync,
    listSync,
    // async: a throw becomes a rejection, so callers see one error path on both engines.
    record: async (entry) => recordSync(entry),
    list: async (query) => listSync(query),
    close: async () => {
      if (owned && db.open) db.close();
    },
  };
}
