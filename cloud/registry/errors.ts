// The registry's one error class: a stable code per failure (the CLI maps INVALID/UNKNOWN/EXISTS to exit code 2).

import { AgriError } from "../../protocols/errors.js";

export const REGISTRY_ERROR_CODES = {
  INVALID: "REGISTRY_INVALID_INPUT",
  UNKNOWN: "REGISTRY_UNKNOWN_ENTITY",
  EXISTS: "REGISTRY_ALREADY_EXISTS",
  SCHEMA_TOO_NEW: "REGISTRY_SCHEMA_TOO_NEW",
  SCHEMA_MISMATCH: "REGISTRY_SCHEMA_MISMATCH",
  /** A stored integer (ms, Wh, fen) outside ±(2^53 − 1) on PostgreSQL: refused rather than rounded. */
  NON_INTEGER: "REGISTRY_NON_INTEGER_VALUE",
} as const;
export type RegistryErrorCode = (typeof REGISTRY_ERROR_CODES)[keyof typeof REGISTRY_ERROR_CODES];

export class RegistryError extends AgriError {
  constructor(
    override readonly code: RegistryErrorCode,
    message: string,
  ) {
    super(code, false, message);
  }
}
