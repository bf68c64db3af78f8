// The one thing the domain routes need from the audit log (cloud/audit/audit-log.ts): append a record of who changed
// what, when and why. The entry is the log's own input type; the sink is narrowed to `record`, so a test can pass the
// real log or any other sink of the same shape.

import type { AuditEntryInput } from "../../audit/audit-log.js";

export type AuditRecordInput = AuditEntryInput;

export interface AuditSink {
  /** Synchronous or not; a throw (or rejection) fails the request that made the change. */
  record(entry: AuditRecordInput): unknown;
}
