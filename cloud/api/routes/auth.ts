// Login, logout, "who am I" and API tokens (issue #4: "login with sessions or tokens; rate limits on login").
// A browser logs in with mode "cookie" (default) and gets an HttpOnly session cookie it cannot read; a script logs
// in with mode "token" and gets the session token in the body, to send as `Authorization: Bearer`. A machine gets a
// long-lived, named, revocable API token, minted only from an interactive session (a leaked token cannot mint more).
// A failed login says the same thing whether or not the user exists, and costs the same scrypt time.

import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { AuthError, AUTH_ERROR_CODES } from "../../auth/errors.js";
import { isAdmin, ROLES } from "../../auth/principal.js";
import { clearedSessionCookie, readBearer, readCookie, sessionCookie } from "../../auth/session-cookie.js";
import type { CoreRouteDeps } from "../app.js";
import { forbidden, HttpProblem, notFound } from "../problem.js";
import { addRoute } from "../route.js";

const TAGS = ["auth"];
const AUTH_BODY_LIMIT_BYTES = 4096;

export const meSchema = z.object({
  userId: z.string(),
  name: z.string(),
  roles: z.array(z.enum(ROLES)),
  villageIds: z.array(z.string()),
  householdId: z.string().optional(),
  jurisdictionIds: z.array(z.string()),
});

const loginBody = z.strictObject({
  userId: z.string().min(1).max(100),
  password: z.string().min(1).max(1024),
  /** "cookie": an HttpOnly session cookie (browsers); "token": the session token in the answer (scripts). */
  mode: z.enum(["cookie", "token"]).default("cookie"),
});

const loginAnswer = z.object({ user: meSchema, expiresAtMs: z.int(), token: z.string().optional() });

const tokenView = z.object({
  tokenId: z.string(),
  userId: z.string(),
  name: z.string(),
  createdAtMs: z.int(),
  createdBy: z.string(),
  expiresAtMs: z.int().optional(),
  lastUsedAtMs: z.int().optional(),
  revokedAtMs: z.int().optional(),
});

const newTokenBody = z.strictObject({
  name: z.string().trim().min(1).max(100),
  /** Another user's token (admin only): a machine account's. */
  userId: z.string().min(1).max(100).optional(),
  expiresAtMs: z.int().positive().optional(),
  reason: z.string().max(500).optional(),
});

/** The token this request authenticated with (bearer first, as the auth hook reads it). */
function requestToken(request: FastifyRequest, cookieName: string): string | undefined {
  return readBearer(request.headers.authorization) ?? readCookie(request.headers.cookie, cookieName);
}

