// The subsidy domain's one error class, with stable codes (the HTTP layer maps them to problem+json statuses).

import { AgriError } from "../../protocols/errors.js";

export const SUBSIDY_ERROR_CODES = {
  INVALID: "SUBSIDY_INVALID_INPUT",
  UNKNOWN: "SUBSIDY_UNKNOWN",
  WRONG_STATE: "SUBSIDY_WRONG_STATE",
  SAME_APPROVER: "SUBSIDY_SAME_APPROVER",
  IMMUTABLE: "SUBSIDY_STATEMENT_IMMUTABLE",
  UNRESOLVED: "SUBSIDY_UNRESOLVED_LINES",
  NOTICE_RUNNING: "SUBSIDY_NOTICE_RUNNING",
  POLICY_EXISTS: "SUBSIDY_POLICY_EXISTS",
  SEASON_PUBLISHED: "SUBSIDY_SEASON_PUBLISHED",
  CORRECTION_EXISTS: "SUBSIDY_CORRECTION_EXISTS",
  PAYMENT_METHOD_FIXED: "SUBSIDY_PAYMENT_METHOD_FIXED",
} as const;
export type SubsidyErrorCode = (typeof SUBSIDY_ERROR_CODES)[keyof typeof SUBSIDY_ERROR_CODES];

/** HTTP status per code: bad input 400, unknown 404, everything about the workflow's order 409. */
export const SUBSIDY_HTTP_STATUS: Readonly<Record<SubsidyErrorCode, number>> = {
  SUBSIDY_INVALID_INPUT: 400,
  SUBSIDY_UNKNOWN: 404,
  SUBSIDY_WRONG_STATE: 409,
  SUBSIDY_SAME_APPROVER: 409,
  SUBSIDY_STATEMENT_IMMUTABLE: 409,
  SUBSIDY_UNRESOLVED_LINES: 409,
  SUBSIDY_NOTICE_RUNNING: 409,
  SUBSIDY_POLICY_EXISTS: 409,
  SUBSIDY_SEASON_PUBLISHED: 409,
  SUBSIDY_CORRECTION_EXISTS: 409,
  SUBSIDY_PAYMENT_METHOD_FIXED: 409,
};

export class SubsidyError extends AgriError {
  /** Read by the API's problemFromError, so a refused step is its 4xx problem and not a 500. */
  readonly status: number;
  constructor(
    override readonly code: SubsidyErrorCode,
    message: string,
  ) {
    super(code, false, message);
    this.status = SUBSIDY_HTTP_STATUS[code];
  }
}
