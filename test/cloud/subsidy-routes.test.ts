// The subsidy HTTP routes (cloud/subsidy/routes.ts) on a tiny fastify instance: the principal comes from a test
// header and HttpProblem is rendered as problem+json, like app.ts does. Scoped to the village's officers and
// approvers; a farmer sees only their own lines of a published statement and their village's notice.

import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HttpProblem, PROBLEM_CONTENT_TYPE } from "../../cloud/api/problem.js";
import type { Principal, Role } from "../../cloud/auth/principal.js";
import { subsidyRoutes } from "../../cloud/subsidy/routes.js";
import { DAY_MS, openTestVillage, type TestVillage } from "./subsidy-village.fixture.js";

let village: TestVillage;
let app: FastifyInstance;

beforeEach(async () => {
  village = await openTestVillage();
  app = Fastify();
  app.decorateRequest("principal", undefined);
  app.addHook("onRequest", (request, _reply, done) => {
    const header = request.headers["x-test-principal"];
    request.principal = typeof header === "string" ? (JSON.parse(header) as Principal) : undefined;
    done();
  });
  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof HttpProblem) return reply.code(error.status).type(PROBLEM_CONTENT_TYPE).send(error.body());
    return reply.code(500).type(PROBLEM_CONTENT_TYPE).send({ status: 500, detail: String(error) });
  });
  await subsidyRoutes(app, { service: village.service, land: village.land });
  await app.ready();
});

afterEach(async () => {
  await app.close();
  await village.close();
});

const who = (userId: string, roles: Role[], extra: Partial<Principal> = {}): Principal => ({ userId, name: userId, roles, villageIds: ["hongmiao"], jurisdictionIds: [], ...extra });
const OFFICER = who("officer-1", ["village-officer"]);
const APPROVER_A = who("approver-a", ["village-approver"]);
const APPROVER_B = who("approver-b", ["village-approver"]);
const FARMER_CHEN = who("farmer-chen", ["farmer"], { villageIds: [], householdId: "hh-chen" });
const OTHER_OFFICER = who("officer-9", ["village-officer"], { villageIds: ["other"] });

/** A JSON answer, read loosely: the tests compare it with toMatchObject / toEqual. */
type Json = Record<string, unknown> & { code?: string };

async function call(principal: Principal | undefined, method: "GET" | "POST", url: string, payload?: unknown): Promise<{ status: number; json: () => Json; body: string; headers: Record<string, unknown> }> {
  const res = await app.inject({ method, url, ...(payload === undefined ? {} : { payload: payload as object }), headers: principal === undefined ? {} : { "x-test-principal": JSON.stringify(principal) } });
  return { status: res.statusCode, json: () => res.json<Json>(), body: res.body, headers: res.headers };
}

async function draftId(): Promise<string> {
  const res = await call(OFFICER, "POST", "/villages/hongmiao/subsidy/statements", { programmeId: "grain-power", seasonId: "2026-june" });
  expect(res.status).toBe(201);
  return (res.json() as { statementId: string }).statementId;
}

async function published(): Promise<string> {
  const id = await draftId();
  await call(OFFICER, "POST", `/subsidy/statements/${id}/lines/2`, { refundFen: 2_642, reason: "accepted" });
  await call(OFFICER, "POST", `/subsidy/statements/${id}/lines/3`, { refundFen: 0, reason: "tamper" });
  await call(OFFICER, "POST", `/subsidy/statements/${id}/review`);
  await call(APPROVER_A, "POST", `/subsidy/statements/${id}/approve`);
  await call(APPROVER_B, "POST", `/subsidy/statements/${id}/approve`);
  expect((await call(OFFICER, "POST", `/subsidy/statements/${id}/publish`)).json()).toMatchObject({ status: "published" });
  return id;
}

