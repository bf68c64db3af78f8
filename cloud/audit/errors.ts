// The audit log's error class and its codes (README error table): a refused entry, a refused edit of a recorded
// one, and a database file migrated by other code.

import { AgriError } from "../../protocols/errors.js";

export const AUDIT_ERROR_CODES = {
  INVALID_ENTRY: "AUDIT_INVALID_ENTRY",
  APPEND_ONLY: "AUDIT_APPEND_ONLY",
  SCHEMA_TOO_NEW: "AUDIT_SCHEMA_TOO_NEW",
  SCHEMA_MISMATCH: "AUDIT_SCHEMA_MISMATCH",
  NON_INTEGER: "AUDIT_NON_INTEGER_VALUE",
} as const;

export type AuditErrorCode = (typeof AUDIT_ERROR_CODES)[keyof typeof AUDIT_ERROR_CODES];

export const AUDIT_ERROR_TABLE = [
  { code: AUDIT_ERROR_CODES.INVALID_ENTRY, cause: "an entry with an empty actor/action/entity, a bad atMs, or before/after that is not JSON", fix: "a caller bug: say who did what to which entity, with plain JSON snapshots" },
  { code: AUDIT_ERROR_CODES.APPEND_ONLY, cause: "an UPDATE or DELETE of an audit row reached the database", fix: "the audit log is never edited: record a new entry that explains the correction" },
  { code: AUDIT_ERROR_CODES.SCHEMA_TOO_NEW, cause: "the database (cloud.db, or PostgreSQL) was migrated by a newer version of the code", fix: "upgrade this program" },
  { code: AUDIT_ERROR_CODES.SCHEMA_MISMATCH, cause: "an applied audit migration's name differs from this code's", fix: "the file belongs to another branch or program: restore the right file" },
  { code: AUDIT_ERROR_CODES.NON_INTEGER, cause: "a PostgreSQL BIGINT (an id or a time in ms) beyond ±(2^53 − 1), written by something other than this code", fix: "find the writer; the value is refused, never rounded" },
] as const;

export class AuditError extends AgriError {
  constructor(code: AuditErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, false, message, options);
  }
}
