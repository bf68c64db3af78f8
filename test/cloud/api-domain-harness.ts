// A small stand-in for app.ts for the domain route tests: a fastify instance whose onRequest hook takes the
// principal from a test header (the real app resolves a session or a token), and whose error handler renders
// HttpProblem as application/problem+json — plus real SQLite files (registry, ledger, audit log, payments store, all
// in one cloud.db in a temporary directory), the real prepaid service with its published commands captured, and a
// clock the test moves.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { pino } from "pino";
import type { Principal, Role } from "../../cloud/auth/principal.js";
import { HttpProblem, PROBLEM_CONTENT_TYPE } from "../../cloud/api/problem.js";
import type { AuditLog } from "../../cloud/audit/audit-log.js";
import { openSqliteAuditLog } from "../../cloud/audit/sqlite-audit-log.js";
import { openSqliteLedger, type SqliteLedger } from "../../cloud/ledger/store/sqlite-ledger.js";
import { openPaymentsStore, type PaymentsStore } from "../../cloud/payments/orders-store.js";
import { createPrepaidService, type PrepaidService } from "../../cloud/prepaid/service.js";
import { openRegistry, type Registry } from "../../cloud/registry/registry.js";
import type { Command } from "../../protocols/mqtt/messages.js";

export const PRINCIPAL_HEADER = "x-test-principal";
/** 2026-11-01T00:00:00Z */
export const T0 = Date.UTC(2026, 10, 1);

export interface Harness {
  readonly dir: string;
  readonly dbPath: string;
  readonly app: FastifyInstance;
  readonly registry: Registry;
  readonly ledger: SqliteLedger;
  readonly audit: AuditLog;
  readonly store: PaymentsStore;
  readonly prepaid: PrepaidService;
  readonly commands: { gatewayId: string; command: Command }[];
  readonly clock: { nowMs: number };
  close(): Promise<void>;
}

export function who(userId: string, roles: readonly Role[], scope: { villageIds?: string[]; householdId?: string } = {}): Principal {
  return { userId, name: userId, roles, villageIds: scope.villageIds ?? [], jurisdictionIds: [], ...(scope.householdId === undefined ? {} : { householdId: scope.householdId }) };
}

export const ADMIN = who("admin-1", ["admin"]);
export const OFFICER_V1 = who("officer-v1", ["village-officer"], { villageIds: ["v1"] });
export const OFFICER_V2 = who("officer-v2", ["village-officer"], { villageIds: ["v2"] });
export const APPROVER_V1 = who("approver-v1", ["village-approver"], { villageIds: ["v1"] });
export const FARMER_LI = who("farmer-li", ["farmer"], { householdId: "hh-li" });
export const FARMER_WANG = who("farmer-wang", ["farmer"], { householdId: "hh-wang" });

export const as = (principal: Principal): Record<string, string> => ({ [PRINCIPAL_HEADER]: JSON.stringify(principal) });

