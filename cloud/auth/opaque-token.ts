// Session and API tokens: 256 random bits, shown to the holder once and stored only as their SHA-256. A random
// token has no dictionary to attack, so a fast hash is enough (unlike a password, which needs scrypt), and it lets
// every request find its session with one indexed lookup. The prefix tells a session from a machine token and
// makes a leaked token recognisable to secret scanners.

import { createHash, randomBytes } from "node:crypto";

export const SESSION_TOKEN_PREFIX = "agses_";
export const API_TOKEN_PREFIX = "agtok_";
const TOKEN_BYTES = 32;
const TOKEN_PATTERN = /^ag(ses|tok)_[A-Za-z0-9_-]{43}$/;

export function newOpaqueToken(prefix: typeof SESSION_TOKEN_PREFIX | typeof API_TOKEN_PREFIX): string {
  return prefix + randomBytes(TOKEN_BYTES).toString("base64url");
}

/** The stored form. */
export function tokenDigest(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Which kind of token this looks like; undefined for anything that is not one of ours (no lookup needed). */
export function tokenKind(token: string): "session" | "api" | undefined {
  const match = TOKEN_PATTERN.exec(token);
  if (match === null) return undefined;
  return match[1] === "ses" ? "session" : "api";
}

/** A short public id for listing and revoking an API token without knowing it. */
export function newTokenId(): string {
  return `tok-${randomBytes(6).toString("hex")}`;
}
