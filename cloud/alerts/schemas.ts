// The zod schemas of the alerts HTTP API: request bodies and queries, and the documented shapes of answers (route.ts
// checks every JSON answer against them and openapi.ts publishes them).

import { z } from "zod";
import { ALARM_CAUSES } from "../../protocols/mqtt/messages.js";
import { DISPOSITIONS, INCIDENT_ACTIONS, INCIDENT_CLASSES, INCIDENT_STATES, SENSOR_MODES, TIERS } from "./types.js";

export const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, "ids are 1..128 chars of A-Z, a-z, 0-9, '.', '_', ':' and '-'");
const epochMs = z.int().nonnegative();
const text = (max: number) => z.string().trim().min(1).max(max);

export const jurisdictionBodySchema = z.strictObject({
  parentId: id.nullable(),
  tier: z.enum(TIERS),
  name: text(200),
  ackTimeoutMs: z.int().min(1000).max(7 * 24 * 3600_000),
  onSceneTimeoutMs: z.int().min(1000).max(7 * 24 * 3600_000),
});
export const jurisdictionSchema = jurisdictionBodySchema.extend({ jurisdictionId: id });

export const sensorBodySchema = z.strictObject({
  gatewayId: id,
  jurisdictionId: id,
  /** WGS-84; display maps convert to GCJ-02 themselves. */
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
  name: text(200),
  mode: z.enum(SENSOR_MODES).default("normal"),
});
export const sensorSchema = sensorBodySchema.extend({ sensorId: id });

export const receiverBodySchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).max(2000),
  /** The HMAC key; never answered back. */
  secret: z.string().min(16).max(200),
  format: z.enum(["json", "cap"]).default("json"),
  jurisdictionId: id.nullable().default(null),
  enabled: z.boolean().default(true),
});
export const receiverViewSchema = z.strictObject({
  receiverId: id,
  url: z.string(),
  format: z.enum(["json", "cap"]),
  jurisdictionId: id.nullable(),
  enabled: z.boolean(),
  outbox: z.strictObject({ pending: z.int(), delivered: z.int(), undelivered: z.int() }),
});

export const muteBodySchema = z.strictObject({
  sensorId: id,
  fromMs: epochMs.optional(),
  untilMs: epochMs,
  reason: text(500),
});
export const muteSchema = z.strictObject({
  muteId: id,
  sensorId: id,
  fromMs: epochMs,
  untilMs: epochMs,
  reason: z.string(),
  actor: z.string(),
  createdAtMs: epochMs,
  liftedAtMs: epochMs.optional(),
  liftedBy: z.string().optional(),
});

export const transitionBodySchema = z.strictObject({
  action: z.enum(INCIDENT_ACTIONS),
  /** The grid worker (verify) or the officer (dispatch). */
  assignee: text(200).optional(),
  disposition: z.enum(DISPOSITIONS).optional(),
  note: text(1000).optional(),
});

const alarmRecordSchema = z.strictObject({
  alarmId: z.string(),
  sensorId: z.string(),
  gatewayId: z.string(),
  cause: z.enum([...ALARM_CAUSES, "monitoring_gap", "sensor_fault", "low_battery"]),
  atMs: z.number(),
  receivedAtMs: epochMs,
  clearedAtMs: z.number().optional(),
  value: z.number().optional(),
});

export const incidentSchema = z.strictObject({
  incidentId: z.string(),
  class: z.enum(INCIDENT_CLASSES),
  state: z.enum(INCIDENT_STATES),
  disposition: z.enum(DISPOSITIONS).optional(),
  certainty: z.enum(["Observed", "Likely", "Possible", "Unlikely"]),
  jurisdictionId: z.string().nullable(),
  sensorIds: z.array(z.string()).readonly(),
  unregisteredSensorIds: z.array(z.string()).readonly(),
  alarms: z.array(alarmRecordSchema).readonly(),
  points: z.array(z.strictObject({ sensorId: z.string(), lat: z.number(), lon: z.number() })).readonly(),
  openedAtMs: epochMs,
  updatedAtMs: epochMs,
  firstObservedAtMs: z.number(),
  lastObservedAtMs: z.number(),
  times: z.partialRecord(z.enum(INCIDENT_STATES), epochMs),
  gridWorker: z.string().optional(),
  officer: z.string().optional(),
  escalations: z.array(z.strictObject({ level: z.int(), jurisdictionId: z.string().nullable(), reason: z.enum(["ack_timeout", "on_scene_timeout"]), atMs: epochMs })).readonly(),
  mutedBy: z.string().optional(),
  version: z.int().positive(),
  note: z.string().optional(),
});

export const deliverySchema = z.strictObject({
  receiverId: z.string(),
  streamId: z.int(),
  state: z.enum(["pending", "delivered", "undelivered"]),
  attempts: z.int(),
  lastError: z.string().nullable(),
  doneAtMs: epochMs.nullable(),
});

export const incidentDetailSchema = z.strictObject({
  incident: incidentSchema,
  log: z.array(z.strictObject({ seq: z.int(), kind: z.string(), actor: z.string(), atMs: epochMs, detail: z.unknown() })),
  deliveries: z.array(deliverySchema),
  /** From opening to each milestone reached (acknowledge, verify, dispatch, arrive, resolve). */
  durationsMs: z.strictObject({ acknowledge: z.int().optional(), verify: z.int().optional(), dispatch: z.int().optional(), arrive: z.int().optional(), resolve: z.int().optional() }),
  /** Whether every receiver got every version (false while any is pending or undelivered). */
  delivered: z.boolean(),
  undelivered: z.int(),
});

export const listQuerySchema = z.strictObject({
  open: z.enum(["true", "false"]).default("false"),
  sinceMs: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});

const stats = z.strictObject({ count: z.int(), p50Ms: z.number().nullable(), p90Ms: z.number().nullable() });
export const metricsSchema = z.strictObject({
  jurisdictions: z.array(
    z.strictObject({
      jurisdictionId: z.string().nullable(),
      incidents: z.int(),
      falseAlarms: z.int(),
      milestones: z.strictObject({ acknowledge: stats, verify: stats, dispatch: stats, arrive: stats, resolve: stats }),
    }),
  ),
  sensors: z.array(z.strictObject({ sensorId: z.string(), judged: z.int(), falseAlarms: z.int(), rate: z.number(), noisy: z.boolean() })),
});

