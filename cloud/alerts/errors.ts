// The alerts domain's errors: one class, stable codes (README error table), mapped to HTTP by routes.ts.

import { AgriError } from "../../protocols/errors.js";

export const ALERTS_ERROR_CODES = {
  notFound: "ALERTS_NOT_FOUND",
  invalid: "ALERTS_INVALID",
  schemaTooNew: "ALERTS_SCHEMA_TOO_NEW",
} as const;

export class AlertsError extends AgriError {
  constructor(
    code: string,
    message: string,
    /** The HTTP status routes.ts answers with. */
    readonly status: number,
  ) {
    super(code, false, message);
  }
}
