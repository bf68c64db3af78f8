import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import type { RoutePlugin } from "../../cloud/api/app.js";
import { HttpProblem } from "../../cloud/api/problem.js";
import { addRoute } from "../../cloud/api/route.js";
import { bearer, PASSWORDS, startApiCore, type ApiCore } from "./api-core.fixture.js";

let core: ApiCore | undefined;

afterEach(async () => {
  await core?.close();
  core = undefined;
});

/** A domain plugin with routes that fail on purpose, registered like any other. */
const failing: RoutePlugin = (app: FastifyInstance, deps) => {
  addRoute(app, {
    method: "POST",
    url: "/test/echo",
    summary: "echo",
    tags: ["test"],
    access: "public",
    body: z.strictObject({ text: z.string() }),
    response: z.object({ text: z.string() }),
    handler: ({ body }) => Promise.resolve(body),
  });
  addRoute(app, {
    method: "GET",
    url: "/test/bug",
    summary: "a handler bug",
    tags: ["test"],
    access: "public",
    response: z.object({}),
    handler: () => Promise.reject(new TypeError("secret-internal-detail at /srv/agri/db.ts:42")),
  });
  addRoute(app, {
    method: "GET",
    url: "/test/households/:householdId",
    summary: "a registry lookup that throws the registry's errors",
    tags: ["test"],
    access: "public",
    params: z.strictObject({ householdId: z.string() }),
    response: z.strictObject({}),
    handler: async ({ params }) => {
      if (params.householdId === "dup") await deps.registry.addVillage({ villageId: "v1", name: "again" });
      if (params.householdId === "unknown") await deps.registry.setGatewayEnabled("gw-none", false);
      if (params.householdId === "bad") await deps.registry.addVillage({ villageId: "bad id!", name: "x" });
      // Outside the strict response schema on purpose: the route's bug, not the caller's.
      const answer = params.householdId === "h1" ? {} : { unexpected: (await deps.registry.metersOfHousehold(params.householdId)).length };
      return answer as Record<string, never>;
    },
  });
  addRoute(app, {
    method: "GET",
    url: "/test/teapot",
    summary: "an HttpProblem with headers",
    tags: ["test"],
    access: "public",
    response: z.object({}),
    handler: () => Promise.reject(new HttpProblem(429, "TEST_SLOW_DOWN", "slow down", undefined, { "retry-after": "7" })),
  });
};

const start = async (): Promise<ApiCore> => (core = await startApiCore({ routes: [failing] }));

