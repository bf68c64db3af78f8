// One real API core for the api-core tests: registry, ledger, telemetry, auth and audit on SQLite files in a
// temporary directory (or users and the audit log on a PostgreSQL database the test names), the prepaid service over
// them (its command publisher is the one fake: no broker is needed by any core route), a controllable clock, and a
// pino logger whose lines the test can read.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { pino } from "pino";
import { buildApp, type ApiOptions, type RoutePlugin } from "../../cloud/api/app.js";
import type { AuthStore, AuthStoreCommonOptions } from "../../cloud/auth/auth-store.js";
import { openSqliteAuthStore } from "../../cloud/auth/sqlite-auth-store.js";
import { openSqliteLedger } from "../../cloud/ledger/store/sqlite-ledger.js";
import { createPrepaidService } from "../../cloud/prepaid/service.js";
import { openRegistry, type Registry } from "../../cloud/registry/registry.js";
import { openSqliteTelemetryStore } from "../../cloud/telemetry/sqlite-store.js";

export const PASSWORDS = { admin: "plough-river-42", officer: "willow-kettle-17", farmer: "millet-harvest-9" } as const;

export interface ApiCore {
  readonly app: FastifyInstance;
  readonly auth: AuthStore;
  readonly registry: Registry;
  readonly dir: string;
  /** Every log line written so far, parsed. */
  readonly logLines: () => Record<string, unknown>[];
  advance(ms: number): void;
  nowMs(): number;
  inject(options: InjectOptions): Promise<LightMyRequestResponse>;
  /** Logs in (mode token) and returns the session token. */
  login(userId: string, password: string): Promise<string>;
  close(): Promise<void>;
}

export interface ApiCoreSetup {
  readonly routes?: readonly RoutePlugin[];
  readonly options?: ApiOptions;
  /** Another auth engine (PostgreSQL) instead of cloud.db's. */
  readonly openAuth?: (options: AuthStoreCommonOptions) => Promise<AuthStore>;
  /** Skip creating the fixture's users (a second worker on data another core already seeded). */
  readonly seedUsers?: boolean;
}

