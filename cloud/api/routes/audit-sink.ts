// The one thing the domain routes need from the audit log (cloud/audit/audit-log.ts): append a record of who changed
// what, when and why. Declared here, narrow, so the routes depend on this shape rather than on the log's file, and
// a test can pass the real log or any other sink of the same shape.

export interface AuditRecordInput {
  /** The principal's userId, or "provider:<name>" / "system:<component>". */
  readonly actor: string;
  /** A dotted verb: "household.create", "ledger.top-up", "tariff.publish". */
  readonly action: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly villageId?: string;
  readonly reason?: string;
  readonly before?: unknown;
  readonly after?: unknown;
  readonly atMs: number;
}

export interface AuditSink {
  /** Synchronous or not; a throw (or rejection) fails the request that made the change. */
  record(entry: AuditRecordInput): unknown;
}