export function authRoutes(app: FastifyInstance, deps: CoreRouteDeps): void {
  const { auth, loginLimiter, cookie, now } = deps;

  addRoute(app, {
    method: "POST",
    url: "/auth/login",
    summary: "Log in with user id and password; answers a session (cookie or token). Rate-limited per user id and per address",
    tags: TAGS,
    access: "public",
    body: loginBody,
    response: loginAnswer,
    bodyLimitBytes: AUTH_BODY_LIMIT_BYTES,
    handler: async ({ body, request, reply }) => {
      const address = request.ip;
      const beganAtMs = now();
      // Reserved before the await: parallel guesses are counted before any of them is verified.
      const verdict = loginLimiter.begin(body.userId, address, beganAtMs);
      if (!verdict.allowed) {
        const retryAfterS = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
        request.log.warn({ userId: body.userId, address, limitedBy: verdict.limitedBy }, "auth: login rate-limited");
        throw new HttpProblem(429, "AUTH_RATE_LIMITED", `too many failed logins; try again in ${retryAfterS} s`, undefined, { "retry-after": String(retryAfterS) });
      }
      const user = await auth.verifyLogin(body.userId, body.password);
      if (user === undefined) {
        request.log.info({ userId: body.userId, address }, "auth: login failed");
        throw new HttpProblem(401, "AUTH_LOGIN_FAILED", "wrong user id or password");
      }
      loginLimiter.succeeded(body.userId, address, beganAtMs);
      let session: { token: string; expiresAtMs: number };
      try {
        session = await auth.startSession(user.userId, { unchangedSinceMs: beganAtMs });
      } catch (error) {
        // A reset or a disable committed while the password was being checked: the checked password may be the old one.
        if (error instanceof AuthError && error.code === AUTH_ERROR_CODES.ACCOUNT_CHANGED) throw new HttpProblem(401, "AUTH_LOGIN_FAILED", "the account changed while logging in; log in again");
        throw error;
      }
      request.log.info({ userId: user.userId, address, mode: body.mode }, "auth: logged in");
      const me = { userId: user.userId, name: user.name, roles: [...user.roles], villageIds: [...user.villageIds], jurisdictionIds: [...user.jurisdictionIds], ...(user.householdId === undefined ? {} : { householdId: user.householdId }) };
      if (body.mode === "token") return { user: me, expiresAtMs: session.expiresAtMs, token: session.token };
      reply.header("set-cookie", sessionCookie(session.token, session.expiresAtMs - now(), cookie));
      return { user: me, expiresAtMs: session.expiresAtMs };
    },
  });

  addRoute(app, {
    method: "POST",
    url: "/auth/logout",
    summary: "End this session (the cookie is cleared); an API token is revoked with DELETE /auth/tokens/{tokenId} instead",
    tags: TAGS,
    access: "authenticated",
    response: z.object({ loggedOut: z.boolean() }),
    handler: async ({ request, reply }) => {
      const token = requestToken(request, cookie.name);
      const loggedOut = request.authVia === "session" && token !== undefined && (await auth.endSession(token));
      reply.header("set-cookie", clearedSessionCookie(cookie));
      return { loggedOut };
    },
  });

  addRoute(app, {
    method: "GET",
    url: "/auth/me",
    summary: "Who this session or token belongs to, with roles and scope",
    tags: TAGS,
    access: "authenticated",
    response: meSchema.extend({ via: z.enum(["session", "api-token"]) }),
    handler: ({ principal, request }) =>
      Promise.resolve({ ...principal, roles: [...principal.roles], villageIds: [...principal.villageIds], jurisdictionIds: [...principal.jurisdictionIds], via: request.authVia ?? "session" }),
  });

  addRoute(app, {
    method: "POST",
    url: "/auth/tokens",
    summary: "Mint a named API token (shown once) for yourself, or for another user as an admin; only from a logged-in session",
    tags: TAGS,
    access: "authenticated",
    body: newTokenBody,
    response: tokenView.extend({ token: z.string() }),
    status: 201,
    bodyLimitBytes: AUTH_BODY_LIMIT_BYTES,
    handler: async ({ principal, body, request }) => {
      if (request.authVia !== "session") throw forbidden("API tokens are minted from a logged-in session, not with another token");
      const owner = body.userId ?? principal.userId;
      if (owner !== principal.userId && !isAdmin(principal)) throw forbidden("only an admin mints tokens for another user");
      if ((await auth.getUser(owner)) === undefined) throw notFound(`user ${owner}`);
      return auth.createApiToken(owner, { name: body.name, ...(body.expiresAtMs === undefined ? {} : { expiresAtMs: body.expiresAtMs }) }, { actor: principal.userId, ...(body.reason === undefined ? {} : { reason: body.reason }) });
    },
  });

  addRoute(app, {
    method: "GET",
    url: "/auth/tokens",
    summary: "Your API tokens (an admin may name another user), without their secrets",
    tags: TAGS,
    access: "authenticated",
    query: z.strictObject({ userId: z.string().min(1).max(100).optional() }),
    response: z.object({ tokens: z.array(tokenView) }),
    handler: async ({ principal, query }) => {
      const owner = query.userId ?? principal.userId;
      if (owner !== principal.userId && !isAdmin(principal)) throw forbidden("only an admin lists another user's tokens");
      return { tokens: await auth.listApiTokens(owner) };
    },
  });

  addRoute(app, {
    method: "DELETE",
    url: "/auth/tokens/:tokenId",
    summary: "Revoke an API token: yours, or anyone's as an admin",
    tags: TAGS,
    access: "authenticated",
    params: z.strictObject({ tokenId: z.string().regex(/^tok-[0-9a-f]{12}$/, "token ids look like tok-0123456789ab") }),
    response: tokenView,
    handler: async ({ principal, params }) => {
      const token = await auth.getApiToken(params.tokenId);
      // Someone else's token is "no such token": its existence is none of the caller's business.
      if (token === undefined || (token.userId !== principal.userId && !isAdmin(principal))) throw notFound(`API token ${params.tokenId}`);
      return auth.revokeApiToken(params.tokenId, { actor: principal.userId });
    },
  });
}
