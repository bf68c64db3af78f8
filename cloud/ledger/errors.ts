// The ledger core's one error class and its codes. The pure cores report bad *data* (a reading that goes backwards,
// a reading with no tariff in force) as `held` results, never as exceptions; they throw only when a caller hands them
// arguments no valid boundary could have produced (a negative overdraft, a non-integer price).

import { AgriError } from "../../protocols/errors.js";

export const LEDGER_ERROR_CODES = {
  BAD_ARGUMENT: "LEDGER_BAD_ARGUMENT",
} as const;

export type LedgerErrorCode = (typeof LEDGER_ERROR_CODES)[keyof typeof LEDGER_ERROR_CODES];

export const LEDGER_ERROR_TABLE = [
  {
    code: LEDGER_ERROR_CODES.BAD_ARGUMENT,
    cause: "a ledger core was called with a value outside its documented domain (non-integer money, negative overdraft, price ≤ 0)",
    fix: "a caller bug: validate at the boundary with the module's zod schema before calling the core",
  },
] as const;

/** A caller handed a core an impossible argument; retrying with the same argument cannot help. */
export class LedgerError extends AgriError {
  constructor(code: LedgerErrorCode, message: string) {
    super(code, false, message);
  }
}

/** Throws LEDGER_BAD_ARGUMENT unless `value` is a safe integer ≥ `min`. */
export function requireInteger(value: number, what: string, min = Number.MIN_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new LedgerError(LEDGER_ERROR_CODES.BAD_ARGUMENT, `${what} must be a safe integer ≥ ${min}, got ${value}`);
  }
  return value;
}
