import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bearer, PASSWORDS, startApiCore, type ApiCore } from "./api-core.fixture.js";

let core: ApiCore;

beforeEach(async () => {
  core = await startApiCore();
});

afterEach(async () => {
  await core.close();
});

const login = (userId: string, password: string, extra: Record<string, unknown> = {}, remoteAddress = "10.0.0.1") =>
  core.inject({ method: "POST", url: "/auth/login", payload: { userId, password, ...extra }, remoteAddress });

const cookieOf = (setCookie: string | string[] | undefined): string => {
  const header = Array.isArray(setCookie) ? setCookie[0] : setCookie;
  return (header ?? "").split(";")[0] ?? "";
};

describe("login", () => {
  it("sets an HttpOnly, SameSite=Strict session cookie that /auth/me accepts", async () => {
    const res = await login("farmer-li", PASSWORDS.farmer);
    expect(res.statusCode).toBe(200);
    const setCookie = String(res.headers["set-cookie"]);
    expect(setCookie).toMatch(/^agri_session=agses_[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    expect(res.json()).not.toHaveProperty("token");
    const me = await core.inject({ method: "GET", url: "/auth/me", headers: { cookie: cookieOf(res.headers["set-cookie"]) } });
    expect(me.json()).toEqual({ userId: "farmer-li", name: "Li Wei", roles: ["farmer"], villageIds: [], householdId: "h1", jurisdictionIds: [], via: "session" });
  });

  it("marks the cookie Secure when the API is configured as reached over TLS", async () => {
    await core.close();
    core = await startApiCore({ options: { secureCookies: true } });
    const res = await login("farmer-li", PASSWORDS.farmer);
    expect(String(res.headers["set-cookie"])).toMatch(/; Secure$/);
  });

  it("answers the session token in the body for mode token, usable as a bearer token", async () => {
    const res = await login("officer-v1", PASSWORDS.officer, { mode: "token" });
    const { token } = res.json<{ token: string }>();
    expect(res.headers["set-cookie"]).toBeUndefined();
    const me = await core.inject({ method: "GET", url: "/auth/me", headers: bearer(token) });
    expect(me.json()).toMatchObject({ userId: "officer-v1", villageIds: ["v1"], via: "session" });
  });

  it("accepts the user id in any case and with surrounding spaces", async () => {
    expect((await login(" Farmer-LI ", PASSWORDS.farmer)).statusCode).toBe(200);
  });

  it("answers a wrong password and an unknown user identically, as problem+json", async () => {
    const wrong = await login("farmer-li", "not-the-password");
    const unknown = await login("nobody-here", "not-the-password");
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(unknown.statusCode).toBe(401);
    expect(unknown.body).toBe(wrong.body);
    expect(wrong.json()).toMatchObject({ code: "AUTH_LOGIN_FAILED", detail: "wrong user id or password" });
  });

  it("logs failed and successful logins without the password or the session token", async () => {
    await login("farmer-li", "guess-number-one");
    const ok = await login("farmer-li", PASSWORDS.farmer, { mode: "token" });
    const logged = JSON.stringify(core.logLines());
    expect(logged).toContain("auth: login failed");
    expect(logged).toContain("auth: logged in");
    expect(logged).not.toContain("guess-number-one");
    expect(logged).not.toContain(PASSWORDS.farmer);
    expect(logged).not.toContain(ok.json<{ token: string }>().token);
  });

  it("refuses a disabled user's correct password like a wrong one", async () => {
    await core.auth.updateUser("farmer-li", { disabled: true }, { actor: "admin", reason: "moved away" });
    expect((await login("farmer-li", PASSWORDS.farmer)).json()).toMatchObject({ status: 401, code: "AUTH_LOGIN_FAILED" });
  });

  it("refuses a body without a password with 400 naming the field", async () => {
    const res = await core.inject({ method: "POST", url: "/auth/login", payload: { userId: "farmer-li" } });
    expect(res.statusCode).toBe(400);
    expect(res.json<{ errors: { path: string }[] }>().errors.map((e) => e.path)).toEqual(["body.password"]);
  });
});

describe("login rate limits", () => {
  it("answers 429 with Retry-After after 3 failures for one user id, even for the right password", async () => {
    for (let i = 0; i < 3; i += 1) expect((await login("farmer-li", "wrong-password-x")).statusCode).toBe(401);
    core.advance(10_000);
    const limited = await login("farmer-li", PASSWORDS.farmer);
    expect(limited.statusCode).toBe(429);
    expect(limited.headers["retry-after"]).toBe("50");
    expect(limited.json()).toMatchObject({ status: 429, code: "AUTH_RATE_LIMITED" });
  });

  it("lets the user in again once the oldest failure leaves the window", async () => {
    for (let i = 0; i < 3; i += 1) await login("farmer-li", "wrong-password-x");
    core.advance(60_001);
    expect((await login("farmer-li", PASSWORDS.farmer)).statusCode).toBe(200);
  });

  it("limits one address guessing many user ids", async () => {
    for (let i = 0; i < 8; i += 1) expect((await login(`guess-${i}`, "wrong-password-x", {}, "10.9.9.9")).statusCode).toBe(401);
    expect((await login("farmer-li", PASSWORDS.farmer, {}, "10.9.9.9")).statusCode).toBe(429);
    expect((await login("farmer-li", PASSWORDS.farmer, {}, "10.0.0.2")).statusCode).toBe(200);
  });

  it("does not count successful logins", async () => {
    for (let i = 0; i < 10; i += 1) expect((await login("farmer-li", PASSWORDS.farmer)).statusCode).toBe(200);
  });

  it("counts parallel guesses before any of them is verified: at most the limit reach the password check", async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => login("farmer-li", "wrong-password-x")));
    const codes = answers.map((a) => a.statusCode);
    expect(codes.filter((c) => c === 401)).toHaveLength(3);
    expect(codes.filter((c) => c === 429)).toHaveLength(17);
  });
});

