// The web console's fastify plugin: serves cloud/web/static/ (plain HTML, CSS and ES modules — no build step and no
// CDN, because a village office may be offline from the internet but not from its cloud box) under /console/, with
// exact content types, ETag revalidation and a strict Content-Security-Policy. The console itself only talks to the
// JSON API of the same origin; this plugin knows nothing about sessions, money or incidents.
//
// CSP (CSP Level 3): scripts, styles, fetches and the SSE stream only from this origin, no inline script or style
// attribute, no plugins, no framing (clickjacking a top-up button), no <base> rewriting.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";
import { HttpProblem, PROBLEM_CONTENT_TYPE } from "../api/problem.js";
import { loadStaticAssets, matchesIfNoneMatch, type StaticAsset } from "./static-assets.js";

export const CONSOLE_PREFIX = "/console/";
export const DEFAULT_STATIC_DIR = join(dirname(fileURLToPath(import.meta.url)), "static");

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "permissions-policy": "geolocation=(), camera=(), microphone=(), payment=()",
};

export interface WebDeps {
  /** Where the console's files are; default cloud/web/static beside this module. */
  readonly staticDir?: string;
  /** Redirect GET / to the console (default true); false when something else owns "/". */
  readonly redirectRoot?: boolean;
}

function sendAsset(reply: FastifyReply, asset: StaticAsset, ifNoneMatch: string | undefined, head: boolean): FastifyReply {
  reply.headers(SECURITY_HEADERS).header("cache-control", "no-cache").header("etag", asset.etag).header("vary", "accept-encoding");
  if (matchesIfNoneMatch(ifNoneMatch, asset.etag)) return reply.code(304).send();
  reply.code(200).type(asset.contentType).header("content-length", String(asset.body.length));
  return head ? reply.send() : reply.send(asset.body);
}

function notFound(reply: FastifyReply, path: string): FastifyReply {
  const problem = new HttpProblem(404, "WEB_NOT_FOUND", `the console has no file ${path}`);
  return reply.code(404).headers(SECURITY_HEADERS).type(PROBLEM_CONTENT_TYPE).send(problem.body());
}

/** Register with `app.register(webRoutes, deps)` (or await it directly). Reads the files once, at registration. */
export async function webRoutes(app: FastifyInstance, deps: WebDeps = {}): Promise<void> {
  const assets = await loadStaticAssets(deps.staticDir ?? DEFAULT_STATIC_DIR);
  if (!assets.has("index.html")) throw new Error(`web console: ${deps.staticDir ?? DEFAULT_STATIC_DIR} has no index.html`);

  if (deps.redirectRoot ?? true) app.get("/", (_request, reply) => reply.redirect(CONSOLE_PREFIX, 302));
  app.get("/console", (_request, reply) => reply.redirect(CONSOLE_PREFIX, 301));
  app.get(`${CONSOLE_PREFIX}*`, (request, reply) => {
    const wanted = (request.params as { "*": string })["*"];
    const path = wanted === "" ? "index.html" : wanted;
    const asset = assets.get(path);
    if (asset === undefined) return notFound(reply, path);
    return sendAsset(reply, asset, request.headers["if-none-match"], request.method === "HEAD");
  });
}
