// Secrets at rest: scrypt encodings that verify, refuse a wrong secret, and refuse malformed or hostile encodings.

import { describe, expect, it } from "vitest";
import { SCRYPT_DEFAULTS, SecretHashError, hashSecret, parseSecretHash, verifySecret } from "./secrets.js";

describe("secrets", () => {
  it("encodes a hash as scrypt$N$r$p$salt$hash with a 16-byte salt and a 32-byte key", async () => {
    const encoded = await hashSecret("correct horse");
    expect(encoded).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/);
    const parsed = parseSecretHash(encoded);
    expect(parsed.salt.length).toBe(SCRYPT_DEFAULTS.saltBytes);
    expect(parsed.key.length).toBe(SCRYPT_DEFAULTS.keyBytes);
  });

  it("salts every hash, so one secret hashed twice gives two encodings", async () => {
    expect(await hashSecret("same")).not.toBe(await hashSecret("same"));
  });

  it("verifies the right secret and refuses a wrong one", async () => {
    const encoded = await hashSecret("correct horse");
    expect(await verifySecret("correct horse", encoded)).toBe(true);
    expect(await verifySecret("correct horsE", encoded)).toBe(false);
    expect(await verifySecret("", encoded)).toBe(false);
  });

  it("refuses malformed encodings with SecretHashError instead of answering false", async () => {
    const good = await hashSecret("x");
    const [, n, r, p, salt, key] = good.split("$");
    const bad = [
      "",
      "plaintext",
      `bcrypt$${n}$${r}$${p}$${salt}$${key}`,
      `scrypt$${n}$${r}$${p}$${salt}`,
      `scrypt$16385$${r}$${p}$${salt}$${key}`, // N not a power of two
      `scrypt$${2 ** 24}$${r}$${p}$${salt}$${key}`, // N too costly to allow
      `scrypt$${n}$0$${p}$${salt}$${key}`,
      `scrypt$${n}$${r}$${p}$c2FsdA==$${key}`, // 4-byte salt
      `scrypt$${n}$${r}$${p}$${salt}$not*base64`,
      `scrypt$0x4000$${r}$${p}$${salt}$${key}`,
    ];
    for (const encoded of bad) await expect(verifySecret("x", encoded), encoded).rejects.toBeInstanceOf(SecretHashError);
  });
});