describe("sessions", () => {
  it("ends a session 12 hours after login however busy", async () => {
    const token = await core.login("farmer-li", PASSWORDS.farmer);
    for (let hour = 0; hour < 11; hour += 1) {
      core.advance(3600_000);
      expect((await core.inject({ method: "GET", url: "/auth/me", headers: bearer(token) })).statusCode).toBe(200);
    }
    core.advance(3600_000);
    expect((await core.inject({ method: "GET", url: "/auth/me", headers: bearer(token) })).statusCode).toBe(401);
  });

  it("ends a session after 2 idle hours", async () => {
    const token = await core.login("farmer-li", PASSWORDS.farmer);
    core.advance(2 * 3600_000);
    expect((await core.inject({ method: "GET", url: "/auth/me", headers: bearer(token) })).statusCode).toBe(401);
  });

  it("revokes the session on logout and clears the cookie", async () => {
    const res = await login("farmer-li", PASSWORDS.farmer);
    const cookie = cookieOf(res.headers["set-cookie"]);
    const out = await core.inject({ method: "POST", url: "/auth/logout", headers: { cookie } });
    expect(out.json()).toEqual({ loggedOut: true });
    expect(String(out.headers["set-cookie"])).toMatch(/^agri_session=; .*Max-Age=0/);
    expect((await core.inject({ method: "GET", url: "/auth/me", headers: { cookie } })).statusCode).toBe(401);
  });

  it("ends a user's API tokens when their password is reset or they are disabled, so a re-enable does not revive them", async () => {
    const mint = async (): Promise<string> => {
      const session = await core.login("officer-v1", PASSWORDS.officer);
      return (await core.inject({ method: "POST", url: "/auth/tokens", headers: bearer(session), payload: { name: "office scale" } })).json<{ token: string }>().token;
    };
    const beforeReset = await mint();
    await core.auth.setPassword("officer-v1", "another long passphrase", { actor: "admin", reason: "suspected theft" });
    expect((await core.inject({ method: "GET", url: "/auth/me", headers: bearer(beforeReset) })).statusCode).toBe(401);
    await core.auth.setPassword("officer-v1", PASSWORDS.officer, { actor: "admin", reason: "back to the known one" });
    const beforeDisable = await mint();
    await core.auth.updateUser("officer-v1", { disabled: true }, { actor: "admin", reason: "compromised" });
    await core.auth.updateUser("officer-v1", { disabled: false }, { actor: "admin", reason: "new laptop" });
    expect((await core.inject({ method: "GET", url: "/auth/me", headers: bearer(beforeDisable) })).statusCode).toBe(401);
  });

  it("ends a user's sessions when an admin disables them", async () => {
    const token = await core.login("farmer-li", PASSWORDS.farmer);
    await core.auth.updateUser("farmer-li", { disabled: true }, { actor: "admin", reason: "left the village" });
    expect((await core.inject({ method: "GET", url: "/auth/me", headers: bearer(token) })).statusCode).toBe(401);
  });

  it("ignores a session cookie on a change requested from another origin", async () => {
    const res = await login("admin", PASSWORDS.admin);
    const cookie = cookieOf(res.headers["set-cookie"]);
    const crossSite = await core.inject({ method: "POST", url: "/auth/logout", headers: { cookie, origin: "https://evil.example" } });
    expect(crossSite.statusCode).toBe(401);
    const sameSite = await core.inject({ method: "POST", url: "/auth/logout", headers: { cookie, origin: "http://localhost:80" } });
    expect(sameSite.statusCode).toBe(200);
  });
});