describe("subsidy routes", () => {
  it("drafts a statement for an officer of the village, with the total of the payable lines", async () => {
    const res = await call(OFFICER, "POST", "/villages/hongmiao/subsidy/statements", { programmeId: "grain-power", seasonId: "2026-june" });
    expect(res.json()).toMatchObject({ status: "draft", totalFen: 2_113, policyVersion: 1 });
  });

  it("refuses an officer of another village, a farmer, and an anonymous caller", async () => {
    const body = { programmeId: "grain-power", seasonId: "2026-june" };
    expect((await call(OTHER_OFFICER, "POST", "/villages/hongmiao/subsidy/statements", body)).status).toBe(403);
    expect((await call(FARMER_CHEN, "POST", "/villages/hongmiao/subsidy/statements", body)).status).toBe(403);
    expect((await call(undefined, "POST", "/villages/hongmiao/subsidy/statements", body)).status).toBe(401);
    const id = await draftId();
    expect((await call(OTHER_OFFICER, "GET", `/subsidy/statements/${id}`)).status).toBe(403);
  });

  it("answers bad input with a 400 problem naming the field", async () => {
    const res = await call(OFFICER, "POST", "/villages/hongmiao/subsidy/statements", { programmeId: "grain-power", seasonId: "2026-june", fromDay: "June" });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ code: "API_INVALID_INPUT", errors: [{ path: "body.fromDay" }] });
  });

  it("lets only an approver approve, and not the same one twice (409)", async () => {
    const id = await draftId();
    await call(OFFICER, "POST", `/subsidy/statements/${id}/lines/2`, { refundFen: 2_642, reason: "accepted" });
    await call(OFFICER, "POST", `/subsidy/statements/${id}/lines/3`, { refundFen: 0, reason: "tamper" });
    await call(OFFICER, "POST", `/subsidy/statements/${id}/review`);
    expect((await call(OFFICER, "POST", `/subsidy/statements/${id}/approve`)).status).toBe(403);
    expect((await call(APPROVER_A, "POST", `/subsidy/statements/${id}/approve`)).status).toBe(200);
    const again = await call(APPROVER_A, "POST", `/subsidy/statements/${id}/approve`);
    expect([again.status, again.json().code]).toEqual([409, "SUBSIDY_SAME_APPROVER"]);
  });

  it("refuses to edit a published statement with a 409", async () => {
    const id = await published();
    const res = await call(OFFICER, "POST", `/subsidy/statements/${id}/lines/1`, { refundFen: 1, reason: "typo" });
    expect([res.status, res.json().code]).toEqual([409, "SUBSIDY_STATEMENT_IMMUTABLE"]);
  });

  it("serves the public notice as CSV and as a printable page, names masked", async () => {
    const id = await published();
    const csv = await call(FARMER_CHEN, "GET", `/subsidy/statements/${id}/notice.csv`);
    expect([csv.status, String(csv.headers["content-type"])]).toEqual([200, "text/csv; charset=utf-8"]);
    expect(csv.body).toContain("陈*伯,2.000,80.000,80.000,21.13\r\n");
    expect(csv.body).not.toContain("陈德伯");
    const html = await call(OFFICER, "GET", `/subsidy/statements/${id}/notice.html`);
    expect(html.body).toContain("<td>李*</td>");
  });

  it("shows a farmer only their own household's lines, and only once published", async () => {
    const id = await draftId();
    expect((await call(FARMER_CHEN, "GET", "/households/hh-chen/subsidy")).json()).toEqual([]);
    expect((await call(FARMER_CHEN, "GET", `/subsidy/statements/${id}/notice.csv`)).status).toBe(403);
    expect((await call(FARMER_CHEN, "GET", "/households/hh-li/subsidy")).status).toBe(403);
    expect((await call(FARMER_CHEN, "GET", `/subsidy/statements/${id}`)).status).toBe(403);
  });

  it("pays after the notice and shows the household what it paid and got back", async () => {
    const id = await published();
    const objection = await call(FARMER_CHEN, "POST", `/subsidy/statements/${id}/objections`, { text: "面积应为2.1亩" });
    expect(objection.status).toBe(201);
    expect((await call(FARMER_CHEN, "POST", `/subsidy/statements/${id}/objections`, { text: "x", householdId: "hh-li" })).status).toBe(403);
    expect((await call(OFFICER, "POST", `/subsidy/statements/${id}/pay`)).json().code).toBe("SUBSIDY_NOTICE_RUNNING");
    village.clock.nowMs += 7 * DAY_MS;
    expect((await call(OFFICER, "POST", `/subsidy/statements/${id}/pay`)).json()).toMatchObject({ posted: 2, statement: { status: "paid" } });
    const mine = (await call(FARMER_CHEN, "GET", "/households/hh-chen/subsidy")).json();
    expect(mine).toMatchObject([{ refundFen: 2_113, paidFen: 2_113, line: { chargedFen: 4_226, energyWh: 80_000, meters: [{ meterId: "m-chen" }] } }]);
  });

  it("reports the village's spend, refunds, flags and saving", async () => {
    const id = await published();
    expect((await call(APPROVER_A, "GET", `/subsidy/statements/${id}/report`)).json()).toEqual({
      statementId: id, lines: 3, flaggedLines: 2, households: 3, farmSpendFen: 11_094, refundFen: 4_755, villageSavesFen: 6_339, flags: { "above-cap": 1, tamper: 1 },
    });
  });

  it("adds a policy version and refuses an older one", async () => {
    const policy = village.store.policies("hongmiao", "grain-power")[0]?.policy;
    expect((await call(OFFICER, "POST", "/villages/hongmiao/subsidy/policies", { programmeId: "grain-power", version: 2, policy })).status).toBe(201);
    const old = await call(OFFICER, "POST", "/villages/hongmiao/subsidy/policies", { programmeId: "grain-power", version: 2, policy });
    expect([old.status, old.json().code]).toEqual([409, "SUBSIDY_POLICY_EXISTS"]);
    expect((await call(APPROVER_A, "GET", "/villages/hongmiao/subsidy/policies/grain-power")).json()).toMatchObject([{ version: 1 }, { version: 2 }]);
  });
});
