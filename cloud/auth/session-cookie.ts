// The session cookie (RFC 6265bis): HttpOnly so page scripts never read it, SameSite=Strict so another site cannot
// ride on it (the console only calls its own origin, so Strict costs nothing), Path=/, Secure when the cloud is
// reached over TLS (configurable: a village box on plain HTTP in a LAN would otherwise lose its login).
// A tiny reader/writer rather than a dependency: we only need one cookie by name.

export const SESSION_COOKIE_NAME = "agri_session";

export interface SessionCookieOptions {
  readonly name?: string;
  readonly secure: boolean;
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined || header.length > 8192) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    return value;
  }
  return undefined;
}

export function sessionCookie(token: string, maxAgeMs: number, options: SessionCookieOptions): string {
  const attributes = [`${options.name ?? SESSION_COOKIE_NAME}=${token}`, "Path=/", "HttpOnly", "SameSite=Strict", `Max-Age=${Math.max(0, Math.floor(maxAgeMs / 1000))}`];
  if (options.secure) attributes.push("Secure");
  return attributes.join("; ");
}

export function clearedSessionCookie(options: SessionCookieOptions): string {
  return sessionCookie("", 0, options);
}

/** The token of `Authorization: Bearer <token>` (RFC 6750 §2.1), or undefined. */
export function readBearer(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ ]+([A-Za-z0-9._~+/-]+=*)\s*$/i.exec(header);
  return match?.[1];
}