export async function startApiCore(setup: ApiCoreSetup = {}): Promise<ApiCore> {
  const dir = mkdtempSync(join(tmpdir(), "api-core-"));
  let clock = 1_700_000_000_000;
  const now = (): number => clock;
  const lines: string[] = [];
  const log = pino(
    { level: "info" },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString("utf8"));
        done();
      },
    }),
  );
  const path = join(dir, "cloud.db");
  const registry = openRegistry({ path, now });
  const ledger = openSqliteLedger({ path, now });
  const telemetry = openSqliteTelemetryStore({ path: join(dir, "telemetry.db"), now });
  const prepaid = createPrepaidService({ ledger, registry, log, now, publishCommand: () => Promise.resolve() });
  const authOptions: AuthStoreCommonOptions = { now, villageOfHousehold: async (id) => (await registry.getHousehold(id))?.villageId };
  const auth = setup.openAuth === undefined ? openSqliteAuthStore({ path, ...authOptions }) : await setup.openAuth(authOptions);

  await registry.addVillage({ villageId: "v1", name: "East Village" });
  await registry.addVillage({ villageId: "v2", name: "West Village" });
  await registry.addHousehold({ householdId: "h1", villageId: "v1", name: "Li" });
  await registry.addHousehold({ householdId: "h2", villageId: "v2", name: "Wang" });
  if (setup.seedUsers ?? true) {
    const cli = { actor: "cli:test", reason: "fixture" };
    await auth.createUser({ userId: "admin", name: "Admin", roles: ["admin"], password: PASSWORDS.admin }, cli);
    await auth.createUser({ userId: "officer-v1", name: "Officer Zhang", roles: ["village-officer"], villageIds: ["v1"], password: PASSWORDS.officer }, cli);
    await auth.createUser({ userId: "farmer-li", name: "Li Wei", roles: ["farmer"], householdId: "h1", password: PASSWORDS.farmer }, cli);
  }

  const app = await buildApp({
    registry,
    ledger,
    prepaid,
    telemetry,
    auth,
    audit: auth.audit,
    log,
    now,
    ...(setup.routes === undefined ? {} : { routes: setup.routes }),
    options: {
      loginRateLimits: { perUsername: { limit: 3, windowMs: 60_000 }, perAddress: { limit: 8, windowMs: 60_000 }, maxTrackedKeys: 1000 },
      ...setup.options,
    },
  });
  await app.ready();

  return {
    app,
    auth,
    registry,
    dir,
    logLines: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    advance: (ms) => {
      clock += ms;
    },
    nowMs: now,
    inject: (options) => app.inject(options),
    async login(userId, password) {
      const res = await app.inject({ method: "POST", url: "/auth/login", payload: { userId, password, mode: "token" } });
      if (res.statusCode !== 200) throw new Error(`login ${userId}: ${res.statusCode} ${res.body}`);
      return (res.json<{ token: string }>()).token;
    },
    async close() {
      await app.close();
      await auth.close();
      await telemetry.close();
      await ledger.close();
      await registry.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const bearer = (token: string): { authorization: string } => ({ authorization: `Bearer ${token}` });

type Json = Record<string, unknown>;

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/**
 * OpenAPI 3.1.0's structural rules that a generator can get wrong (spec §4.8): the version and info, paths starting
 * with "/", each templated path parameter declared once as a required path parameter and none undeclared, unique
 * operationIds, responses keyed by status code or "default" with a description, security naming declared schemes,
 * and every $ref resolving inside the document.
 */
export function openApiProblems(doc: Json): string[] {
  const problems: string[] = [];
  if (doc.openapi !== "3.1.0") problems.push("openapi must be 3.1.0");
  const info = doc.info as Json | undefined;
  if (typeof info?.title !== "string" || typeof info.version !== "string") problems.push("info.title and info.version are required strings");
  const components = (doc.components ?? {}) as Json;
  const schemes = Object.keys((components.securitySchemes ?? {}));
  const operationIds = new Set<string>();
  const paths = (doc.paths ?? {}) as Record<string, Json>;
  for (const [path, item] of Object.entries(paths)) {
    if (!path.startsWith("/")) problems.push(`${path}: paths start with /`);
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const [method, op] of Object.entries(item)) {
      const where = `${method.toUpperCase()} ${path}`;
      if (!HTTP_METHODS.includes(method)) problems.push(`${where}: not an HTTP method`);
      const operation = op as Json;
      const id = operation.operationId;
      if (typeof id !== "string" || operationIds.has(id)) problems.push(`${where}: operationId missing or duplicated`);
      operationIds.add(String(id));
      const parameters = (operation.parameters ?? []) as Json[];
      const pathParams = parameters.filter((p) => p.in === "path");
      for (const name of templated) {
        const declared = pathParams.filter((p) => p.name === name);
        if (declared.length !== 1 || declared[0]?.required !== true) problems.push(`${where}: path parameter ${name} must be declared once, required`);
      }
      for (const p of pathParams) if (!templated.includes(String(p.name))) problems.push(`${where}: path parameter ${String(p.name)} is not in the path`);
      const seen = new Set<string>();
      for (const p of parameters) {
        if (!["query", "header", "path", "cookie"].includes(String(p.in))) problems.push(`${where}: parameter ${String(p.name)} has a bad "in"`);
        if (typeof p.schema !== "object" || p.schema === null) problems.push(`${where}: parameter ${String(p.name)} needs a schema`);
        const key = `${String(p.in)}:${String(p.name)}`;
        if (seen.has(key)) problems.push(`${where}: parameter ${key} repeated`);
        seen.add(key);
      }
      const responses = (operation.responses ?? {}) as Record<string, Json>;
      if (Object.keys(responses).length === 0) problems.push(`${where}: no responses`);
      for (const [status, response] of Object.entries(responses)) {
        if (!/^[1-5](\d\d|XX)$/.test(status) && status !== "default") problems.push(`${where}: response key ${status}`);
        if (response.$ref === undefined && typeof response.description !== "string") problems.push(`${where}: response ${status} needs a description`);
      }
      for (const requirement of (operation.security ?? []) as Json[]) {
        for (const name of Object.keys(requirement)) if (!schemes.includes(name)) problems.push(`${where}: security scheme ${name} is not declared`);
      }
    }
  }
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(visit);
    else if (typeof value === "object" && value !== null) {
      for (const [key, inner] of Object.entries(value)) {
        if (key === "$ref" && typeof inner === "string") {
          const target = inner
            .replace(/^#\//, "")
            .split("/")
            .reduce<unknown>((node, part) => (node as Json | undefined)?.[part.replaceAll("~1", "/").replaceAll("~0", "~")], doc);
          if (!inner.startsWith("#/") || target === undefined) problems.push(`$ref ${inner} does not resolve`);
        } else visit(inner);
      }
    }
  };
  visit(doc);
  return problems;
}

