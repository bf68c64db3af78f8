// Telemetry queries over HTTP (issue #4): a meter's power and energy over a time range, and a field device's
// (fire / smoke sensor's) history, from the TelemetryStore, always downsampled into epoch-aligned buckets with a
// bounded number of points — the caller names a bucket size, or gets the smallest standard one that fits.
//
// Who: a meter's series — the household's own farmer, an officer/approver of its village, or an admin. A sensor's
// history — an officer/approver of the village its gateway belongs to, or an admin (sensors are not a household's).

import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { coversVillage, isAdmin } from "../../auth/principal.js";
import type { Registry } from "../../registry/registry.js";
import type { TelemetryStore } from "../../telemetry/sink.js";
import { forbidden, HttpProblem, notFound } from "../problem.js";
import { addRoute } from "../route.js";
import { asProblem } from "./domain-errors.js";
import { entityIdSchema, epochMsQuerySchema, meterParamsSchema } from "./schemas.js";
import { requireMeter } from "./scope.js";
import { gatewayIdSchema } from "../../../protocols/mqtt/messages.js";

export interface TelemetryRouteDeps {
  readonly registry: Registry;
  readonly telemetry: Pick<TelemetryStore, "query">;
  /** Default point ids of a meter's series (profiles name them so; DTSU666/SDM630 call their total "totalActivePower"). */
  readonly meterPoints?: { readonly power?: string; readonly energy?: string };
}

/** The most points one answer carries. */
export const MAX_POINTS = 2000;
/** The point count a default bucket aims for. */
const TARGET_POINTS = 500;
const STANDARD_BUCKETS_MS = [1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000] as const;

/** The smallest standard bucket giving at most TARGET_POINTS over the range (a whole number of days beyond that). */
export function defaultBucketMs(rangeMs: number): number {
  for (const b of STANDARD_BUCKETS_MS) if (rangeMs / b <= TARGET_POINTS) return b;
  return Math.ceil(rangeMs / TARGET_POINTS / 86_400_000) * 86_400_000;
}

const pointIdSchema = z.string().max(64).regex(/^[a-z][a-zA-Z0-9]*$/, "point ids are camelCase");

const seriesQuery = z
  .strictObject({
    fromMs: epochMsQuerySchema,
    toMs: epochMsQuerySchema,
    everyMs: epochMsQuerySchema.optional(),
    pointId: pointIdSchema.optional(),
  })
  .refine((q) => q.fromMs < q.toMs, { path: ["toMs"], message: "toMs must be after fromMs" })
  .refine((q) => q.everyMs === undefined || q.everyMs >= 1000, { path: ["everyMs"], message: "buckets are at least 1000 ms" })
  .refine((q) => q.everyMs === undefined || (q.toMs - q.fromMs) / q.everyMs <= MAX_POINTS, { path: ["everyMs"], message: `at most ${MAX_POINTS} buckets per answer: widen everyMs or narrow the range` });

const seriesSchema = z.object({
  deviceId: z.string(),
  gatewayId: z.string(),
  pointId: z.string(),
  fromMs: z.int(),
  toMs: z.int(),
  everyMs: z.int(),
  points: z.array(z.object({ atMs: z.int(), mean: z.number(), min: z.number(), max: z.number(), last: z.number(), count: z.int() })).max(MAX_POINTS + 1),
});

// Not `async`: it registers synchronously; the Promise is the fastify plugin shape (app.register or a direct await).
export function telemetryRoutes(app: FastifyInstance, deps: TelemetryRouteDeps): Promise<void> {
  const { registry, telemetry } = deps;

  async function series(deviceId: string, gatewayId: string, pointId: string, q: { fromMs: number; toMs: number; everyMs?: number | undefined }) {
    const everyMs = q.everyMs ?? defaultBucketMs(q.toMs - q.fromMs);
    const points = await telemetry.query({ deviceId, pointId, gatewayId, fromMs: q.fromMs, toMs: q.toMs, everyMs });
    if (points.length > MAX_POINTS + 1) throw new HttpProblem(500, "API_TOO_MANY_POINTS", "the telemetry store answered more buckets than the range holds");
    return { deviceId, gatewayId, pointId, fromMs: q.fromMs, toMs: q.toMs, everyMs, points };
  }

  const meterSeries = (kind: "power" | "energy", fallbackPoint: string): void =>
    addRoute(app, {
      method: "GET",
      url: `/meters/:meterId/${kind}`,
      summary: `A meter's ${kind === "power" ? "active power" : "import-energy register"} over [fromMs, toMs), downsampled (everyMs; ≤ ${MAX_POINTS} points)`,
      tags: ["telemetry"],
      access: ["farmer", "village-officer", "village-approver"],
      params: meterParamsSchema,
      query: seriesQuery,
      response: seriesSchema,
      handler: ({ principal, params, query }) =>
        asProblem(async () => {
          const { meter } = await requireMeter(registry, principal, params.meterId);
          return series(meter.meterId, meter.gatewayId, query.pointId ?? fallbackPoint, query);
        }),
    });
  meterSeries("power", deps.meterPoints?.power ?? "activePower");
  meterSeries("energy", deps.meterPoints?.energy ?? "importEnergy");

  addRoute(app, {
    method: "GET",
    url: "/gateways/:gatewayId/devices/:deviceId/history",
    summary: `A field device's history (a fire sensor's smoke level, a meter's voltage…) over [fromMs, toMs), downsampled (≤ ${MAX_POINTS} points)`,
    tags: ["telemetry"],
    access: ["village-officer", "village-approver"],
    params: z.strictObject({ gatewayId: gatewayIdSchema, deviceId: entityIdSchema }),
    query: seriesQuery.refine((q) => q.pointId !== undefined, { path: ["pointId"], message: "name the point (e.g. smokeLevel)" }),
    response: seriesSchema,
    handler: ({ principal, params, query }) =>
      asProblem(async () => {
        const gateway = await registry.getGateway(params.gatewayId);
        if (gateway === undefined) throw notFound(`gateway ${params.gatewayId}`);
        if (gateway.villageId === undefined ? !isAdmin(principal) : !coversVillage(principal, gateway.villageId)) {
          throw forbidden(`gateway ${params.gatewayId} is not in one of your villages`);
        }
        return series(params.deviceId, gateway.gatewayId, query.pointId ?? "", query);
      }),
  });
  return Promise.resolve();
}
