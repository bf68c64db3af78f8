// One way to declare an HTTP route (ARCHITECTURE.md §5: "the same zod schemas feed the OpenAPI document and the
// route validation"). A RouteSpec names its method, URL, who may call it, and zod schemas for params, query, body
// and response; addRoute registers it with fastify, parses every input with zod (a failure is a 400 problem naming
// each field), checks the caller's role, and parses the handler's answer with the response schema before sending
// it, so a route can never answer outside its documented shape. The spec rides on the route's `config`, where
// openapi.ts collects it through an onRoute hook — every domain plugin (prepaid, subsidy, alerts) uses this file.
//
// Scope (which village, household or jurisdiction) is the handler's job: only it has the row to check.

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import { hasAnyRole, type Principal, type Role } from "../auth/principal.js";
import { forbidden, HttpProblem, unauthorized } from "./problem.js";

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the auth hook (app.ts) from a session cookie or a bearer token; undefined when anonymous. */
    principal: Principal | undefined;
    /** How the principal proved who they are; undefined when anonymous. */
    authVia: "session" | "api-token" | undefined;
    /**
     * Resolves the request's credential again (a session may have ended, a user been disabled or re-scoped since):
     * long-lived answers such as an event stream call it before every event. Undefined for an anonymous request.
     */
    reauthenticate: (() => Promise<Principal | undefined>) | undefined;
  }
}

export type RouteAccess = "public" | "authenticated" | readonly Role[];

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** What a route answers with. "json" answers are parsed with `response`; the others are sent by the handler. */
export type Produces = "application/json" | "text/csv" | "text/html" | "text/event-stream" | "application/xml";

type Schema = z.ZodType;
type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteContext<P, Q, B> {
  readonly principal: Principal;
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
}

export interface RouteSpec<PS extends Schema | undefined, QS extends Schema | undefined, BS extends Schema | undefined, RS extends Schema> {
  readonly method: HttpMethod;
  /** fastify syntax: /households/:householdId */
  readonly url: string;
  readonly summary: string;
  readonly tags: readonly string[];
  /** "public": anyone; "authenticated": any logged-in user; otherwise the roles allowed (an admin always is). */
  readonly access: RouteAccess;
  readonly params?: PS;
  readonly query?: QS;
  readonly body?: BS;
  /** The 2xx body ("application/json"), or a description-only schema such as z.string() for other types. */
  readonly response: RS;
  readonly status?: number;
  readonly produces?: Produces;
  readonly bodyLimitBytes?: number;
  /**
   * Returns the JSON answer, or (for other `produces`) sends through ctx.reply itself and returns the reply.
   * Public routes get an anonymous principal with no roles.
   */
  readonly handler: (ctx: RouteContext<Out<PS>, Out<QS>, Out<BS>>) => Promise<z.input<RS> | FastifyReply>;
}

/** What openapi.ts reads off each route's config. */
export interface RouteDoc {
  readonly method: HttpMethod;
  readonly url: string;
  readonly summary: string;
  readonly tags: readonly string[];
  readonly access: RouteAccess;
  readonly params?: Schema;
  readonly query?: Schema;
  readonly body?: Schema;
  readonly response: Schema;
  readonly status: number;
  readonly produces: Produces;
}

const ANONYMOUS: Principal = { userId: "anonymous", name: "anonymous", roles: [], villageIds: [], jurisdictionIds: [] };

function parseInput<S extends Schema>(schema: S | undefined, value: unknown, where: string): unknown {
  if (schema === undefined) return undefined;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const errors = result.error.issues.map((issue) => ({ path: [where, ...issue.path.map(String)].join("."), message: issue.message }));
  throw new HttpProblem(400, "API_INVALID_INPUT", `invalid ${where}: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, errors);
}

export function addRoute<PS extends Schema | undefined, QS extends Schema | undefined, BS extends Schema | undefined, RS extends Schema>(
  app: FastifyInstance,
  spec: RouteSpec<PS, QS, BS, RS>,
): void {
  const produces = spec.produces ?? "application/json";
  const doc: RouteDoc = {
    method: spec.method,
    url: spec.url,
    summary: spec.summary,
    tags: spec.tags,
    access: spec.access,
    response: spec.response,
    status: spec.status ?? 200,
    produces,
    ...(spec.params === undefined ? {} : { params: spec.params }),
    ...(spec.query === undefined ? {} : { query: spec.query }),
    ...(spec.body === undefined ? {} : { body: spec.body }),
  };
  app.route({
    method: spec.method,
    url: spec.url,
    config: { doc },
    ...(spec.bodyLimitBytes === undefined ? {} : { bodyLimit: spec.bodyLimitBytes }),
    handler: async (request, reply) => {
      let principal = ANONYMOUS;
      if (spec.access !== "public") {
        if (request.principal === undefined) throw unauthorized();
        if (spec.access !== "authenticated" && !hasAnyRole(request.principal, spec.access)) throw forbidden(`this needs one of the roles: ${spec.access.join(", ")}`);
        principal = request.principal;
      } else if (request.principal !== undefined) {
        principal = request.principal;
      }
      const ctx = {
        principal,
        params: parseInput(spec.params, request.params, "params"),
        query: parseInput(spec.query, request.query, "query"),
        body: parseInput(spec.body, request.body, "body"),
        request,
        reply,
      } as RouteContext<Out<PS>, Out<QS>, Out<BS>>;
      const answer = await spec.handler(ctx);
      if (produces !== "application/json") return reply;
      // A response outside the documented shape is our bug, not the caller's: 500, with the reason logged.
      const checked = spec.response.safeParse(answer);
      if (!checked.success) {
        request.log.error({ url: spec.url, issues: checked.error.issues }, "api: response does not match its schema");
        throw new HttpProblem(500, "API_RESPONSE_INVALID", "the server produced an answer outside its documented shape");
      }
      return reply.code(doc.status).type("application/json; charset=utf-8").send(checked.data);
    },
  });
}

/** The RouteDoc of a route registered by addRoute (undefined for fastify-internal routes). */
export function routeDoc(config: unknown): RouteDoc | undefined {
  if (typeof config !== "object" || config === null || !("doc" in config)) return undefined;
  return (config as { doc: RouteDoc }).doc;
}
