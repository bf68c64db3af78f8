// The prepaid routes (issue #4): an officer's cash top-ups, refunds and corrections (household-money.ts: new
// postings, idempotent, audited first, re-granting the meters at once), and what a household may read about its
// own money — balance with its low-credit stage (请购电) under the village policy, the statement of account for a
// date range, and its meters with their last credit grant and its acknowledgement.
//
// Who: top-ups / refunds / corrections — a village officer of the household's village (or an admin). Reads — the
// household's own farmer, an officer or approver of its village, or an admin.

import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { lowCreditStage } from "../../ledger/grants.js";
import type { Ledger } from "../../ledger/store/ledger.js";
import { householdAccountId, openHouseholdAccount } from "../../prepaid/accounts.js";
import type { PaymentsStore } from "../../payments/orders-store.js";
import type { Registry } from "../../registry/registry.js";
import type { TelemetryStore } from "../../telemetry/sink.js";
import { addRoute } from "../route.js";
import type { AuditSink } from "./audit-sink.js";
import { asProblem } from "./domain-errors.js";
import { createHouseholdMoney, type MoneyRequest } from "./household-money.js";
import { amountFenSchema, epochMsQuerySchema, householdParamsSchema, idempotencyKeySchema, reasonSchema, receiptIdSchema, signedAmountFenSchema } from "./schemas.js";
import { requireHousehold, requireHouseholdForOfficer } from "./scope.js";
import { statementOfAccount, type EnergySeriesOptions } from "./statement-of-account.js";

export interface PrepaidRouteDeps {
  readonly registry: Registry;
  readonly ledger: Ledger;
  readonly audit: AuditSink;
  /** The prepaid service (service.ts): re-grants a household's meters after its balance moved. */
  readonly prepaid: { regrantHousehold(householdId: string, why: string): Promise<void> };
  /** Where money requests remember their idempotency keys (the payments store, cloud.db). */
  readonly requests: Pick<PaymentsStore, "claimMoneyRequest" | "finishMoneyRequest" | "releaseMoneyRequest">;
  /** For kWh per day in statements; without it the charge postings are used. */
  readonly telemetry?: Pick<TelemetryStore, "query">;
  readonly energySeries?: EnergySeriesOptions;
  readonly now: () => number;
}

/** A statement covers at most this much (≈ a quarter): every charge line of it is in the answer. */
export const MAX_STATEMENT_RANGE_MS = 93 * 86_400_000;
const MONEY_BODY_LIMIT_BYTES = 4096;

const moneyResultSchema = z.object({ householdId: z.string(), postingId: z.int(), duplicate: z.boolean(), balanceFen: z.int() });

const topUpBody = z.strictObject({ amountFen: amountFenSchema, receiptId: receiptIdSchema, idempotencyKey: idempotencyKeySchema, reason: reasonSchema.optional() });
const refundBody = z.strictObject({ amountFen: amountFenSchema, receiptId: receiptIdSchema, idempotencyKey: idempotencyKeySchema, reason: reasonSchema });
const correctionBody = z.strictObject({ amountFen: signedAmountFenSchema, idempotencyKey: idempotencyKeySchema, reason: reasonSchema });

const balanceSchema = z.object({
  householdId: z.string(),
  balanceFen: z.int(),
  overdraftFen: z.int(),
  /** Balance plus overdraft: what the meters may still draw on. */
  spendableFen: z.int(),
  maxBalanceFen: z.int(),
  lowCredit: z.object({ stage: z.union([z.literal(0), z.literal(1), z.literal(2)]), stage1Fen: z.int(), stage2Fen: z.int() }),
  /** When power is never cut (Asia/Shanghai clock times; days 0 = Sunday), per the village policy. */
  friendlyPeriods: z.array(z.object({ from: z.string(), to: z.string(), days: z.array(z.int()).optional() })),
});

const statementQuery = z
  .strictObject({ fromMs: epochMsQuerySchema, toMs: epochMsQuerySchema })
  .refine((q) => q.fromMs < q.toMs, { path: ["toMs"], message: "toMs must be after fromMs" })
  .refine((q) => q.toMs - q.fromMs <= MAX_STATEMENT_RANGE_MS, { path: ["toMs"], message: "a statement covers at most 93 days" });

const kindSchema = z.enum(["top-up", "charge", "refund", "correction", "subsidy"]);
const statementSchema = z.object({
  householdId: z.string(),
  villageId: z.string(),
  fromMs: z.int(),
  toMs: z.int(),
  openingBalanceFen: z.int(),
  closingBalanceFen: z.int(),
  totals: z.record(kindSchema, z.int()),
  lines: z.array(z.object({ postingId: z.int(), kind: kindSchema, atMs: z.int(), amountFen: z.int(), balanceAfterFen: z.int(), memo: z.string(), actor: z.string() })),
  energy: z.array(z.object({ meterId: z.string(), source: z.enum(["telemetry", "charges", "none"]), days: z.array(z.object({ day: z.string(), energyWh: z.int() })) })),
});

const metersSchema = z.array(
  z.object({
    meterId: z.string(),
    gatewayId: z.string(),
    tariffId: z.string(),
    reconnect: z.enum(["automatic", "manual"]),
    plotId: z.string().optional(),
    lastChargedRegisterWh: z.int().optional(),
    lastChargedAtMs: z.int().optional(),
    lastGrant: z
      .object({ grantSeq: z.int(), limitWh: z.int(), registerWh: z.int(), issuedAtMs: z.int(), expiresAtMs: z.int(), ackStatus: z.string().optional(), ackReason: z.string().optional() })
      .optional(),
  }),
);