describe("roles", () => {
  it("answers 401 with WWW-Authenticate to an anonymous caller", async () => {
    const res = await core.inject({ method: "GET", url: "/users" });
    expect(res.statusCode).toBe(401);
    expect(res.headers["www-authenticate"]).toBe('Bearer realm="agri-cloud"');
    expect(res.json()).toMatchObject({ code: "API_UNAUTHORIZED" });
  });

  it("answers 403 to a logged-in farmer on an officers' route", async () => {
    const token = await core.login("farmer-li", PASSWORDS.farmer);
    const res = await core.inject({ method: "GET", url: "/users", headers: bearer(token) });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: "API_FORBIDDEN" });
  });

  it("treats an unknown bearer token as anonymous (401), not as an error", async () => {
    const res = await core.inject({ method: "GET", url: "/auth/me", headers: bearer("agses_" + "A".repeat(43)) });
    expect(res.statusCode).toBe(401);
  });
});

describe("API tokens", () => {
  it("mints a named token from a session that works as a bearer token until revoked", async () => {
    const session = await core.login("officer-v1", PASSWORDS.officer);
    const minted = await core.inject({ method: "POST", url: "/auth/tokens", headers: bearer(session), payload: { name: "office scale" } });
    expect(minted.statusCode).toBe(201);
    const { token, tokenId } = minted.json<{ token: string; tokenId: string }>();
    expect(token).toMatch(/^agtok_/);
    const me = await core.inject({ method: "GET", url: "/auth/me", headers: bearer(token) });
    expect(me.json()).toMatchObject({ userId: "officer-v1", via: "api-token" });
    const revoked = await core.inject({ method: "DELETE", url: `/auth/tokens/${tokenId}`, headers: bearer(session) });
    expect(revoked.json()).toMatchObject({ tokenId, revokedAtMs: core.nowMs() });
    expect((await core.inject({ method: "GET", url: "/auth/me", headers: bearer(token) })).statusCode).toBe(401);
  });

  it("refuses to mint a token with another token", async () => {
    const session = await core.login("officer-v1", PASSWORDS.officer);
    const { token } = (await core.inject({ method: "POST", url: "/auth/tokens", headers: bearer(session), payload: { name: "a" } })).json<{ token: string }>();
    const again = await core.inject({ method: "POST", url: "/auth/tokens", headers: bearer(token), payload: { name: "b" } });
    expect(again.statusCode).toBe(403);
  });

  it("lets an admin mint a machine user's token, but not an officer", async () => {
    const admin = await core.login("admin", PASSWORDS.admin);
    const officer = await core.login("officer-v1", PASSWORDS.officer);
    expect((await core.inject({ method: "POST", url: "/auth/tokens", headers: bearer(admin), payload: { name: "m", userId: "officer-v1" } })).statusCode).toBe(201);
    expect((await core.inject({ method: "POST", url: "/auth/tokens", headers: bearer(officer), payload: { name: "m", userId: "farmer-li" } })).statusCode).toBe(403);
  });

  it("hides another user's token from a revoke attempt (404)", async () => {
    const officer = await core.login("officer-v1", PASSWORDS.officer);
    const { tokenId } = (await core.inject({ method: "POST", url: "/auth/tokens", headers: bearer(officer), payload: { name: "a" } })).json<{ tokenId: string }>();
    const farmer = await core.login("farmer-li", PASSWORDS.farmer);
    expect((await core.inject({ method: "DELETE", url: `/auth/tokens/${tokenId}`, headers: bearer(farmer) })).statusCode).toBe(404);
  });

  it("records token creation and revocation in the audit log", async () => {
    const officer = await core.login("officer-v1", PASSWORDS.officer);
    const { tokenId } = (await core.inject({ method: "POST", url: "/auth/tokens", headers: bearer(officer), payload: { name: "a", reason: "scale" } })).json<{ tokenId: string }>();
    await core.inject({ method: "DELETE", url: `/auth/tokens/${tokenId}`, headers: bearer(officer) });
    const actions = (await core.auth.audit.list({ entityId: "officer-v1", limit: 10 })).map((e) => [e.action, e.actor]);
    expect(actions).toEqual([["user.create", "cli:test"], ["api-token.create", "officer-v1"], ["api-token.revoke", "officer-v1"]]);
  });
});
