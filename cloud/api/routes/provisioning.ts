// Provisioning over HTTP (issue #4): villages, village policies (new versions only), households, gateways (a
// generated secret shown ONCE, only its scrypt hash stored; enable/disable; rotate), meters (bound to a plot), plots
// with their crop history, and tariffs (new versions only: a published version is never edited). Every change is
// written to the audit log — who, when, what, why — and a `reason` is required where money, tariffs or meters change.
// Lists and gets are limited to the caller's villages (an admin sees all; a farmer their own household's rows).
//
// Who may change what (an admin always may):
//   villages, village policies, tariffs, creating a gateway, rotating its secret ...... admin only
//   households, meters (and their plot binding), plots and crop changes ............. officers of the village
//   enabling / disabling a gateway ..................................................... officers of its village
// Reads: officers and approvers of the village; a farmer their own household, its meters and plots; tariffs anyone
// signed in (prices are public in a village).

import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { coversVillage, isAdmin, type Principal } from "../../auth/principal.js";
import { hashSecret } from "../../broker/secrets.js";
import type { Ledger } from "../../ledger/store/ledger.js";
import { tariffIdSchema, tariffPricesSchema } from "../../ledger/tariff.js";
import { openHouseholdAccount } from "../../prepaid/accounts.js";
import { villagePolicyBodySchema } from "../../prepaid/village-policy.js";
import { cropSchema } from "../../registry/land.js";
import { meterInputSchema, relayBindingSchema, type Registry } from "../../registry/registry.js";
import { gatewayIdSchema } from "../../../protocols/mqtt/messages.js";
import { conflict, forbidden, HttpProblem, notFound } from "../problem.js";
import { addRoute } from "../route.js";
import type { AuditSink } from "./audit-sink.js";
import { asProblem } from "./domain-errors.js";
import { entityIdSchema, epochMsQuerySchema, householdParamsSchema, meterParamsSchema, reasonSchema, villageParamsSchema } from "./schemas.js";
import { requireHousehold, requireHouseholdForOfficer, requireMeter, requireVillage } from "./scope.js";

export interface ProvisioningRouteDeps {
  readonly registry: Registry;
  readonly ledger: Ledger;
  readonly audit: AuditSink;
  readonly now: () => number;
  /** Re-grants after a tariff version is published (a higher price must re-size the grants it affects). */
  readonly prepaid?: { regrantHousehold(householdId: string, why: string): Promise<void> };
  /** Called after a gateway is added, enabled, disabled or re-keyed, so the broker's cached snapshot follows at once. */
  /** Resolves once the broker sees the change (a new gateway can log in, a disabled one cannot). */
  readonly onGatewaysChanged?: () => Promise<void>;
  /** A new gateway secret; default 32 random bytes, base64url. */
  readonly newSecret?: () => string;
}

const BODY_LIMIT_BYTES = 16 * 1024;
const nameSchema = z.string().trim().min(1).max(200);

const villageSchema = z.object({ villageId: z.string(), name: z.string() });
const householdSchema = z.object({ householdId: z.string(), villageId: z.string(), name: z.string(), overdraftFen: z.int() });
const gatewaySchema = z.object({ gatewayId: z.string(), villageId: z.string().optional(), enabled: z.boolean() });
const meterSchema = z.object({
  meterId: z.string(),
  gatewayId: z.string(),
  householdId: z.string(),
  tariffId: z.string(),
  initialWh: z.int().optional(),
  reconnect: z.enum(["automatic", "manual"]),
  plotId: z.string().optional(),
  litresPerKwh: z.int().optional(),
  unitId: z.int().optional(),
  profileId: z.string().optional(),
  relay: relayBindingSchema.optional(),
});
const cropRecordSchema = z.object({ plotId: z.string(), effectiveFromMs: z.int(), crop: z.string(), recordedBy: z.string() });
const plotSchema = z.object({
  plotId: z.string(),
  householdId: z.string(),
  villageId: z.string(),
  name: z.string(),
  areaMilliMu: z.int(),
  latE6: z.int().optional(),
  lonE6: z.int().optional(),
  crops: z.array(cropRecordSchema),
});
const tariffVersionSchema = z.object({ tariffId: z.string(), version: z.int(), effectiveFrom: z.int(), prices: z.unknown() });
const policyVersionSchema = z.object({ villageId: z.string(), version: z.int(), effectiveFrom: z.int(), policy: z.unknown() });

