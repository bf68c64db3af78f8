// The auth store's error class and codes (README error table). The HTTP layer maps them to problems: INVALID and
// WEAK_PASSWORD → 400, EXISTS and LAST_ADMIN → 409, UNKNOWN → 404.

import { AgriError } from "../../protocols/errors.js";

export const AUTH_ERROR_CODES = {
  INVALID: "AUTH_INVALID_INPUT",
  WEAK_PASSWORD: "AUTH_WEAK_PASSWORD",
  EXISTS: "AUTH_ALREADY_EXISTS",
  UNKNOWN: "AUTH_UNKNOWN_ENTITY",
  LAST_ADMIN: "AUTH_LAST_ADMIN",
  ACCOUNT_CHANGED: "AUTH_ACCOUNT_CHANGED",
  SCHEMA_TOO_NEW: "AUTH_SCHEMA_TOO_NEW",
  SCHEMA_MISMATCH: "AUTH_SCHEMA_MISMATCH",
} as const;

export type AuthErrorCode = (typeof AUTH_ERROR_CODES)[keyof typeof AUTH_ERROR_CODES];

export const AUTH_ERROR_TABLE = [
  { code: AUTH_ERROR_CODES.INVALID, cause: "a user, role set or scope that breaks the rules (a farmer without a household, an officer without a village…)", fix: "correct the named field" },
  { code: AUTH_ERROR_CODES.WEAK_PASSWORD, cause: "a password shorter than 10 characters, longer than 256, or containing the user id", fix: "choose a longer passphrase" },
  { code: AUTH_ERROR_CODES.EXISTS, cause: "a user id that is already taken", fix: "choose another id; user ids are never reused" },
  { code: AUTH_ERROR_CODES.UNKNOWN, cause: "a user or API token that does not exist", fix: "check the id" },
  { code: AUTH_ERROR_CODES.ACCOUNT_CHANGED, cause: "the password was reset, or the user disabled or changed, while their password was being checked at login", fix: "log in again" },
  { code: AUTH_ERROR_CODES.LAST_ADMIN, cause: "disabling, or taking the admin role from, the last enabled admin (checked in the change's transaction, so two admins disabling each other at once cannot leave none)", fix: "make another admin first" },
  { code: AUTH_ERROR_CODES.SCHEMA_TOO_NEW, cause: "the database (cloud.db, or PostgreSQL) was migrated by a newer version of the code", fix: "upgrade this program" },
  { code: AUTH_ERROR_CODES.SCHEMA_MISMATCH, cause: "an applied auth migration's name differs from this code's", fix: "restore the right file" },
] as const;

export class AuthError extends AgriError {
  constructor(code: AuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, false, message, options);
  }
}
