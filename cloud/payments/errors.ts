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