// Not `async`: it registers synchronously; the Promise is the fastify plugin shape (app.register or a direct await).
export function provisioningRoutes(app: FastifyInstance, deps: ProvisioningRouteDeps): Promise<void> {
  const { registry, audit } = deps;
  const newSecret = deps.newSecret ?? (() => randomBytes(32).toString("base64url"));
  const changedGateways = async (): Promise<void> => {
    await deps.onGatewaysChanged?.();
  };

  const record = (principal: Principal, action: string, entityType: string, entityId: string, villageId: string | undefined, extra: { reason?: string | undefined; before?: unknown; after?: unknown }) =>
    audit.record({
      actor: principal.userId,
      action,
      entityType,
      entityId,
      ...(villageId === undefined ? {} : { villageId }),
      ...(extra.reason === undefined ? {} : { reason: extra.reason }),
      ...(extra.before === undefined ? {} : { before: extra.before }),
      ...(extra.after === undefined ? {} : { after: extra.after }),
      atMs: deps.now(),
    });

  const plotView = async (plotId: string) => {
    const plot = await registry.getPlot(plotId);
    if (plot === undefined) throw notFound(`plot ${plotId}`);
    return { ...plot, crops: await registry.cropHistory(plotId) };
  };
  const meterView = async (meterId: string) => {
    const m = await registry.getMeter(meterId);
    if (m === undefined) throw notFound(`meter ${meterId}`);
    const plot = await registry.meterPlot(meterId);
    return { ...m, ...(plot?.plotId === undefined ? {} : { plotId: plot.plotId }), ...(plot?.litresPerKwh === undefined ? {} : { litresPerKwh: plot.litresPerKwh }) };
  };
  const requireGateway = async (principal: Principal, gatewayId: string) => {
    const gateway = await registry.getGateway(gatewayId);
    if (gateway === undefined) throw notFound(`gateway ${gatewayId}`);
    if (!(gateway.villageId === undefined ? isAdmin(principal) : coversVillage(principal, gateway.villageId))) throw forbidden(`gateway ${gatewayId} is not in one of your villages`);
    return gateway;
  };
  const requirePlot = async (principal: Principal, plotId: string, forChange: boolean) => {
    const plot = await registry.getPlot(plotId);
    if (plot === undefined) throw notFound(`plot ${plotId}`);
    if (forChange) await requireHouseholdForOfficer(registry, principal, plot.householdId);
    else await requireHousehold(registry, principal, plot.householdId);
    return plot;
  };

  // ─── villages and their policies ────────────────────────────────────────────────────────────────────────────────

  addRoute(app, {
    method: "POST",
    url: "/villages",
    summary: "Add a village",
    tags: ["provisioning"],
    access: ["admin"],
    body: z.strictObject({ villageId: entityIdSchema, name: nameSchema, reason: reasonSchema.optional() }),
    response: villageSchema,
    status: 201,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, body }) =>
      asProblem(async () => {
        await registry.addVillage({ villageId: body.villageId, name: body.name });
        await record(principal, "village.create", "village", body.villageId, body.villageId, { reason: body.reason, after: { name: body.name } });
        return { villageId: body.villageId, name: body.name };
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/villages",
    summary: "The villages in the caller's scope",
    tags: ["provisioning"],
    access: ["village-officer", "village-approver"],
    response: z.array(villageSchema),
    handler: ({ principal }) => asProblem(async () => (await registry.listVillages()).filter((v) => coversVillage(principal, v.villageId))),
  });

  addRoute(app, {
    method: "GET",
    url: "/villages/:villageId",
    summary: "One village",
    tags: ["provisioning"],
    access: ["village-officer", "village-approver"],
    params: villageParamsSchema,
    response: villageSchema,
    handler: ({ principal, params }) =>
      asProblem(async () => await requireVillage(registry, principal, params.villageId)),
  });

  addRoute(app, {
    method: "POST",
    url: "/villages/:villageId/policies",
    summary: "Publish the next version of a village's prepaid policy (caps, overdraft, low-credit stages, friendly periods)",
    tags: ["provisioning"],
    access: ["admin"],
    params: villageParamsSchema,
    body: z.strictObject({ effectiveFrom: z.int().min(0), policy: villagePolicyBodySchema, reason: reasonSchema }),
    response: policyVersionSchema,
    status: 201,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        await requireVillage(registry, principal, params.villageId);
        const existing = await registry.villagePolicies(params.villageId);
        if (existing.length > 0 && body.effectiveFrom < deps.now()) {
          throw new HttpProblem(422, "API_POLICY_IN_THE_PAST", "a new policy version takes effect now or later; what was in force is never rewritten");
        }
        const before = await registry.villagePolicyAt(params.villageId, deps.now());
        const published = await registry.addVillagePolicy({ villageId: params.villageId, version: existing.length + 1, effectiveFrom: body.effectiveFrom, policy: body.policy });
        await record(principal, "village-policy.publish", "village-policy", `${params.villageId}@v${published.version}`, params.villageId, { reason: body.reason, before, after: published });
        return published;
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/villages/:villageId/policies",
    summary: "Every version of a village's prepaid policy",
    tags: ["provisioning"],
    access: ["village-officer", "village-approver"],
    params: villageParamsSchema,
    response: z.array(policyVersionSchema),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireVillage(registry, principal, params.villageId);
        return await registry.villagePolicies(params.villageId);
      }),
  });

  // ─── households ────────────────────────────────────────────────────────────────────────────────────────────────

  addRoute(app, {
    method: "POST",
    url: "/villages/:villageId/households",
    summary: "Add a household (its overdraft at most the village policy's maxOverdraftFen; a reason when it has one)",
    tags: ["provisioning"],
    access: ["village-officer"],
    params: villageParamsSchema,
    body: z
      .strictObject({ householdId: entityIdSchema, name: nameSchema, overdraftFen: z.int().min(0).max(1_000_000).default(0), reason: reasonSchema.optional() })
      .refine((b) => b.overdraftFen === 0 || b.reason !== undefined, { path: ["reason"], message: "an overdraft is credit given: say why" }),
    response: householdSchema,
    status: 201,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        await requireVillage(registry, principal, params.villageId);
        const policy = await registry.villagePolicyAt(params.villageId, deps.now());
        if (body.overdraftFen > policy.maxOverdraftFen) {
          throw new HttpProblem(422, "API_OVERDRAFT_OVER_POLICY", `village ${params.villageId} allows an overdraft of at most ${policy.maxOverdraftFen} fen`);
        }
        const household = await registry.addHousehold({ householdId: body.householdId, villageId: params.villageId, name: body.name, overdraftFen: body.overdraftFen });
        await openHouseholdAccount(deps.ledger, household.villageId, household.householdId);
        await record(principal, "household.create", "household", household.householdId, household.villageId, { reason: body.reason, after: household });
        return household;
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/villages/:villageId/households",
    summary: "The households of a village",
    tags: ["provisioning"],
    access: ["village-officer", "village-approver"],
    params: villageParamsSchema,
    response: z.array(householdSchema),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireVillage(registry, principal, params.villageId);
        return await registry.householdsOfVillage(params.villageId);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/households/:householdId",
    summary: "One household (a farmer: their own)",
    tags: ["provisioning"],
    access: ["farmer", "village-officer", "village-approver"],
    params: householdParamsSchema,
    response: householdSchema,
    handler: ({ principal, params }) => asProblem(async () => await requireHousehold(registry, principal, params.householdId)),
  });

  // ─── gateways ──────────────────────────────────────────────────────────────────────────────────────────────────

  addRoute(app, {
    method: "POST",
    url: "/villages/:villageId/gateways",
    summary: "Add a gateway; the answer carries its MQTT secret, shown this once (only its scrypt hash is stored)",
    tags: ["provisioning"],
    access: ["admin"],
    params: villageParamsSchema,
    body: z.strictObject({ gatewayId: gatewayIdSchema, enabled: z.boolean().default(true), reason: reasonSchema.optional() }),
    response: gatewaySchema.extend({ secret: z.string() }),
    status: 201,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        await requireVillage(registry, principal, params.villageId);
        if (await registry.getGateway(body.gatewayId) !== undefined) throw conflict(`gateway ${body.gatewayId} already exists`, "REGISTRY_ALREADY_EXISTS");
        const secret = newSecret();
        await registry.addGateway({ gatewayId: body.gatewayId, villageId: params.villageId, secretHash: await hashSecret(secret), enabled: body.enabled });
        await changedGateways();
        await record(principal, "gateway.create", "gateway", body.gatewayId, params.villageId, { reason: body.reason, after: { enabled: body.enabled } });
        return { gatewayId: body.gatewayId, villageId: params.villageId, enabled: body.enabled, secret };
      }),
  });

  addRoute(app, {
    method: "PATCH",
    url: "/gateways/:gatewayId",
    summary: "Enable or disable a gateway (a disabled gateway cannot log in to the broker)",
    tags: ["provisioning"],
    access: ["village-officer"],
    params: z.strictObject({ gatewayId: gatewayIdSchema }),
    body: z.strictObject({ enabled: z.boolean(), reason: reasonSchema }),
    response: gatewaySchema,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        const before = await requireGateway(principal, params.gatewayId);
        await registry.setGatewayEnabled(params.gatewayId, body.enabled);
        await changedGateways();
        await record(principal, body.enabled ? "gateway.enable" : "gateway.disable", "gateway", params.gatewayId, before.villageId, { reason: body.reason, before: { enabled: before.enabled }, after: { enabled: body.enabled } });
        return await requireGateway(principal, params.gatewayId);
      }),
  });

  addRoute(app, {
    method: "POST",
    url: "/gateways/:gatewayId/secret",
    summary: "Rotate a gateway's secret; the new one is shown this once, the old one stops working",
    tags: ["provisioning"],
    access: ["admin"],
    params: z.strictObject({ gatewayId: gatewayIdSchema }),
    body: z.strictObject({ reason: reasonSchema }),
    response: gatewaySchema.extend({ secret: z.string() }),
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        const gateway = await requireGateway(principal, params.gatewayId);
        const secret = newSecret();
        await registry.setGatewaySecret(params.gatewayId, await hashSecret(secret));
        await changedGateways();
        await record(principal, "gateway.rotate-secret", "gateway", params.gatewayId, gateway.villageId, { reason: body.reason });
        return { ...gateway, secret };
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/villages/:villageId/gateways",
    summary: "The gateways of a village (never their secrets)",
    tags: ["provisioning"],
    access: ["village-officer", "village-approver"],
    params: villageParamsSchema,
    response: z.array(gatewaySchema),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireVillage(registry, principal, params.villageId);
        return await registry.gatewaysOfVillage(params.villageId);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/gateways/:gatewayId",
    summary: "One gateway (never its secret)",
    tags: ["provisioning"],
    access: ["village-officer", "village-approver"],
    params: z.strictObject({ gatewayId: gatewayIdSchema }),
    response: gatewaySchema,
    handler: ({ principal, params }) => asProblem(async () => await requireGateway(principal, params.gatewayId)),
  });

  // ─── meters ────────────────────────────────────────────────────────────────────────────────────────────────────

  addRoute(app, {
    method: "POST",
    url: "/households/:householdId/meters",
    summary: "Add a household's meter on a gateway of its village, optionally bound to the plot its pump irrigates",
    tags: ["provisioning"],
    access: ["village-officer"],
    params: householdParamsSchema,
    body: z.strictObject({
      meterId: entityIdSchema,
      gatewayId: gatewayIdSchema,
      tariffId: tariffIdSchema,
      initialWh: z.int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
      reconnect: z.enum(["automatic", "manual"]).default("automatic"),
      plotId: entityIdSchema.optional(),
      litresPerKwh: z.int().min(1).max(10_000_000).optional(),
      unitId: meterInputSchema.shape.unitId,
      profileId: meterInputSchema.shape.profileId,
      relay: relayBindingSchema.optional(),
      reason: reasonSchema,
    }),
    response: meterSchema,
    status: 201,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        const household = await requireHouseholdForOfficer(registry, principal, params.householdId);
        const gateway = await registry.getGateway(body.gatewayId);
        if (gateway === undefined) throw notFound(`gateway ${body.gatewayId}`);
        if (gateway.villageId !== household.villageId) throw new HttpProblem(422, "API_GATEWAY_OTHER_VILLAGE", `gateway ${body.gatewayId} is not in village ${household.villageId}`);
        if (body.plotId !== undefined) {
          const plot = await registry.getPlot(body.plotId);
          if (plot === undefined) throw notFound(`plot ${body.plotId}`);
          if (plot.householdId !== household.householdId) throw new HttpProblem(422, "API_PLOT_OTHER_HOUSEHOLD", `plot ${body.plotId} is not household ${household.householdId}'s`);
        }
        await registry.addMeter({
          meterId: body.meterId,
          gatewayId: body.gatewayId,
          householdId: household.householdId,
          tariffId: body.tariffId,
          reconnect: body.reconnect,
          ...(body.initialWh === undefined ? {} : { initialWh: body.initialWh }),
          ...(body.unitId === undefined ? {} : { unitId: body.unitId }),
          ...(body.profileId === undefined ? {} : { profileId: body.profileId }),
          ...(body.relay === undefined ? {} : { relay: body.relay }),
        });
        if (body.plotId !== undefined) await registry.bindMeterToPlot(body.meterId, body.plotId, body.litresPerKwh);
        const after = await meterView(body.meterId);
        await record(principal, "meter.create", "meter", body.meterId, household.villageId, { reason: body.reason, after });
        return after;
      }),
  });

  addRoute(app, {
    method: "PUT",
    url: "/meters/:meterId/plot",
    summary: "Bind a meter to the plot its pump irrigates (a plot of the same household)",
    tags: ["provisioning"],
    access: ["village-officer"],
    params: meterParamsSchema,
    body: z.strictObject({ plotId: entityIdSchema, litresPerKwh: z.int().min(1).max(10_000_000).optional(), reason: reasonSchema }),
    response: meterSchema,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        const { household } = await requireMeter(registry, principal, params.meterId);
        await requireHouseholdForOfficer(registry, principal, household.householdId);
        const before = await meterView(params.meterId);
        await registry.bindMeterToPlot(params.meterId, body.plotId, body.litresPerKwh);
        const after = await meterView(params.meterId);
        await record(principal, "meter.bind-plot", "meter", params.meterId, household.villageId, { reason: body.reason, before, after });
        return after;
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/meters/:meterId",
    summary: "One meter (a farmer: their own household's)",
    tags: ["provisioning"],
    access: ["farmer", "village-officer", "village-approver"],
    params: meterParamsSchema,
    response: meterSchema,
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireMeter(registry, principal, params.meterId);
        return await meterView(params.meterId);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/villages/:villageId/meters",
    summary: "The meters of a village",
    tags: ["provisioning"],
    access: ["village-officer", "village-approver"],
    params: villageParamsSchema,
    response: z.array(meterSchema),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireVillage(registry, principal, params.villageId);
        return Promise.all((await registry.meterIdsOfVillage(params.villageId)).map((id) => meterView(id)));
      }),
  });

  // ─── plots and crops ───────────────────────────────────────────────────────────────────────────────────────────

  addRoute(app, {
    method: "POST",
    url: "/households/:householdId/plots",
    summary: "Add a household's plot (地块) with the crop growing on it",
    tags: ["provisioning"],
    access: ["village-officer"],
    params: householdParamsSchema,
    body: z.strictObject({
      plotId: entityIdSchema,
      name: nameSchema,
      areaMilliMu: z.int().min(1).max(100_000_000),
      crop: cropSchema,
      cropFrom: z.int().min(0).default(0),
      latE6: z.int().min(-90_000_000).max(90_000_000).optional(),
      lonE6: z.int().min(-180_000_000).max(180_000_000).optional(),
      reason: reasonSchema.optional(),
    }),
    response: plotSchema,
    status: 201,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        const household = await requireHouseholdForOfficer(registry, principal, params.householdId);
        const { reason, ...plot } = body;
        await registry.addPlot({ ...plot, householdId: household.householdId, recordedBy: principal.userId });
        const after = await plotView(body.plotId);
        await record(principal, "plot.create", "plot", body.plotId, household.villageId, { reason, after });
        return after;
      }),
  });

  addRoute(app, {
    method: "POST",
    url: "/plots/:plotId/crops",
    summary: "Record what grows on a plot from a date on (history: earlier records are never edited)",
    tags: ["provisioning"],
    access: ["village-officer"],
    params: z.strictObject({ plotId: entityIdSchema }),
    body: z.strictObject({ crop: cropSchema, effectiveFromMs: z.int().min(0), reason: reasonSchema.optional() }),
    response: plotSchema,
    status: 201,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        const plot = await requirePlot(principal, params.plotId, true);
        const before = await registry.cropAt(plot.plotId, body.effectiveFromMs);
        const added = await registry.setPlotCrop(plot.plotId, body.crop, body.effectiveFromMs, principal.userId);
        await record(principal, "plot.crop-change", "plot", plot.plotId, plot.villageId, { reason: body.reason, before: before === undefined ? undefined : { crop: before }, after: added });
        return await plotView(plot.plotId);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/plots/:plotId",
    summary: "One plot with its crop history",
    tags: ["provisioning"],
    access: ["farmer", "village-officer", "village-approver"],
    params: z.strictObject({ plotId: entityIdSchema }),
    response: plotSchema,
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requirePlot(principal, params.plotId, false);
        return await plotView(params.plotId);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/households/:householdId/plots",
    summary: "A household's plots with their crop histories",
    tags: ["provisioning"],
    access: ["farmer", "village-officer", "village-approver"],
    params: householdParamsSchema,
    response: z.array(plotSchema),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        const household = await requireHousehold(registry, principal, params.householdId);
        return Promise.all((await registry.plotsOfHousehold(household.householdId)).map((p) => plotView(p.plotId)));
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/villages/:villageId/plots",
    summary: "The plots of a village",
    tags: ["provisioning"],
    access: ["village-officer", "village-approver"],
    params: villageParamsSchema,
    response: z.array(plotSchema),
    handler: ({ principal, params }) =>
      asProblem(async () => {
        await requireVillage(registry, principal, params.villageId);
        return Promise.all((await registry.plotsOfVillage(params.villageId)).map((p) => plotView(p.plotId)));
      }),
  });

  // ─── tariffs ───────────────────────────────────────────────────────────────────────────────────────────────────

  addRoute(app, {
    method: "POST",
    url: "/tariffs/:tariffId/versions",
    summary: "Publish the next version of a tariff (the first may start any time; a later one takes effect now or later)",
    tags: ["provisioning"],
    access: ["admin"],
    params: z.strictObject({ tariffId: tariffIdSchema }),
    body: z.strictObject({ effectiveFrom: z.int().min(0), prices: tariffPricesSchema, reason: reasonSchema }),
    response: tariffVersionSchema,
    status: 201,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        const schedule = await registry.tariffSchedule(params.tariffId);
        // tariff.ts / ledger README: a price change is a new version with a future effectiveFrom; readings already
        // charged keep the price they were charged at.
        if (schedule.length > 0 && body.effectiveFrom < deps.now()) {
          throw new HttpProblem(422, "API_TARIFF_IN_THE_PAST", "a new tariff version takes effect now or later; a published version is never rewritten");
        }
        const tariff = { tariffId: params.tariffId, version: schedule.length + 1, effectiveFrom: body.effectiveFrom, prices: body.prices };
        await registry.addTariff(tariff);
        await record(principal, "tariff.publish", "tariff", `${params.tariffId}@v${tariff.version}`, undefined, { reason: body.reason, before: schedule.at(-1), after: tariff });
        await regrantTariff(params.tariffId);
        return tariff;
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/tariffs/:tariffId",
    summary: "Every version of a tariff",
    tags: ["provisioning"],
    access: ["farmer", "village-officer", "village-approver"],
    params: z.strictObject({ tariffId: tariffIdSchema }),
    query: z.strictObject({ atMs: epochMsQuerySchema.optional() }),
    response: z.array(tariffVersionSchema),
    handler: ({ params, query }) =>
      asProblem(async () => {
        const schedule = await registry.tariffSchedule(params.tariffId);
        if (schedule.length === 0) throw notFound(`tariff ${params.tariffId}`);
        return query.atMs === undefined ? schedule : schedule.filter((t) => t.effectiveFrom <= (query.atMs ?? 0));
      }),
  });

  /** The grants of every meter on the tariff, re-sized at once (a higher price must shrink them). */
  async function regrantTariff(tariffId: string): Promise<void> {
    if (deps.prepaid === undefined) return;
    const households = new Set<string>();
    for (const village of await registry.listVillages()) {
      for (const meterId of await registry.meterIdsOfVillage(village.villageId)) {
        const meter = await registry.getMeter(meterId);
        if (meter?.tariffId === tariffId) households.add(meter.householdId);
      }
    }
    for (const householdId of households) await deps.prepaid.regrantHousehold(householdId, "tariff version published");
  }

  return Promise.resolve();
}
