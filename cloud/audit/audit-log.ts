// The audit log of issue #4: every change to money, tariffs, meters and users — who, when, what, why — as rows
// that can be appended and read, never changed. This file is the port (AuditLog) and what both engines share: the
// entry and query schemas, the row encoding, and recognising a refused edit. The engines are sqlite-audit-log.ts
// (cloud.db, beside the registry and the ledger; its synchronous recordSync lets a store sharing the handle write
// its change and the entry in one transaction) and postgres-audit-log.ts (appendAuditEntry joins a caller's pg
// transaction the same way). Append-only is enforced twice on both: no update or delete path here, and the
// database refuses any UPDATE or DELETE (and on PostgreSQL TRUNCATE) from elsewhere (the migrations' triggers).

import { z } from "zod";
import { AuditError, AUDIT_ERROR_CODES as C } from "./errors.js";

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
  fromMs: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  /** Exclusive. */
  toMs: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
  limit: z.number().int().min(1).max(AUDIT_LIST_MAX),
  /** Entries after this auditId (paging: pass the last auditId of the previous page). */
  afterId: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
});
export type AuditQuery = z.input<typeof auditQuerySchema>;
export type ParsedAuditQuery = z.output<typeof auditQuerySchema>;

export type AuditLogKind = "sqlite" | "postgres";

/** The audit log the cloud uses, on either engine. */
export interface AuditLog {
  readonly kind: AuditLogKind;
  /** Appends one entry and answers it with its auditId (ascending in commit order). */
  record(entry: AuditEntryInput): Promise<AuditEntry>;
  /** Entries in the order they were recorded (ascending auditId), filtered. */
  list(query: AuditQuery): Promise<AuditEntry[]>;
  /** Releases what this log opened itself; a shared database handle or pool stays open for its owner. */
  close(): Promise<void>;
}

/** An entry as its columns: validated, snapshots as JSON text (kept verbatim, so they read back as written). */
export interface AuditRowValues {
  readonly atMs: number;
  readonly actor: string;
  readonly action: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly villageId: string | null;
  readonly reason: string | null;
  readonly before: string | null;
  readonly after: string | null;
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

function issuesText(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(entry)"}: ${i.message}`).join("; ");
}

/** The entry checked and encoded, or AUDIT_INVALID_ENTRY: nothing invalid reaches either database. */
export function auditRowValues(entry: AuditEntryInput): AuditRowValues {
  const parsed = auditEntryInputSchema.safeParse(entry);
  if (!parsed.success) throw new AuditError(C.INVALID_ENTRY, `invalid audit entry: ${issuesText(parsed.error)}`);
  const e = parsed.data;
  return {
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
}

export function parseAuditQuery(query: AuditQuery): ParsedAuditQuery {
  const parsed = auditQuerySchema.safeParse(query);
  if (!parsed.success) throw new AuditError(C.INVALID_ENTRY, `invalid audit query: ${issuesText(parsed.error)}`);
  return parsed.data;
}

export function auditEntryOf(auditId: number, v: AuditRowValues): AuditEntry {
  return {
    auditId,
    atMs: v.atMs,
    actor: v.actor,
    action: v.action,
    entityType: v.entityType,
    entityId: v.entityId,
    ...(v.villageId === null ? {} : { villageId: v.villageId }),
    ...(v.reason === null ? {} : { reason: v.reason }),
    ...(v.before === null ? {} : { before: JSON.parse(v.before) as unknown }),
    ...(v.after === null ? {} : { after: JSON.parse(v.after) as unknown }),
  };
}

/** The message both engines' triggers raise on an edit of a recorded entry. */
export const APPEND_ONLY_MESSAGE = "AUDIT_APPEND_ONLY: the audit log is never edited";

/** True when `error` is the database refusing an edit of the audit log (SQLite's RAISE, PostgreSQL's trigger). */
export function isAuditAppendOnlyViolation(error: unknown): boolean {
  return error instanceof Error && error.message.includes(APPEND_ONLY_MESSAGE);
}
