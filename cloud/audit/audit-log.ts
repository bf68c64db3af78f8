// The audit log of issue #4: every change to money, tariffs, meters and users — who, when, what, why — as rows
// that can be appended and read, never changed. It lives in cloud.db beside the registry and the ledger, so a
// store that shares the database handle can write its change and its audit entry in one transaction (record is
// synchronous for that reason). Append-only is enforced twice: this module has no update or delete path, and the
// table's triggers abort any UPDATE or DELETE from elsewhere (migrations.ts).

import type Database from "better-sqlite3";
import { z } from "zod";
import { openDurableDatabase } from "../sqlite.js";
import { AuditError, AUDIT_ERROR_CODES as C } from "./errors.js";
import { APPEND_ONLY_MESSAGE, migrateAudit } from "./migrations.js";

const text = (maxLength: number) => z.string().min(1).max(maxLength);

export const auditEntryInputSchema = z.strictObject({
  /** The userId (or "cli:<os user>", "system:<component>") that made the change. */
  actor: text(200),
  /** What was done, as a dotted verb: "user.create", "tariff.publish", "ledger.top-up". */
  action: text(100),
  entityType: text(100),
  entityId: text(200),
  /** The village the entity belongs to, if any: officers may read their own villages' entries. */
  villageId: text(200).optional(),
  reason: z.string().max(2000).optional(),
  before: z.unknown().optional(),
  after: z.unknown().optional(),
  atMs: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});
export type AuditEntryInput = z.input<typeof auditEntryInputSchema>;

export interface AuditEntry {
  readonly auditId: number;
  readonly atMs: number;
  readonly actor: string;
  readonly action: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly villageId?: string;
  readonly reason?: string;
  readonly before?: unknown;
  readonly after?: unknown;
}

export const AUDIT_LIST_MAX = 1000;

export const auditQuerySchema = z.strictObject({
  entityType: text(100).optional(),
  entityId: text(200).optional(),
  actor: text(200).optional(),
  /** Only entries of these villages (an officer's scope); an empty list matches nothing. */
  villageIds: z.array(text(200)).max(1000).optional(),
  fromMs: z.number().int().nonnegative().optional(),
  /** Exclusive. */
  toMs: z.number().int().nonnegative().optional(),
  limit: z.number().int().min(1).max(AUDIT_LIST_MAX),
  /** Entries after this auditId (paging: pass the last auditId of the previous page). */
  afterId: z.number().int().nonnegative().optional(),
});
export type AuditQuery = z.input<typeof auditQuerySchema>;

export interface AuditLog {
  /** Appends one entry and returns it with its auditId. Synchronous, so it can join the caller's transaction. */
  record(entry: AuditEntryInput): AuditEntry;
  /** Entries in the order they were recorded (ascending auditId), filtered. */
  list(query: AuditQuery): AuditEntry[];
  /** The shared database handle (for a store that wants its change and the audit entry in one transaction). */
  readonly db: Database.Database;
  /** Closes the database only when openAuditLog opened it (given a path). */
  close(): void;
}

export interface AuditLogOptions {
  readonly now?: () => number;
  readonly busyTimeoutMs?: number;
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

function toJson(value: unknown, field: string): string | null {
  if (value === undefined) return null;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new AuditError(C.INVALID_ENTRY, `${field} is not JSON-serialisable`, { cause: error });
  }
  if (json === undefined) throw new AuditError(C.INVALID_ENTRY, `${field} is not JSON-serialisable`);
  return json;
}

function fromRow(row: AuditRow): AuditEntry {
  return {
    auditId: row.audit_id,
    atMs: row.at_ms,
    actor: row.actor,
    action: row.action,
    entityType: row.entity_type,
    entityId: row.entity_id,
    ...(row.village_id === null ? {} : { villageId: row.village_id }),
    ...(row.reason === null ? {} : { reason: row.reason }),
    ...(row.before_json === null ? {} : { before: JSON.parse(row.before_json) as unknown }),
    ...(row.after_json === null ? {} : { after: JSON.parse(row.after_json) as unknown }),
  };
}

function issuesText(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(entry)"}: ${i.message}`).join("; ");
}

/** Opens the audit log on cloud.db (a path) or on a database handle another store already opened (shared). */
export function openAuditLog(target: Database.Database | string, options: AuditLogOptions = {}): AuditLog {
  const now = options.now ?? Date.now;
  const owned = typeof target === "string";
  const db = owned ? openDurableDatabase(target, options.busyTimeoutMs ?? 5000, (d) => migrateAudit(d, now())) : target;
  if (!owned) migrateAudit(db, now());

  const insert = db.prepare(
    `INSERT INTO audit_log (at_ms, actor, action, entity_type, entity_id, village_id, reason, before_json, after_json)
     VALUES (@atMs, @actor, @action, @entityType, @entityId, @villageId, @reason, @before, @after)`,
  );

  return {
    db,
    record(entry) {
      const parsed = auditEntryInputSchema.safeParse(entry);
      if (!parsed.success) throw new AuditError(C.INVALID_ENTRY, `invalid audit entry: ${issuesText(parsed.error)}`);
      const e = parsed.data;
      const row = {
        atMs: e.atMs,
        actor: e.actor,
        action: e.action,
        entityType: e.entityType,
        entityId: e.entityId,
        villageId: e.villageId ?? null,
        reason: e.reason ?? null,
        before: toJson(e.before, "before"),
        after: toJson(e.after, "after"),
      };
      const auditId = Number(insert.run(row).lastInsertRowid);
      return fromRow({
        audit_id: auditId,
        at_ms: row.atMs,
        actor: row.actor,
        action: row.action,
        entity_type: row.entityType,
        entity_id: row.entityId,
        village_id: row.villageId,
        reason: row.reason,
        before_json: row.before,
        after_json: row.after,
      });
    },
    list(query) {
      const parsed = auditQuerySchema.safeParse(query);
      if (!parsed.success) throw new AuditError(C.INVALID_ENTRY, `invalid audit query: ${issuesText(parsed.error)}`);
      const q = parsed.data;
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
      const rows = db.prepare(sql).all(...args, q.limit) as AuditRow[];
      return rows.map(fromRow);
    },
    close() {
      if (owned) db.close();
    },
  };
}

/** True when `error` is SQLite refusing an edit of the audit log (the trigger's RAISE). */
export function isAuditAppendOnlyViolation(error: unknown): boolean {
  return error instanceof Error && error.message.includes(APPEND_ONLY_MESSAGE);
}