export async function openHarness(register: (app: FastifyInstance, h: Omit<Harness, "app" | "close">) => Promise<void>): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), "api-domain-"));
  const dbPath = join(dir, "cloud.db");
  const clock = { nowMs: T0 };
  const now = (): number => clock.nowMs;
  const registry = openRegistry({ path: dbPath, now });
  const ledger = openSqliteLedger({ path: dbPath, now });
  const audit = openSqliteAuditLog(dbPath, { now });
  const store = openPaymentsStore({ path: dbPath, now });
  const commands: { gatewayId: string; command: Command }[] = [];
  const prepaid = createPrepaidService({
    ledger,
    registry,
    publishCommand: (gatewayId, command) => {
      commands.push({ gatewayId, command });
      return Promise.resolve();
    },
    log: pino({ level: "silent" }),
    now,
  });
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  app.decorateRequest("principal", undefined);
  app.addHook("onRequest", (request, _reply, done) => {
    const header = request.headers[PRINCIPAL_HEADER];
    request.principal = typeof header === "string" ? (JSON.parse(header) as Principal) : undefined;
    done();
  });
  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof HttpProblem) {
      return reply.code(error.status).type(PROBLEM_CONTENT_TYPE).send(error.body());
    }
    const statusCode = typeof (error as { statusCode?: unknown }).statusCode === "number" ? (error as { statusCode: number }).statusCode : 500;
    const code = typeof (error as { code?: unknown }).code === "string" ? (error as { code: string }).code : "API_INTERNAL";
    return reply.code(statusCode).type(PROBLEM_CONTENT_TYPE).send({ status: statusCode, code, detail: error instanceof Error ? error.message : String(error) });
  });
  const parts = { dir, dbPath, registry, ledger, audit, store, prepaid, commands, clock };
  await register(app, parts);
  await app.ready();
  return {
    ...parts,
    app,
    async close() {
      await app.close();
      await prepaid.idle();
      await store.close();
      await audit.close();
      await ledger.close();
      await registry.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Answer {
  readonly status: number;
  /** The parsed body; read it with toMatchObject, or with field() for one value. */
  readonly json: unknown;
  readonly contentType: string;
}

/** One value of an answer's JSON by path ("lowCredit.stage", "points"), typed by the caller who asserts on it. */
export function field<T = unknown>(answer: Answer, path: string): T {
  let value: unknown = answer.json;
  for (const key of path.split(".")) value = typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return value as T;
}

/** One field of every element of an answer that is a JSON array. */
export function ids(answer: Answer, key: string): unknown[] {
  return Array.isArray(answer.json) ? answer.json.map((item: unknown) => (typeof item === "object" && item !== null ? (item as Record<string, unknown>)[key] : undefined)) : [];
}

export async function call(app: FastifyInstance, method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE", url: string, principal: Principal | undefined, body?: unknown): Promise<Answer> {
  const response = await app.inject({
    method,
    url,
    headers: principal === undefined ? {} : as(principal),
    ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
  });
  const text = response.body;
  return { status: response.statusCode, json: text === "" ? undefined : (JSON.parse(text) as unknown), contentType: String(response.headers["content-type"] ?? "") };
}

/**
 * Two villages, a tariff, one gateway each, households hh-li and hh-wang in v1 and hh-zhao in v2 (accounts opened),
 * and pump-li on gw-v1; v1's policy caps stored credit at ¥500.00.
 */
export async function seedVillages(registry: Registry, ledger: SqliteLedger, secretHash: string): Promise<void> {
  const { openHouseholdAccount } = await import("../../cloud/prepaid/accounts.js");
  await registry.addVillage({ villageId: "v1", name: "Village 1" });
  await registry.addVillage({ villageId: "v2", name: "Village 2" });
  await registry.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 0, policy: { maxBalanceFen: 50_000, maxOverdraftFen: 500, lowCredit: { stage1Fen: 2_000, stage2Fen: 500 } } });
  await registry.addTariff({ tariffId: "t1", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } });
  await registry.addGateway({ gatewayId: "gw-v1", villageId: "v1", secretHash });
  await registry.addGateway({ gatewayId: "gw-v2", villageId: "v2", secretHash });
  await registry.addHousehold({ householdId: "hh-li", villageId: "v1", name: "Li", overdraftFen: 500 });
  await registry.addHousehold({ householdId: "hh-wang", villageId: "v1", name: "Wang" });
  await registry.addHousehold({ householdId: "hh-zhao", villageId: "v2", name: "Zhao" });
  await registry.addMeter({ meterId: "pump-li", gatewayId: "gw-v1", householdId: "hh-li", tariffId: "t1", initialWh: 100_000 });
  for (const [villageId, householdId] of [["v1", "hh-li"], ["v1", "hh-wang"], ["v2", "hh-zhao"]] as const) await openHouseholdAccount(ledger, villageId, householdId);
}