describe("errors as application/problem+json", () => {
  it("answers 413 for a body over the 64 KiB default limit", async () => {
    const c = await start();
    const res = await c.inject({ method: "POST", url: "/test/echo", payload: { text: "x".repeat(70 * 1024) } });
    expect(res.statusCode).toBe(413);
    expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ status: 413, code: "API_BODY_TOO_LARGE" });
  });

  it("answers 413 above a route's own lower limit (login: 4 KiB)", async () => {
    const c = await start();
    const res = await c.inject({ method: "POST", url: "/auth/login", payload: { userId: "admin", password: "p".repeat(5000) } });
    expect(res.statusCode).toBe(413);
  });

  it("answers 400 API_MALFORMED_JSON for a body that is not JSON", async () => {
    const c = await start();
    const res = await c.inject({ method: "POST", url: "/test/echo", headers: { "content-type": "application/json" }, payload: '{"text": "unterminated' });
    expect(res.statusCode).toBe(400);
    expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ code: "API_MALFORMED_JSON" });
  });

  it("answers 415 for a text/plain body (no cross-site form can post JSON-less bodies)", async () => {
    const c = await start();
    const res = await c.inject({ method: "POST", url: "/test/echo", headers: { "content-type": "text/plain" }, payload: "hello" });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ code: "API_UNSUPPORTED_MEDIA_TYPE" });
  });

  it("answers 404 problem+json for an unknown route", async () => {
    const c = await start();
    const res = await c.inject({ method: "GET", url: "/no/such/thing?x=1" });
    expect(res.statusCode).toBe(404);
    expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(res.json()).toEqual({ type: "https://agri-edge.invalid/problems/api-not-found", title: "Not Found", status: 404, detail: "no route GET /no/such/thing", code: "API_NOT_FOUND" });
  });

  it("answers a handler bug with a bare 500 — no message, no stack — and logs the cause with the request id", async () => {
    const c = await start();
    const res = await c.inject({ method: "GET", url: "/test/bug" });
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toMatch(/secret-internal-detail|TypeError|\/srv|at /);
    expect(res.json()).toMatchObject({ code: "API_INTERNAL_ERROR" });
    const logged = c.logLines().find((l) => l.msg === "api: request failed");
    expect(logged).toMatchObject({ reqId: res.headers["x-request-id"], err: { message: expect.stringMatching(/secret-internal-detail/) as string } });
  });

  it("maps registry errors: unknown or duplicate ids and invalid input", async () => {
    const c = await start();
    expect((await c.inject({ method: "GET", url: "/test/households/dup" })).json()).toMatchObject({ status: 409, code: "REGISTRY_ALREADY_EXISTS" });
    expect((await c.inject({ method: "GET", url: "/test/households/bad" })).json()).toMatchObject({ status: 400, code: "REGISTRY_INVALID_INPUT" });
    expect((await c.inject({ method: "GET", url: "/test/households/unknown" })).json()).toMatchObject({ status: 404, code: "REGISTRY_UNKNOWN_ENTITY" });
  });

  it("answers 500 when a handler's answer is outside its documented shape", async () => {
    const c = await start();
    const res = await c.inject({ method: "GET", url: "/test/households/h9" });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toMatchObject({ code: "API_RESPONSE_INVALID" });
  });

  it("passes an HttpProblem's headers through (Retry-After)", async () => {
    const c = await start();
    const res = await c.inject({ method: "GET", url: "/test/teapot" });
    expect(res.statusCode).toBe(429);
    expect(res.headers["retry-after"]).toBe("7");
  });
});

describe("headers", () => {
  it("sends no-sniff, frame denial, a deny-all CSP, no-store and no CORS headers on API answers", async () => {
    const c = await start();
    const res = await c.inject({ method: "POST", url: "/test/echo", headers: { origin: "https://elsewhere.example" }, payload: { text: "hi" } });
    expect(res.json()).toEqual({ text: "hi" });
    expect(res.headers).toMatchObject({
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "content-security-policy": expect.stringContaining("default-src 'none'") as string,
      "cache-control": "no-store",
    });
    expect(res.headers["access-control-allow-origin"]).toBeUndefined();
  });
});

describe("over a real socket", () => {
  it("logs in with a cookie and reads /auth/me through a listening server", async () => {
    const c = await start();
    await c.app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = c.app.server.address() as AddressInfo;
    const base = `http://127.0.0.1:${port}`;
    const login = await fetch(`${base}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId: "officer-v1", password: PASSWORDS.officer }) });
    expect(login.status).toBe(200);
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    const me = await fetch(`${base}/auth/me`, { headers: { cookie } });
    expect(await me.json()).toMatchObject({ userId: "officer-v1", via: "session" });
    const bad = await fetch(`${base}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: "{oops" });
    expect(bad.status).toBe(400);
    expect(bad.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  });

  it("documents a domain plugin's routes in the OpenAPI document beside the core's", async () => {
    const c = await start();
    const doc = (await c.inject({ method: "GET", url: "/docs/openapi.json" })).json<{ paths: Record<string, Record<string, unknown>> }>();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/test/echo", "/test/bug", "/test/households/{householdId}", "/auth/login", "/users"]));
  });

  it("serves bearer-token requests from a domain plugin registered after the core", async () => {
    const c = await start();
    const token = await c.login("farmer-li", PASSWORDS.farmer);
    const res = await c.inject({ method: "POST", url: "/test/echo", headers: bearer(token), payload: { text: "plugin" } });
    expect(res.json()).toEqual({ text: "plugin" });
  });
});
