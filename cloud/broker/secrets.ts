// Gateway and cloud-client secrets at rest: scrypt (RFC 7914) with a random salt, stored as one self-describing
// string `scrypt$N$r$p$salt_b64$hash_b64` so the cost can be raised later without invalidating stored hashes.

import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";
import { AgriError } from "../../protocols/errors.js";

/** Cost for new hashes: N = 2^14, r = 8, p = 1 (node:crypto's defaults, Percival's interactive-login setting): 16 MiB. */
export const SCRYPT_DEFAULTS = { N: 2 ** 14, r: 8, p: 1, saltBytes: 16, keyBytes: 32 } as const;

// Bounds on what verifySecret accepts, so a corrupt or hostile registry entry cannot make one login allocate
// gigabytes (scrypt needs about 128·N·r bytes) or pass with a trivially short salt or key.
const ACCEPTED = { minLog2N: 10, maxLog2N: 16, maxR: 16, maxP: 4, maxNr: 2 ** 18, minSaltBytes: 16, minKeyBytes: 16, maxKeyBytes: 64 } as const;
const SCRYPT_MAXMEM_BYTES = 64 * 1024 * 1024;

export class SecretHashError extends AgriError {
  constructor(message: string) {
    super("BROKER_SECRET_HASH_MALFORMED", false, message);
  }
}

interface ScryptHash {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly key: Buffer;
}

function scryptAsync(secret: string, salt: Buffer, keyBytes: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, keyBytes, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** Hash a secret with a fresh random salt. */
export async function hashSecret(secret: string): Promise<string> {
  const { N, r, p, saltBytes, keyBytes } = SCRYPT_DEFAULTS;
  const salt = randomBytes(saltBytes);
  const key = await scryptAsync(secret, salt, keyBytes, { N, r, p, maxmem: SCRYPT_MAXMEM_BYTES });
  return ["scrypt", N, r, p, salt.toString("base64"), key.toString("base64")].join("$");
}

/**
 * True when `secret` produces the stored key. Compares with timingSafeEqual. A malformed or out-of-bounds encoding
 * is refused with a SecretHashError (a rejected promise), never treated as a mismatch: it is a registry fault.
 */
export async function verifySecret(secret: string, encoded: string): Promise<boolean> {
  const stored = parseSecretHash(encoded);
  const key = await scryptAsync(secret, stored.salt, stored.key.length, { N: stored.N, r: stored.r, p: stored.p, maxmem: SCRYPT_MAXMEM_BYTES });
  return timingSafeEqual(key, stored.key);
}

export function parseSecretHash(encoded: string): ScryptHash {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") throw new SecretHashError("expected scrypt$N$r$p$salt_b64$hash_b64");
  const [, nText, rText, pText, saltText, keyText] = parts as [string, string, string, string, string, string];
  const N = parseDecimal(nText, "N");
  const r = parseDecimal(rText, "r");
  const p = parseDecimal(pText, "p");
  const log2N = Math.log2(N);
  if (!Number.isInteger(log2N) || log2N < ACCEPTED.minLog2N || log2N > ACCEPTED.maxLog2N) {
    throw new SecretHashError(`N must be a power of two from 2^${ACCEPTED.minLog2N} to 2^${ACCEPTED.maxLog2N}`);
  }
  if (r < 1 || r > ACCEPTED.maxR) throw new SecretHashError(`r must be 1..${ACCEPTED.maxR}`);
  if (p < 1 || p > ACCEPTED.maxP) throw new SecretHashError(`p must be 1..${ACCEPTED.maxP}`);
  if (N * r > ACCEPTED.maxNr) throw new SecretHashError(`N·r must not exceed ${ACCEPTED.maxNr}`);
  const salt = parseBase64(saltText, "salt");
  const key = parseBase64(keyText, "hash");
  if (salt.length < ACCEPTED.minSaltBytes) throw new SecretHashError(`salt must be at least ${ACCEPTED.minSaltBytes} bytes`);
  if (key.length < ACCEPTED.minKeyBytes || key.length > ACCEPTED.maxKeyBytes) {
    throw new SecretHashError(`hash must be ${ACCEPTED.minKeyBytes}..${ACCEPTED.maxKeyBytes} bytes`);
  }
  return { N, r, p, salt, key };
}

function parseDecimal(text: string, name: string): number {
  if (!/^[1-9][0-9]{0,9}$/.test(text)) throw new SecretHashError(`${name} is not a positive decimal integer`);
  return Number(text);
}

// Buffer.from(…, "base64") skips characters it does not know; insist on canonical base64 instead.
function parseBase64(text: string, name: string): Buffer {
  const bytes = Buffer.from(text, "base64");
  if (text.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text) || bytes.toString("base64") !== text) {
    throw new SecretHashError(`${name} is not canonical base64`);
  }
  return bytes;
}
