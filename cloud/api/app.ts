// buildApp(deps): the cloud's HTTP API as one fastify 5 instance, built here and listened on elsewhere (ARCHITECTURE
// §5, "build the app in one file, listen in another"; tests call app.inject()). It owns what every route shares:
//   - who is asking: an onRequest hook resolves the session cookie or `Authorization: Bearer` token to
//     request.principal (route.ts checks roles, handlers check scope);
//   - how failures look: every error, fastify's own included (413, 415, bad JSON, 404), is application/problem+json
//     (problem.ts); an unexpected one is a 500 that discloses nothing, its cause logged with the request id;
//   - security headers on every answer (no-sniff, no framing, a deny-all CSP unless a route sets its own; the
//     console plugin and /docs do), no CORS (the console is same-origin), a 64 KiB default body limit;
//   - the core routes (auth, users, audit, docs), then the domain plugins of deps.routes, each encapsulated.

import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import type { Logger } from "pino";
import type { AuditLog } from "../audit/audit-log.js";
import { auditRoutes } from "../audit/routes.js";
import type { AuthStore } from "../auth/auth-store.js";
import { DEFAULT_LOGIN_RATE_LIMITS, LoginRateLimiter, type LoginRateLimits } from "../auth/login-rate-limit.js";
import { readBearer, readCookie, SESSION_COOKIE_NAME } from "../auth/session-cookie.js";
import type { Ledger } from "../ledger/store/ledger.js";
import type { PrepaidService } from "../prepaid/service.js";
import type { Registry } from "../registry/registry.js";
import type { TelemetryStore } from "../telemetry/sink.js";
import { collectRoutes, docsRoutes, type OpenApiInfo } from "./openapi.js";
import { HttpProblem, PROBLEM_CONTENT_TYPE, problemFromError } from "./problem.js";
import { authRoutes } from "./routes/auth.js";
import { userRoutes } from "./routes/users.js";

/** A domain plugin: registered in its own encapsulated context after the core routes. */
export type RoutePlugin = (app: FastifyInstance, deps: ApiDeps) => Promise<void> | void;

export interface ApiOptions {
  /** Default 64 KiB; a route may lower (or raise) its own with bodyLimitBytes. */
  readonly bodyLimitBytes?: number;
  /** Mark the session cookie Secure: set when the API is reached over TLS (directly or behind a proxy). */
  readonly secureCookies?: boolean;
  readonly cookieName?: string;
  /** fastify's trustProxy: only behind a proxy you run, or X-Forwarded-For would let a guesser pick its own IP. */
  readonly trustProxy?: boolean | string | readonly string[];
  readonly loginRateLimits?: LoginRateLimits;
  readonly info?: OpenApiInfo;
}

export interface ApiDeps {
  readonly registry: Registry;
  readonly ledger: Ledger;
  readonly prepaid: PrepaidService;
  readonly telemetry: TelemetryStore;
  readonly auth: AuthStore;
  readonly audit: AuditLog;
  readonly log: Logger;
  readonly now: () => number;
  readonly routes?: readonly RoutePlugin[];
  readonly options?: ApiOptions;
}

/** What the core route files get: the deps plus the app-wide pieces they share. */
export interface CoreRouteDeps extends ApiDeps {
  readonly loginLimiter: LoginRateLimiter;
  readonly cookie: { readonly name: string; readonly secure: boolean };
}

export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024;

export const API_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  // JSON needs no permissions at all; an HTML route (console, /docs) sets its own policy first.
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
};

const UNSAFE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export async function buildApp(deps: ApiDeps): Promise<FastifyInstance> {
  const options = deps.options ?? {};
  const cookie = { name: options.cookieName ?? SESSION_COOKIE_NAME, secure: options.secureCookies ?? false };
  // Typed as fastify's base logger so the instance keeps FastifyInstance's default type, which every plugin takes.
  const logger: FastifyBaseLogger = deps.log;
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    ...(options.trustProxy === undefined ? {} : { trustProxy: typeof options.trustProxy === "boolean" || typeof options.trustProxy === "string" ? options.trustProxy : [...options.trustProxy] }),
    // The id a caller can quote from a 500 (X-Request-Id); never taken from the request, so it cannot be forged into the log.
    requestIdHeader: false,
  });
  app.decorateRequest("principal", undefined);
  app.decorateRequest("authVia", undefined);
  app.decorateRequest("reauthenticate", undefined);
  // Only JSON bodies: fastify's default text/plain parser would let a cross-site form post a body (415 instead).
  app.removeContentTypeParser("text/plain");

  const routes = collectRoutes(app);

  app.addHook("onRequest", async (request) => {
    const bearer = readBearer(request.headers.authorization);
    let token = bearer;
    if (token === undefined) {
      token = readCookie(request.headers.cookie, cookie.name);
      // Defence in depth beside SameSite=Strict: a cookie never authorises a change requested from another origin.
      if (token !== undefined && UNSAFE_METHODS.has(request.method) && !sameOrigin(request.headers.origin, request.host)) token = undefined;
    }
    if (token === undefined || token === "") return;
    const authenticated = await deps.auth.authenticate(token);
    if (authenticated === undefined) return;
    request.principal = authenticated.principal;
    request.authVia = authenticated.via;
    const credential = token;
    request.reauthenticate = async () => (await deps.auth.authenticate(credential))?.principal;
  });

  app.addHook("onSend", async (request, reply, payload) => {
    for (const [name, value] of Object.entries(API_SECURITY_HEADERS)) if (!reply.hasHeader(name)) reply.header(name, value);
    if (!reply.hasHeader("cache-control")) reply.header("cache-control", "no-store");
    reply.header("x-request-id", request.id);
    return Promise.resolve(payload);
  });

  app.setErrorHandler(async (error, request, reply) => {
    const { problem, internal } = problemFromError(error);
    if (internal) request.log.error({ err: error, url: request.url, method: request.method }, "api: request failed");
    else request.log.info({ code: problem.code, status: problem.status, url: request.url }, "api: request refused");
    return sendProblem(reply, problem);
  });

  app.setNotFoundHandler(async (request, reply) => sendProblem(reply, new HttpProblem(404, "API_NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0] ?? ""}`)));

  const core: CoreRouteDeps = { ...deps, loginLimiter: new LoginRateLimiter(options.loginRateLimits ?? DEFAULT_LOGIN_RATE_LIMITS), cookie };
  authRoutes(app, core);
  userRoutes(app, core);
  auditRoutes(app, { audit: deps.audit });
  docsRoutes(app, routes, options.info ?? { title: "agri-cloud API", version: "0.1.0" });

  for (const plugin of deps.routes ?? []) {
    await app.register(async (scope) => plugin(scope, deps));
  }
  return app;
}

function sendProblem(reply: FastifyReply, problem: HttpProblem): FastifyReply {
  for (const [name, value] of Object.entries(problem.headers ?? {})) reply.header(name, value);
  if (problem.status === 401 && !reply.hasHeader("www-authenticate")) reply.header("www-authenticate", 'Bearer realm="agri-cloud"');
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem.body()));
}

/** True when there is no Origin (not a browser's cross-site request) or it names this host. */
function sameOrigin(origin: string | undefined, host: string): boolean {
  if (origin === undefined) return true;
  try {
    const from = new URL(origin);
    // Through URL on both sides, so a default port (":80" on http) compares equal to none.
    return from.host === new URL(`${from.protocol}//${host}`).host;
  } catch {
    return false;
  }
}
