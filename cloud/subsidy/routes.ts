// The subsidy's HTTP routes (issue #5), a fastify plugin: programme policies, statements and their workflow, the
// public notice as CSV and printable HTML, the village's report, and a household's own subsidy lines.
//
// Who: policies, drafting, line decisions, review, publishing, paying and closing — the village's officers; approving
// (and returning for rework) — its approvers (村两委); reading statements and reports — both. A farmer sees only
// their own household's lines, only once a statement is published, may read their village's published notice, and
// may object to it for their own household. Admins may do everything. Scope checks happen here, against the row.

import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { coversVillage, hasAnyRole, isAdmin, type Principal } from "../auth/principal.js";
import { addRoute } from "../api/route.js";
import { forbidden, HttpProblem, notFound } from "../api/problem.js";
import { AgriError } from "../../protocols/errors.js";
import { SubsidyError } from "./errors.js";
import { noticeCsv, noticeHtml, noticeRows, villageReport, type Notice } from "./notice.js";
import { subsidyPolicyBodySchema } from "./policy.js";
import type { SubsidyService } from "./service.js";
import type { StatementRecord } from "./store.js";
import type { VillageLand } from "./village-land.js";
import { localDayOf } from "./local-day.js";

export interface SubsidyRouteDeps {
  readonly service: SubsidyService;
  readonly land: VillageLand;
}

const idSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
const daySchema = z.string().regex(/^\d{4}-\d{2}-\d{2}$/);
const reasonSchema = z.string().trim().min(1).max(2000);
const villageParams = z.strictObject({ villageId: idSchema });
const statementParams = z.strictObject({ statementId: idSchema });
const lineParams = z.strictObject({ statementId: idSchema, lineNo: z.coerce.number().int().min(1) });
const householdParams = z.strictObject({ householdId: idSchema });
const PUBLISHED = ["published", "paid", "closed"];

const statementSummary = z.object({
  statementId: z.string(),
  villageId: z.string(),
  programmeId: z.string(),
  policyVersion: z.int(),
  seasonId: z.string(),
  fromDay: z.string(),
  toDay: z.string(),
  status: z.string(),
  approvedBy: z.array(z.string()),
  correctsStatementId: z.string().optional(),
  totalFen: z.int(),
  createdBy: z.string(),
  createdAtMs: z.int(),
  publishedAtMs: z.int().optional(),
  noticeUntilMs: z.int().optional(),
});
const lineSchema = z.looseObject({ lineNo: z.int(), householdId: z.string(), plotId: z.string(), refundFen: z.int(), proposedRefundFen: z.int(), status: z.string() });
const storedLineSchema = z.object({ line: lineSchema, refundFen: z.int(), resolvedBy: z.string().optional(), resolvedReason: z.string().optional() });
const statementDetail = z.object({
  statement: statementSummary,
  lines: z.array(storedLineSchema),
  steps: z.array(z.object({ stepId: z.int(), action: z.string(), actor: z.string(), atMs: z.int(), reason: z.string(), detail: z.unknown() })),
  objections: z.array(z.object({ objectionId: z.int(), householdId: z.string().optional(), raisedBy: z.string(), atMs: z.int(), text: z.string() })),
  payments: z.array(z.object({ householdId: z.string(), plotId: z.string(), method: z.string(), amountFen: z.int(), postingId: z.int(), atMs: z.int() })),
});
const policySchema = z.object({ villageId: z.string(), programmeId: z.string(), version: z.int(), policy: z.unknown() });

function summary(s: StatementRecord): z.input<typeof statementSummary> {
  const { policy, ...rest } = s;
  return { ...rest, approvedBy: [...s.approvedBy], policyVersion: policy.version };
}

/** Runs a handler body, rethrowing a domain error as its problem (the app's handler would too; tests build no app). */
async function asProblem<T>(body: () => T | Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof SubsidyError) throw new HttpProblem(error.status, error.code, error.message);
    if (error instanceof AgriError && error.code === "REGISTRY_UNKNOWN_ENTITY") throw new HttpProblem(404, error.code, error.message);
    throw error;
  }
}

