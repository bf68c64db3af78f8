// The ledger store's error class and its codes: every refusal of the Ledger port (ledger.ts) is one of these, with a
// stable code and a retry flag, whatever the implementation (SQLite today, PostgreSQL later).

import { AgriError } from "../../../protocols/errors.js";
import type { MigrationProblem } from "../../schema-migrations.js";

export const LEDGER_STORE_ERROR_CODES = {
  UNBALANCED: "LEDGER_UNBALANCED",
  NON_INTEGER_AMOUNT: "LEDGER_NON_INTEGER_AMOUNT",
  TOO_FEW_LINES: "LEDGER_TOO_FEW_LINES",
  INVALID_ENTRY: "LEDGER_INVALID_ENTRY",
  IDEMPOTENCY_CONFLICT: "LEDGER_IDEMPOTENCY_CONFLICT",
  UNKNOWN_ACCOUNT: "LEDGER_UNKNOWN_ACCOUNT",
  ACCOUNT_CONFLICT: "LEDGER_ACCOUNT_CONFLICT",
  CHARGE_STATE_CONFLICT: "LEDGER_CHARGE_STATE_CONFLICT",
  APPEND_ONLY: "LEDGER_APPEND_ONLY",
  SCHEMA_TOO_NEW: "LEDGER_SCHEMA_TOO_NEW",
  SCHEMA_MISMATCH: "LEDGER_SCHEMA_MISMATCH",
} as const;

export type LedgerStoreErrorCode = (typeof LEDGER_STORE_ERROR_CODES)[keyof typeof LEDGER_STORE_ERROR_CODES];

const C = LEDGER_STORE_ERROR_CODES;

export const LEDGER_STORE_ERROR_TABLE = [
  { code: C.UNBALANCED, cause: "the lines of an entry do not sum to zero fen (double entry)", fix: "a caller bug: every debit needs its credit in the same entry" },
  { code: C.NON_INTEGER_AMOUNT, cause: "a line's amountFen is not a non-zero safe integer (invariant 1: no float touches the ledger)", fix: "compute money in integer fen; drop zero lines" },
  { code: C.TOO_FEW_LINES, cause: "an entry with fewer than two lines", fix: "a posting moves money between at least two accounts" },
  { code: C.INVALID_ENTRY, cause: "an unknown kind, an empty idempotency key or actor, a bad atMs or a non-string memo", fix: "validate at the boundary" },
  { code: C.IDEMPOTENCY_CONFLICT, cause: "an idempotency key already posted with different content", fix: "a new fact needs a new key; a mistake is fixed by a correction posting" },
  { code: C.UNKNOWN_ACCOUNT, cause: "a line or query names an account that was never opened", fix: "openAccount first" },
  { code: C.ACCOUNT_CONFLICT, cause: "openAccount with an existing id but a different kind, village or household", fix: "accounts are immutable; use a new account id" },
  { code: C.CHARGE_STATE_CONFLICT, cause: "applyCharges with a revision that is no longer the meter's current one (another worker applied first)", fix: "retryable: reload the state, re-run chargesFor, apply again" },
  { code: C.APPEND_ONLY, cause: "an UPDATE or DELETE of a posting, line, audit row or account reached the database", fix: "never edit money: post a correction" },
  { code: C.SCHEMA_TOO_NEW, cause: "the database was migrated by a newer version of the code", fix: "upgrade this program; never run old code on a newer ledger" },
  { code: C.SCHEMA_MISMATCH, cause: "an applied migration's name differs from the one this code has at that version", fix: "the file belongs to another branch or program: restore the right file" },
] as const;

export class LedgerStoreError extends AgriError {
  constructor(code: LedgerStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, code === C.CHARGE_STATE_CONFLICT, message, options);
  }
}

/** A database the ledger must not touch, as its typed error: the same for the SQLite and the PostgreSQL ledger. */
export function refuseLedgerSchema(problem: MigrationProblem): LedgerStoreError {
  return problem.kind === "too-new"
    ? new LedgerStoreError(C.SCHEMA_TOO_NEW, `the ledger is at schema version ${problem.fromVersion}; this code knows up to ${problem.knownVersion}`)
    : new LedgerStoreError(C.SCHEMA_MISMATCH, `schema version ${problem.version} was applied as "${problem.appliedName}"; this code has "${problem.knownName ?? "nothing"}"`);
}
