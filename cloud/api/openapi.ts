// The OpenAPI 3.1 document of the HTTP API, generated from the routes themselves (ARCHITECTURE.md §5: "the same zod
// schemas feed the OpenAPI document and the route validation"). An onRoute hook collects the RouteDoc that
// addRoute (route.ts) puts on every route's config, whatever plugin registered it; the document is built on first
// request, once every plugin has registered. Schemas come from zod 4's z.toJSONSchema (JSON Schema 2020-12, which
// is OpenAPI 3.1's dialect); a type JSON Schema cannot express (a Date, a bigint, a custom check) becomes an
// unconstrained schema, never a crash. Served at GET /docs/openapi.json, with a self-contained HTML list of the
// operations at GET /docs (no CDN: the cloud box may be offline from the internet).

import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { SESSION_COOKIE_NAME } from "../auth/session-cookie.js";
import { PROBLEM_CONTENT_TYPE } from "./problem.js";
import { addRoute, routeDoc, type RouteDoc } from "./route.js";

export interface CollectedRoute {
  /** The full path, fastify syntax, with any plugin prefix. */
  readonly path: string;
  readonly doc: RouteDoc;
}

export interface OpenApiInfo {
  readonly title: string;
  readonly version: string;
  readonly description?: string;
}

type JsonSchema = Record<string, unknown>;

/** Start collecting: call before any route is registered (buildApp does). */
export function collectRoutes(app: FastifyInstance): CollectedRoute[] {
  const routes: CollectedRoute[] = [];
  app.addHook("onRoute", (options) => {
    const doc = routeDoc(options.config);
    // fastify adds a HEAD route beside every GET, with the same config; document the route as declared.
    if (doc === undefined || options.method !== doc.method) return;
    routes.push({ path: options.url ?? options.path, doc });
  });
  return routes;
}

/** fastify's /households/:householdId → OpenAPI's /households/{householdId}. */
export const openApiPath = (path: string): string => path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

export const pathParameterNames = (path: string): string[] => [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1] ?? "");

/** A zod schema as JSON Schema 2020-12; anything unrepresentable is left unconstrained rather than failing. */
export function jsonSchemaOf(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  try {
    const json = z.toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any", cycles: "ref", reused: "inline" }) as JsonSchema;
    delete json.$schema;
    return json;
  } catch (error) {
    return { description: `not representable in JSON Schema: ${error instanceof Error ? error.message : String(error)}` };
  }
}

const PROBLEM_SCHEMA: JsonSchema = {
  type: "object",
  required: ["type", "title", "status", "detail", "code"],
  properties: {
    type: { type: "string", format: "uri" },
    title: { type: "string" },
    status: { type: "integer", minimum: 400, maximum: 599 },
    detail: { type: "string" },
    code: { type: "string", description: "stable error code (README error table)" },
    errors: {
      type: "array",
      items: { type: "object", required: ["path", "message"], properties: { path: { type: "string" }, message: { type: "string" } } },
    },
  },
};

const ERROR_RESPONSES: Readonly<Record<string, string>> = {
  "400": "invalid input: the problem names each field",
  "401": "not logged in (no, expired or revoked session or token)",
  "403": "logged in, but outside the route's roles or the caller's scope",
  "404": "no such entity",
  "409": "conflicts with the current state",
  "413": "body larger than the route accepts",
  "415": "body is not application/json",
  "422": "well-formed but refused by the domain",
  "429": "too many attempts; see Retry-After",
  "500": "the server failed; nothing of the cause is disclosed",
};

const problemRef = (status: string) => ({ $ref: `#/components/responses/Problem${status}` });