const isStaff = (p: Principal): boolean => hasAnyRole(p, ["village-officer", "village-approver"]);

export function subsidyRoutes(app: FastifyInstance, deps: SubsidyRouteDeps): Promise<void> {
  const { service, land } = deps;

  async function requireVillage(p: Principal, villageId: string): Promise<void> {
    if ((await land.villageName(villageId)) === undefined) throw notFound(`village ${villageId}`);
    if (!coversVillage(p, villageId)) throw forbidden(`village ${villageId} is outside your scope`);
  }
  /** A statement the caller may see: staff of its village; a farmer of its village once it is published. */
  async function requireStatement(p: Principal, statementId: string, staffOnly: boolean): Promise<StatementRecord> {
    const s = service.store.getStatement(statementId);
    if (s === undefined) throw notFound(`statement ${statementId}`);
    if (coversVillage(p, s.villageId) && (isStaff(p) || isAdmin(p))) return s;
    const farmerVillage = p.roles.includes("farmer") && p.householdId !== undefined ? await land.householdVillage(p.householdId) : undefined;
    if (!staffOnly && farmerVillage === s.villageId && PUBLISHED.includes(s.status)) return s;
    throw forbidden(`statement ${statementId} is outside your scope`);
  }

  addRoute(app, {
    method: "POST",
    url: "/villages/:villageId/subsidy/policies",
    summary: "Add a version of a village's subsidy programme (versions are never edited)",
    tags: ["subsidy"],
    access: ["village-officer"],
    params: villageParams,
    body: z.strictObject({ programmeId: idSchema, version: z.int().min(1), policy: subsidyPolicyBodySchema }),
    response: policySchema,
    status: 201,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        await requireVillage(principal, params.villageId);
        return await service.addPolicy({ villageId: params.villageId, ...body }, principal.userId);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/villages/:villageId/subsidy/policies/:programmeId",
    summary: "Every version of a subsidy programme",
    tags: ["subsidy"],
    access: ["village-officer", "village-approver"],
    params: z.strictObject({ villageId: idSchema, programmeId: idSchema }),
    response: z.array(policySchema),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireVillage(principal, params.villageId);
        return service.store.policies(params.villageId, params.programmeId);
      }),
  });

  addRoute(app, {
    method: "POST",
    url: "/villages/:villageId/subsidy/statements",
    summary: "Settle a season into a draft statement (or a correcting statement of a published one)",
    tags: ["subsidy"],
    access: ["village-officer"],
    params: villageParams,
    body: z.strictObject({ programmeId: idSchema, seasonId: idSchema, fromDay: daySchema.optional(), toDay: daySchema.optional(), correctsStatementId: idSchema.optional(), reason: reasonSchema.optional() }),
    response: statementSummary,
    status: 201,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        await requireVillage(principal, params.villageId);
        const { statement } = await service.draft({
          villageId: params.villageId,
          programmeId: body.programmeId,
          seasonId: body.seasonId,
          actor: principal.userId,
          ...(body.fromDay === undefined ? {} : { fromDay: body.fromDay }),
          ...(body.toDay === undefined ? {} : { toDay: body.toDay }),
          ...(body.correctsStatementId === undefined ? {} : { correctsStatementId: body.correctsStatementId }),
          ...(body.reason === undefined ? {} : { reason: body.reason }),
        });
        return summary(statement);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/villages/:villageId/subsidy/statements",
    summary: "A village's statements",
    tags: ["subsidy"],
    access: ["village-officer", "village-approver"],
    params: villageParams,
    response: z.array(statementSummary),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireVillage(principal, params.villageId);
        return service.store.statementsOf(params.villageId).map(summary);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/subsidy/statements/:statementId",
    summary: "A statement with its lines, steps, objections and payments",
    tags: ["subsidy"],
    access: ["village-officer", "village-approver"],
    params: statementParams,
    response: statementDetail,
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireStatement(principal, params.statementId, true);
        const d = service.statement(params.statementId);
        return { ...d, statement: summary(d.statement), lines: d.lines.map((l) => ({ ...l, line: { ...l.line } })) };
      }),
  });

  addRoute(app, {
    method: "POST",
    url: "/subsidy/statements/:statementId/lines/:lineNo",
    summary: "Accept or adjust one line's refund, with a reason (draft only)",
    tags: ["subsidy"],
    access: ["village-officer"],
    params: lineParams,
    body: z.strictObject({ refundFen: z.int().min(0), reason: reasonSchema }),
    response: statementSummary,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        await requireStatement(principal, params.statementId, true);
        return summary(await service.adjustLine(params.statementId, params.lineNo, body.refundFen, body.reason, principal.userId));
      }),
  });

  const stepRoute = (path: string, summaryText: string, access: readonly ("village-officer" | "village-approver")[], run: (statementId: string, p: Principal, reason: string | undefined) => StatementRecord | Promise<StatementRecord>): void =>
    addRoute(app, {
      method: "POST",
      url: `/subsidy/statements/:statementId/${path}`,
      summary: summaryText,
      tags: ["subsidy"],
      access,
      params: statementParams,
      body: z.strictObject({ reason: reasonSchema.optional() }).optional(),
      response: statementSummary,
      handler: ({ principal, params, body }) =>
        asProblem(async () => {
          await requireStatement(principal, params.statementId, true);
          return summary(await run(params.statementId, principal, body?.reason));
        }),
    });
  stepRoute("review", "Mark a draft reviewed (every flagged line decided)", ["village-officer"], (id, p, r) => service.review(id, p.userId, r));
  stepRoute("approve", "Approve a reviewed statement (two different approvers)", ["village-approver"], (id, p, r) => service.approve(id, p.userId, r));
  stepRoute("return", "Send a reviewed or approved statement back to draft, with a reason", ["village-approver", "village-officer"], (id, p, r) => service.returnToDraft(id, p.userId, r ?? ""));
  stepRoute("publish", "Publish an approved statement: the public notice begins", ["village-officer"], (id, p) => service.publish(id, p.userId));
  stepRoute("close", "Close a paid statement", ["village-officer"], (id, p, r) => service.close(id, p.userId, r));

  addRoute(app, {
    method: "POST",
    url: "/subsidy/statements/:statementId/pay",
    summary: "Pay a published statement after its notice: refunds into prepaid accounts, or recorded cash payouts",
    tags: ["subsidy"],
    access: ["village-officer"],
    params: statementParams,
    body: z.strictObject({ cashHouseholdIds: z.array(idSchema).max(10_000).optional() }).optional(),
    response: z.object({ statement: statementSummary, posted: z.int(), duplicates: z.int(), payments: statementDetail.shape.payments }),
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        await requireStatement(principal, params.statementId, true);
        const result = await service.pay(params.statementId, { actor: principal.userId, ...(body?.cashHouseholdIds === undefined ? {} : { cashHouseholdIds: body.cashHouseholdIds }) });
        return { ...result, statement: summary(result.statement) };
      }),
  });

  addRoute(app, {
    method: "POST",
    url: "/subsidy/statements/:statementId/objections",
    summary: "Object to a published statement (a farmer for their own household)",
    tags: ["subsidy"],
    access: ["farmer", "village-officer", "village-approver"],
    params: statementParams,
    body: z.strictObject({ text: reasonSchema, householdId: idSchema.optional() }),
    response: z.object({ objectionId: z.int() }),
    status: 201,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        const s = await requireStatement(principal, params.statementId, false);
        const staff = coversVillage(principal, s.villageId) && (isStaff(principal) || isAdmin(principal));
        const householdId = staff ? body.householdId : principal.householdId;
        if (!staff && body.householdId !== undefined && body.householdId !== principal.householdId) throw forbidden("a farmer objects for their own household");
        return { objectionId: await service.object(params.statementId, householdId, body.text, principal.userId) };
      }),
  });

  async function notice(s: StatementRecord): Promise<Notice> {
    const season = s.policy.policy.seasons.find((x) => x.seasonId === s.seasonId);
    const names = new Map((await land.households(s.villageId)).map((h) => [h.householdId, h.name]));
    const lines = service.store.lines(s.statementId);
    return {
      villageName: (await land.villageName(s.villageId)) ?? s.villageId,
      statementId: s.statementId,
      seasonName: season?.name ?? s.seasonId,
      fromDay: s.fromDay,
      toDay: s.toDay,
      policyName: s.policy.policy.name,
      policyVersion: s.policy.version,
      ...(s.correctsStatementId === undefined ? {} : { correctsStatementId: s.correctsStatementId }),
      ...(s.publishedAtMs === undefined ? {} : { publishedAt: localDayOf(s.publishedAtMs) }),
      ...(s.noticeUntilMs === undefined ? {} : { noticeUntil: localDayOf(s.noticeUntilMs) }),
      rows: noticeRows(lines, (h) => names.get(h)),
      totalFen: s.totalFen,
    };
  }

  for (const [ext, type, render] of [
    ["csv", "text/csv", noticeCsv],
    ["html", "text/html", noticeHtml],
  ] as const) {
    addRoute(app, {
      method: "GET",
      url: `/subsidy/statements/:statementId/notice.${ext}`,
      summary: `The public notice (公示) as ${ext === "csv" ? "CSV" : "a printable page"}, names masked`,
      tags: ["subsidy"],
      access: ["farmer", "village-officer", "village-approver"],
      params: statementParams,
      response: z.string(),
      produces: type,
      handler: ({ principal, params, reply }) =>
        asProblem(async () => {
          const s = await requireStatement(principal, params.statementId, false);
          const headers: Record<string, string> = { "content-type": `${type}; charset=utf-8` };
          if (ext === "csv") headers["content-disposition"] = `attachment; filename="notice-${s.statementId}.csv"`;
          else headers["content-security-policy"] = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";
          return reply.code(200).headers(headers).send(render(await notice(s)));
        }),
    });
  }

  addRoute(app, {
    method: "GET",
    url: "/subsidy/statements/:statementId/report",
    summary: "The village's report: farm electricity spend, refunds, flagged lines, and what the village saves",
    tags: ["subsidy"],
    access: ["village-officer", "village-approver"],
    params: statementParams,
    response: z.object({ statementId: z.string(), lines: z.int(), flaggedLines: z.int(), households: z.int(), farmSpendFen: z.int(), refundFen: z.int(), villageSavesFen: z.int(), flags: z.record(z.string(), z.int()) }),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireStatement(principal, params.statementId, true);
        return villageReport(params.statementId, service.store.lines(params.statementId));
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/households/:householdId/subsidy",
    summary: "A household's own subsidy lines: what was paid for the energy, what was refunded and why",
    tags: ["subsidy"],
    access: ["farmer", "village-officer", "village-approver"],
    params: householdParams,
    response: z.array(z.object({ statement: statementSummary, line: lineSchema, refundFen: z.int(), resolvedReason: z.string().optional(), paidFen: z.int() })),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        const villageId = await land.householdVillage(params.householdId);
        if (villageId === undefined) throw notFound(`household ${params.householdId}`);
        const staff = coversVillage(principal, villageId) && (isStaff(principal) || isAdmin(principal));
        const own = principal.roles.includes("farmer") && principal.householdId === params.householdId;
        if (!staff && !own) throw forbidden(`household ${params.householdId} is outside your scope`);
        return service.store.linesOfHousehold(params.householdId).flatMap(({ statementId, stored }) => {
          const s = service.store.requireStatement(statementId);
          if (!staff && !PUBLISHED.includes(s.status)) return [];
          const paidFen = service.store.payments(statementId).filter((p) => p.householdId === params.householdId && p.plotId === stored.line.plotId).reduce((sum, p) => sum + p.amountFen, 0);
          return [{ statement: summary(s), line: { ...stored.line }, refundFen: stored.refundFen, ...(stored.resolvedReason === undefined ? {} : { resolvedReason: stored.resolvedReason }), paidFen }];
        });
      }),
  });

  return Promise.resolve();
}
