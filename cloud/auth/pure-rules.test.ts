import { describe, expect, it } from "vitest";
import { tokenDigest, tokenKind, newOpaqueToken, SESSION_TOKEN_PREFIX, API_TOKEN_PREFIX } from "./opaque-token.js";
import { passwordProblem } from "./password-rules.js";
import { clearedSessionCookie, readBearer, readCookie, sessionCookie } from "./session-cookie.js";
import { scopeProblems, userIdSchema } from "./user-schema.js";

describe("password rules", () => {
  it("accepts 10 characters and refuses 9", () => {
    expect(passwordProblem("abcdefghij")).toBeUndefined();
    expect(passwordProblem("abcdefghi")).toMatch(/at least 10/);
  });

  it("counts a Chinese passphrase by characters, not bytes", () => {
    expect(passwordProblem("春眠不觉晓处处闻啼")).toMatch(/at least 10/);
    expect(passwordProblem("春眠不觉晓处处闻啼鸟")).toBeUndefined();
  });

  it("refuses more than 256 characters, only spaces, or the user id inside", () => {
    expect(passwordProblem("x".repeat(257))).toMatch(/at most 256/);
    expect(passwordProblem(" ".repeat(12))).toMatch(/only spaces/);
    expect(passwordProblem("farmer-li-2024", "Farmer-Li")).toMatch(/user id/);
  });
});

describe("role and scope rules", () => {
  it("asks a farmer for a household and nothing else", () => {
    expect(scopeProblems({ roles: ["farmer"], villageIds: [], jurisdictionIds: [] }).map((p) => p.path)).toEqual(["householdId"]);
    expect(scopeProblems({ roles: ["farmer"], householdId: "h1", villageIds: [], jurisdictionIds: [] })).toEqual([]);
  });

  it("refuses village scopes on a farmer, which would widen what they see", () => {
    expect(scopeProblems({ roles: ["farmer"], householdId: "h1", villageIds: ["v1"], jurisdictionIds: [] }).map((p) => p.path)).toEqual(["villageIds"]);
  });

  it("asks officers and approvers for a village, dispatchers for a jurisdiction", () => {
    expect(scopeProblems({ roles: ["village-approver"], villageIds: [], jurisdictionIds: [] }).map((p) => p.path)).toEqual(["villageIds"]);
    expect(scopeProblems({ roles: ["police-dispatcher"], villageIds: [], jurisdictionIds: [] }).map((p) => p.path)).toEqual(["jurisdictionIds"]);
  });

  it("needs no scope for an admin but refuses a stray one", () => {
    expect(scopeProblems({ roles: ["admin"], villageIds: [], jurisdictionIds: [] })).toEqual([]);
    expect(scopeProblems({ roles: ["admin"], villageIds: [], jurisdictionIds: ["j1"] }).map((p) => p.path)).toEqual(["jurisdictionIds"]);
  });

  it("normalises user ids to lower case and refuses spaces and one-letter ids", () => {
    expect(userIdSchema.parse(" Li.Wei ")).toBe("li.wei");
    expect(userIdSchema.safeParse("li wei").success).toBe(false);
    expect(userIdSchema.safeParse("l").success).toBe(false);
  });
});

describe("opaque tokens", () => {
  it("makes distinct 256-bit tokens that say what they are", () => {
    const a = newOpaqueToken(SESSION_TOKEN_PREFIX);
    const b = newOpaqueToken(API_TOKEN_PREFIX);
    expect(a).not.toBe(newOpaqueToken(SESSION_TOKEN_PREFIX));
    expect([tokenKind(a), tokenKind(b), tokenKind("agses_short"), tokenKind("Basic abc")]).toEqual(["session", "api", undefined, undefined]);
  });

  it("stores a digest that is not the token", () => {
    const token = newOpaqueToken(SESSION_TOKEN_PREFIX);
    expect(tokenDigest(token)).toMatch(/^[0-9a-f]{64}$/);
    expect(tokenDigest(token)).not.toContain(token.slice(6));
  });
});

describe("session cookie and bearer header", () => {
  it("reads one cookie among several", () => {
    expect(readCookie("a=1; agri_session=tok; b=2", "agri_session")).toBe("tok");
    expect(readCookie("agri_session_x=1", "agri_session")).toBeUndefined();
    expect(readCookie(undefined, "agri_session")).toBeUndefined();
  });

  it("writes HttpOnly, SameSite=Strict, Secure only when asked, and clears with Max-Age=0", () => {
    expect(sessionCookie("t", 60_000, { secure: false })).toBe("agri_session=t; Path=/; HttpOnly; SameSite=Strict; Max-Age=60");
    expect(sessionCookie("t", 60_000, { secure: true })).toMatch(/; Secure$/);
    expect(clearedSessionCookie({ secure: false })).toBe("agri_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
  });

  it("reads a bearer token case-insensitively and nothing else", () => {
    expect(readBearer("Bearer abc.def")).toBe("abc.def");
    expect(readBearer("bearer abc")).toBe("abc");
    expect(readBearer("Basic YWxhZGRpbjpvcGVuc2VzYW1l")).toBeUndefined();
    expect(readBearer("Bearer a b")).toBeUndefined();
  });
});