function parametersOf(schema: z.ZodType | undefined, where: "path" | "query", pathNames: readonly string[]): JsonSchema[] {
  const declared = schema === undefined ? undefined : jsonSchemaOf(schema, "input");
  const properties = (declared?.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set(Array.isArray(declared?.required) ? (declared.required as string[]) : []);
  const names = where === "path" ? [...new Set([...pathNames, ...Object.keys(properties)])].filter((n) => pathNames.includes(n)) : Object.keys(properties);
  return names.map((name) => {
    const property = properties[name] ?? { type: "string" };
    const description = typeof property.description === "string" ? { description: property.description } : {};
    return { name, in: where, required: where === "path" ? true : required.has(name), ...description, schema: property };
  });
}

function operationId(method: string, path: string): string {
  const words = path
    .split("/")
    .filter((w) => w !== "")
    .map((w) => w.replace(/^:/, "by-"))
    .join("-");
  return `${method.toLowerCase()}-${words === "" ? "root" : words}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

function securityOf(access: RouteDoc["access"]): { security: Record<string, string[]>[]; roles: readonly string[] | "any" } | undefined {
  if (access === "public") return undefined;
  return { security: [{ sessionCookie: [] }, { bearer: [] }], roles: access === "authenticated" ? "any" : ["admin", ...access.filter((r) => r !== "admin")] };
}

function operationOf(route: CollectedRoute): JsonSchema {
  const { doc, path } = route;
  const guarded = securityOf(doc.access);
  const responses: JsonSchema = {
    [String(doc.status)]: {
      description: doc.summary,
      content: { [doc.produces]: { schema: doc.produces === "application/json" ? jsonSchemaOf(doc.response, "output") : { type: "string" } } },
    },
  };
  const errorStatuses = ["400", ...(guarded === undefined ? [] : ["401", "403"]), ...(doc.body === undefined ? [] : ["413", "415"]), "500"];
  if (path.includes(":")) errorStatuses.splice(1, 0, "404");
  for (const status of errorStatuses) responses[status] = problemRef(status);
  const parameters = [...parametersOf(doc.params, "path", pathParameterNames(path)), ...parametersOf(doc.query, "query", [])];
  return {
    operationId: operationId(doc.method, path),
    summary: doc.summary,
    tags: [...doc.tags],
    ...(parameters.length === 0 ? {} : { parameters }),
    ...(doc.body === undefined ? {} : { requestBody: { required: true, content: { "application/json": { schema: jsonSchemaOf(doc.body, "input") } } } }),
    responses,
    security: guarded?.security ?? [],
    "x-roles": guarded === undefined ? "public" : guarded.roles,
  };
}

/** The whole document; deterministic for a given set of routes. */
export function openApiDocument(routes: readonly CollectedRoute[], info: OpenApiInfo): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  const sorted = [...routes].sort((a, b) => a.path.localeCompare(b.path) || a.doc.method.localeCompare(b.doc.method));
  for (const route of sorted) {
    const key = openApiPath(route.path);
    (paths[key] ??= {})[route.doc.method.toLowerCase()] = operationOf(route);
  }
  const tags = [...new Set(sorted.flatMap((r) => r.doc.tags))].sort().map((name) => ({ name }));
  const responses: Record<string, JsonSchema> = {};
  for (const [status, description] of Object.entries(ERROR_RESPONSES)) {
    responses[`Problem${status}`] = {
      description,
      ...(status === "429" ? { headers: { "Retry-After": { description: "seconds to wait", schema: { type: "integer", minimum: 1 } } } } : {}),
      content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: "#/components/schemas/Problem" } } },
    };
  }
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: { title: info.title, version: info.version, ...(info.description === undefined ? {} : { description: info.description }) },
    tags,
    paths,
    components: {
      schemas: { Problem: PROBLEM_SCHEMA },
      responses,
      securitySchemes: {
        sessionCookie: { type: "apiKey", in: "cookie", name: SESSION_COOKIE_NAME, description: "set by POST /auth/login; HttpOnly, SameSite=Strict" },
        bearer: { type: "http", scheme: "bearer", description: "a session token (POST /auth/login with mode token) or an API token (POST /auth/tokens)" },
      },
    },
  };
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

const DOCS_STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
code{font:13px ui-monospace,monospace}.m{font-weight:600}h2{margin-top:2rem}`;

/** The CSP of the /docs page: nothing but its own inline style, allowed by hash (CSP Level 3 §8.3). */
export const DOCS_CONTENT_SECURITY_POLICY = `default-src 'none'; style-src 'sha256-${createHash("sha256").update(DOCS_STYLE).digest("base64")}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

export function docsHtml(routes: readonly CollectedRoute[], info: OpenApiInfo): string {
  const byTag = new Map<string, CollectedRoute[]>();
  for (const route of [...routes].sort((a, b) => a.path.localeCompare(b.path) || a.doc.method.localeCompare(b.doc.method))) {
    const tag = route.doc.tags[0] ?? "other";
    byTag.set(tag, [...(byTag.get(tag) ?? []), route]);
  }
  const sections = [...byTag.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([tag, list]) => {
      const rows = list
        .map(({ path, doc }) => {
          const who = doc.access === "public" ? "anyone" : doc.access === "authenticated" ? "any user" : ["admin", ...doc.access.filter((r) => r !== "admin")].join(", ");
          return `<tr><td class="m">${doc.method}</td><td><code>${escapeHtml(openApiPath(path))}</code></td><td>${escapeHtml(doc.summary)}</td><td>${escapeHtml(who)}</td></tr>`;
        })
        .join("\n");
      return `<h2>${escapeHtml(tag)}</h2>\n<table><thead><tr><th>method</th><th>path</th><th>what</th><th>who</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
    })
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(info.title)}</title><style>${DOCS_STYLE}</style></head>
<body><h1>${escapeHtml(info.title)} <small>${escapeHtml(info.version)}</small></h1>
<p>Every operation of this server. Machine-readable: <a href="/docs/openapi.json">/docs/openapi.json</a> (OpenAPI 3.1).
Errors are <code>application/problem+json</code> (RFC 9457).</p>
${sections}
</body></html>
`;
}

/** GET /docs/openapi.json and GET /docs, built once on first request from every route collected. */
export function docsRoutes(app: FastifyInstance, routes: readonly CollectedRoute[], info: OpenApiInfo): void {
  let document: JsonSchema | undefined;
  let html: string | undefined;
  addRoute(app, {
    method: "GET",
    url: "/docs/openapi.json",
    summary: "This API's OpenAPI 3.1 document",
    tags: ["docs"],
    access: "public",
    response: z.looseObject({ openapi: z.literal("3.1.0") }),
    handler: async () => {
      document ??= openApiDocument(routes, info);
      return Promise.resolve(document as { openapi: "3.1.0" });
    },
  });
  addRoute(app, {
    method: "GET",
    url: "/docs",
    summary: "This API's operations as an HTML page",
    tags: ["docs"],
    access: "public",
    produces: "text/html",
    response: z.string(),
    handler: async ({ reply }) => {
      html ??= docsHtml(routes, info);
      return reply.header("content-security-policy", DOCS_CONTENT_SECURITY_POLICY).type("text/html; charset=utf-8").send(html);
    },
  });
}
