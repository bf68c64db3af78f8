// The payments domain's one error class, a stable code per failure (issue #4: an online payment provider with a
// signed callback). A callback that cannot be verified is refused with one of the first four codes; an authentic
// callback the cloud cannot honour (unknown order, wrong amount) is recorded under the others, never posted.

import { AgriError } from "../../protocols/errors.js";

export const PAYMENT_ERROR_CODES = {
  BAD_SIGNATURE: "PAYMENT_BAD_SIGNATURE",
  STALE_CALLBACK: "PAYMENT_STALE_CALLBACK",
  MALFORMED_CALLBACK: "PAYMENT_MALFORMED_CALLBACK",
  UNKNOWN_PROVIDER: "PAYMENT_UNKNOWN_PROVIDER",
  UNKNOWN_ORDER: "PAYMENT_UNKNOWN_ORDER",
  UNKNOWN_HOUSEHOLD: "PAYMENT_UNKNOWN_HOUSEHOLD",
  AMOUNT_MISMATCH: "PAYMENT_AMOUNT_MISMATCH",
  ORDER_ALREADY_PAID: "PAYMENT_ORDER_ALREADY_PAID",
  OVER_CAP: "PAYMENT_OVER_CAP",
  PROVIDER_FAILED: "PAYMENT_PROVIDER_FAILED",
  STORE_SCHEMA_MISMATCH: "PAYMENT_STORE_SCHEMA_MISMATCH",
  /** PostgreSQL holds payments migrated by newer code than this. */
  STORE_SCHEMA_TOO_NEW: "PAYMENT_STORE_SCHEMA_TOO_NEW",
  /** A store call with a malformed argument (a fractional amount, an empty id): a bug in the caller, refused. */
  INVALID_INPUT: "PAYMENT_INVALID_INPUT",
  /** A BIGINT read back that is not a safe integer: refused, never rounded. */
  NON_INTEGER: "PAYMENT_NON_INTEGER_VALUE",
  /** The store could not settle a race in a few rounds (a claim released and re-made meanwhile); try again. */
  STORE_CONTENDED: "PAYMENT_STORE_CONTENDED",
} as const;
export type PaymentErrorCode = (typeof PAYMENT_ERROR_CODES)[keyof typeof PAYMENT_ERROR_CODES];

export class PaymentError extends AgriError {
  constructor(
    override readonly code: PaymentErrorCode,
    message: string,
    retryable = false,
  ) {
    super(code, retryable, message);
  }
}
