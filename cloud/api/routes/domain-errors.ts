// The domains' own errors as HTTP problems, for the routes in this folder: each domain throws its AgriError with a
// stable code, and this table says which status it is, so a refused top-up is a 422 naming how much would fit, not
// a 500. The code travels unchanged in the problem body.

import { AgriError } from "../../../protocols/errors.js";
import { HttpProblem } from "../problem.js";

const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  REGISTRY_INVALID_INPUT: 400,
  REGISTRY_UNKNOWN_ENTITY: 404,
  REGISTRY_ALREADY_EXISTS: 409,
  PREPAID_UNKNOWN_HOUSEHOLD: 404,
  PREPAID_TOP_UP_REFUSED: 422,
  LEDGER_IDEMPOTENCY_CONFLICT: 409,
  LEDGER_UNKNOWN_ACCOUNT: 404,
  PAYMENT_BAD_SIGNATURE: 401,
  PAYMENT_STALE_CALLBACK: 401,
  PAYMENT_MALFORMED_CALLBACK: 400,
  PAYMENT_UNKNOWN_PROVIDER: 404,
  PAYMENT_UNKNOWN_ORDER: 404,
  PAYMENT_UNKNOWN_HOUSEHOLD: 404,
  PREPAID_REFUND_REFUSED: 422,
  PAYMENT_OVER_CAP: 422,
  PAYMENT_AMOUNT_MISMATCH: 422,
  PAYMENT_ORDER_ALREADY_PAID: 409,
};

/** An HttpProblem for a known domain error; anything else is returned unchanged (the app's handler makes it a 500). */
export function domainProblem(error: unknown): unknown {
  if (error instanceof HttpProblem || !(error instanceof AgriError)) return error;
  const status = STATUS_BY_CODE[error.code];
  return status === undefined ? error : new HttpProblem(status, error.code, error.message);
}

/** Runs a handler body, rethrowing a domain error as its problem. */
export async function asProblem<T>(body: () => T | Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    throw domainProblem(error);
  }
}
