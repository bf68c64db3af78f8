import Fastify from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { collectRoutes, jsonSchemaOf, openApiDocument } from "../../cloud/api/openapi.js";
import { addRoute, routeDoc } from "../../cloud/api/route.js";
import { openApiProblems, startApiCore, type ApiCore } from "./api-core.fixture.js";

let core: ApiCore | undefined;

afterEach(async () => {
  await core?.close();
  core = undefined;
});

type Json = Record<string, unknown>;

describe("the OpenAPI document", () => {
  it("lists every route the app registered, with its method", async () => {
    core = await startApiCore();
    const doc = (await core.inject({ method: "GET", url: "/docs/openapi.json" })).json<{ paths: Record<string, Record<string, unknown>> }>();
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    for (const operation of documented) {
      const [method, path] = operation.split(" ") as [string, string];
      expect(core.app.hasRoute({ method: method, url: path.replace(/\{([^}]+)\}/g, ":$1") }), operation).toBe(true);
    }
    expect(documented).toEqual(
      [
        "DELETE /auth/tokens/{tokenId}",
        "GET /audit",
        "GET /auth/me",
        "GET /auth/tokens",
        "GET /docs",
        "GET /docs/openapi.json",
        "GET /users",
        "GET /users/{userId}",
        "PATCH /users/{userId}",
        "POST /auth/login",
        "POST /auth/logout",
        "POST /auth/tokens",
        "POST /users",
        "POST /users/{userId}/password",
      ].sort(),
    );
  });

  it("is structurally valid OpenAPI 3.1", async () => {
    core = await startApiCore();
    const doc = (await core.inject({ method: "GET", url: "/docs/openapi.json" })).json<Json>();
    expect(openApiProblems(doc)).toEqual([]);
  });

  it("carries each route's body, path, query and response schemas, roles and problem responses", async () => {
    core = await startApiCore();
    const doc = (await core.inject({ method: "GET", url: "/docs/openapi.json" })).json<{ paths: Record<string, Record<string, Json>> }>();
    const patchUser = doc.paths["/users/{userId}"]?.patch as Json;
    expect(patchUser["x-roles"]).toEqual(["admin", "village-officer"]);
    expect(patchUser.security).toEqual([{ sessionCookie: [] }, { bearer: [] }]);
    expect(patchUser.parameters).toEqual([{ name: "userId", in: "path", required: true, schema: { type: "string", minLength: 1, maxLength: 100 } }]);
    const body = ((patchUser.requestBody as Json).content as Record<string, { schema: Json }>)["application/json"]?.schema;
    expect(body).toMatchObject({ type: "object", required: ["reason"], properties: { disabled: { type: "boolean" } } });
    const responses = patchUser.responses as Record<string, Json>;
    expect(Object.keys(responses).sort()).toEqual(["200", "400", "401", "403", "404", "413", "415", "500"]);
    expect(responses["403"]).toEqual({ $ref: "#/components/responses/Problem403" });
    const audit = doc.paths["/audit"]?.get as Json;
    expect((audit.parameters as Json[]).map((p) => [p.name, p.in, p.required])).toContainEqual(["limit", "query", false]);
    const login = doc.paths["/auth/login"]?.post as Json;
    expect(login["x-roles"]).toBe("public");
    expect(login.security).toEqual([]);
  });

  it("documents a type JSON Schema cannot express as unconstrained instead of failing", () => {
    const app = Fastify();
    const routes = collectRoutes(app);
    addRoute(app, {
      method: "POST",
      url: "/odd/:id",
      summary: "odd schemas",
      tags: ["odd"],
      access: ["admin"],
      params: z.object({ id: z.string().transform((s) => s.length) }),
      query: z.object({ at: z.date().optional(), n: z.bigint().optional() }),
      body: z.object({ when: z.date(), check: z.custom<string>((v) => typeof v === "string"), big: z.bigint(), sym: z.symbol().optional() }),
      response: z.object({ out: z.map(z.string(), z.number()), later: z.promise(z.string()).optional() }),
      handler: () => Promise.resolve({ out: new Map() }),
    });
    const doc = openApiDocument(routes, { title: "t", version: "1" });
    expect(openApiProblems(doc)).toEqual([]);
    expect(Object.keys((doc.paths as Json)["/odd/{id}"] as Json)).toEqual(["post"]);
  });

  it("turns a schema that throws during conversion into a described placeholder", () => {
    const recursive: z.ZodType = z.lazy(() => z.object({ self: recursive }));
    expect(() => jsonSchemaOf(recursive, "output")).not.toThrow();
    expect(jsonSchemaOf(z.string().transform(Number), "output")).toEqual({});
  });

  it("reads the doc a route carries only from addRoute's config", () => {
    expect(routeDoc(undefined)).toBeUndefined();
    expect(routeDoc({ other: 1 })).toBeUndefined();
  });
});

describe("GET /docs", () => {
  it("is a self-contained HTML page listing every operation, with a CSP that allows only its own style", async () => {
    core = await startApiCore();
    const res = await core.inject({ method: "GET", url: "/docs" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/html/);
    expect(res.headers["content-security-policy"]).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(res.body).toContain("<code>/users/{userId}/password</code>");
    expect(res.body).toContain("admin, village-officer");
    expect(res.body).not.toMatch(/<script|https?:\/\/(?!json-schema)/);
  });
});