// Not `async`: it registers synchronously; the Promise is the fastify plugin shape (app.register or a direct await).
export function prepaidRoutes(app: FastifyInstance, deps: PrepaidRouteDeps): Promise<void> {
  const { registry, ledger } = deps;
  const money = createHouseholdMoney({ ledger, registry, requests: deps.requests, audit: deps.audit, prepaid: deps.prepaid, now: deps.now });

  const moneyRoute = <B extends typeof topUpBody | typeof refundBody | typeof correctionBody>(
    path: string,
    summary: string,
    body: B,
    toRequest: (b: z.output<B>) => MoneyRequest,
  ): void =>
    addRoute(app, {
      method: "POST",
      url: `/households/:householdId/${path}`,
      summary,
      tags: ["prepaid"],
      access: ["village-officer"],
      params: householdParamsSchema,
      body,
      response: moneyResultSchema,
      status: 201,
      bodyLimitBytes: MONEY_BODY_LIMIT_BYTES,
      handler: ({ principal, params, body: b }) =>
        asProblem(async () => {
          const household = await requireHouseholdForOfficer(registry, principal, params.householdId);
          const result = await money.apply(household, b.idempotencyKey, toRequest(b as z.output<B>), principal.userId);
          return { householdId: household.householdId, ...result };
        }),
    });

  moneyRoute("top-ups", "Record a cash top-up taken at the village office (idempotent on idempotencyKey; capped by the village policy)", topUpBody, (b) => ({
    kind: "top-up",
    amountFen: b.amountFen,
    receiptId: b.receiptId,
    reason: b.reason ?? `cash top-up, receipt ${b.receiptId}`,
  }));
  moneyRoute("refunds", "Pay credit back in cash: a new refund posting (at most the balance)", refundBody, (b) => ({ kind: "refund", amountFen: b.amountFen, receiptId: b.receiptId, reason: b.reason }));
  moneyRoute("corrections", "Correct a household's balance by a signed amount: a new correction posting, never an edit", correctionBody, (b) => ({
    kind: "correction",
    amountFen: b.amountFen,
    reason: b.reason,
  }));

  addRoute(app, {
    method: "GET",
    url: "/households/:householdId/balance",
    summary: "A household's balance, overdraft, low-credit stage (请购电) and friendly periods under its village policy",
    tags: ["prepaid"],
    access: ["farmer", "village-officer", "village-approver"],
    params: householdParamsSchema,
    response: balanceSchema,
    handler: ({ principal, params }) =>
      asProblem(async () => {
        const household = await requireHousehold(registry, principal, params.householdId);
        await openHouseholdAccount(ledger, household.villageId, household.householdId);
        const balanceFen = await ledger.balance(householdAccountId(household.householdId));
        const policy = await registry.villagePolicyAt(household.villageId, deps.now());
        return {
          householdId: household.householdId,
          balanceFen,
          overdraftFen: household.overdraftFen,
          spendableFen: balanceFen + household.overdraftFen,
          maxBalanceFen: policy.maxBalanceFen,
          lowCredit: { stage: lowCreditStage(balanceFen, policy.lowCredit), ...policy.lowCredit },
          friendlyPeriods: policy.friendlyPeriods,
        };
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/households/:householdId/statement",
    summary: "Statement of account: opening and closing balance, every posting, totals, and kWh per day per meter (fromMs ≤ atMs < toMs, ≤ 93 days)",
    tags: ["prepaid"],
    access: ["farmer", "village-officer", "village-approver"],
    params: householdParamsSchema,
    query: statementQuery,
    response: statementSchema,
    handler: ({ principal, params, query }) =>
      asProblem(async () => {
        const household = await requireHousehold(registry, principal, params.householdId);
        return statementOfAccount({ ledger, registry, telemetry: deps.telemetry, energy: deps.energySeries }, household, query.fromMs, query.toMs);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/households/:householdId/meters",
    summary: "A household's meters, each with its last charged register and its last credit grant and acknowledgement",
    tags: ["prepaid"],
    access: ["farmer", "village-officer", "village-approver"],
    params: householdParamsSchema,
    response: metersSchema,
    handler: ({ principal, params }) =>
      asProblem(async () => {
        const household = await requireHousehold(registry, principal, params.householdId);
        const out = [];
        for (const m of await registry.metersOfHousehold(household.householdId)) {
          const charge = await ledger.loadChargeState(m.meterId);
          const grant = await registry.lastGrant(m.meterId);
          const plot = await registry.meterPlot(m.meterId);
          out.push({
            meterId: m.meterId,
            gatewayId: m.gatewayId,
            tariffId: m.tariffId,
            reconnect: m.reconnect,
            ...(plot?.plotId === undefined ? {} : { plotId: plot.plotId }),
            ...(charge === undefined ? {} : { lastChargedRegisterWh: charge.state.lastRegisterWh, lastChargedAtMs: charge.state.lastAtMs }),
            ...(grant === undefined
              ? {}
              : {
                  lastGrant: {
                    grantSeq: grant.grantSeq,
                    limitWh: grant.limitWh,
                    registerWh: grant.registerWh,
                    issuedAtMs: grant.issuedAtMs,
                    expiresAtMs: grant.expiresAtMs,
                    ...(grant.ackStatus === undefined ? {} : { ackStatus: grant.ackStatus }),
                    ...(grant.ackReason === undefined ? {} : { ackReason: grant.ackReason }),
                  },
                }),
          });
        }
        return out;
      }),
  });
  return Promise.resolve();
}
