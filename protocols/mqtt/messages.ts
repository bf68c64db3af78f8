// The zod schemas of every MQTT payload (JSON), uplink and downlink, and the one way to check one: parseMessage.
// topics.ts says which schema each topic carries by naming a key of MESSAGE_SCHEMAS; this module owns the shapes,
// the identifier formats they share (gateway, device, point ids) and the size bounds.
//
// Versioning: every payload carries `v`. A breaking change becomes a new schema with `v: z.literal(2)` beside the
// v1 one, and the cloud accepts both (a union on `v`) for as long as a v1 gateway may still be in the field; a gateway
// only ever sends one version. Adding an optional field is also a new version, because of the next point.
//
// Strictness: every object is strict — an unknown key is refused, never silently dropped. A payload is a contract
// between two programs that are upgraded at different times; a key one side does not know means the sides disagree
// on the version, and dropping the key would hide exactly that (a grant's new field ignored is a wrong grant).
//
// Bounds: every array and string has a maximum, so an oversized payload is refused by the schema as well as by the
// broker's packet limit, and one message can never make ingest allocate without bound.

import { z } from "zod";
import { DEVICE_KINDS } from "../profiles/schema.js";
import { ROLE_NAMES, ROLES, UNIT_NAMES } from "../profiles/roles.js";

export const MESSAGE_VERSION = 1 as const;

// ─── shared identifiers ───────────────────────────────────────────────────────────────────────────────────────────

/**
 * A gateway id is one MQTT topic level and a broker username: lowercase letters, digits and hyphens, 2..63 chars,
 * not starting with a hyphen. That excludes the MQTT wildcards `+` and `#`, the level separator `/` and `$`
 * (MQTT v3.1.1 §4.7.1–4.7.2), so an id can never widen a topic or an ACL.
 */
export const GATEWAY_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,62}$/;
export const gatewayIdSchema = z.string().regex(GATEWAY_ID_PATTERN, "gateway ids are 2..63 chars of a-z, 0-9 and '-', not starting with '-'");

/** Device (and meter) ids as the edge config names them; bounded and free of spaces and wildcards. */
export const deviceIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "device ids are 1..64 chars of A-Z, a-z, 0-9, '.', '_' and '-'");
/** Point ids are the camelCase ids of profiles/schema.ts. */
const pointIdSchema = z.string().max(64).regex(/^[a-z][a-zA-Z0-9]*$/, "point ids are camelCase");
const profileIdSchema = z.string().max(64).regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, "profile ids are kebab-case");
const channelSchema = z.string().min(1).max(16);
/** ISO 8601 with an explicit offset ("Z" or "+08:00"): a local time without an offset is ambiguous across zones. */
const isoDateTime = z.iso.datetime({ offset: true });
/** Modbus unit id: 1..247 on a serial line; TCP devices also answer to 0 and 255 (Modbus Messaging on TCP/IP §4.4.2). */
const unitIdSchema = z.int().min(0).max(255);
const positiveSafeInt = z.int().positive();
const nonNegativeSafeInt = z.int().nonnegative();
const shortText = z.string().min(1).max(200);
const longText = z.string().min(1).max(1000);

/** The envelope of every uplink but status: who sent it, its place in the gateway's durable outbox, and when. */
const uplinkEnvelope = {
  v: z.literal(MESSAGE_VERSION),
  gatewayId: gatewayIdSchema,
  /** Per-gateway sequence from the durable outbox; (gatewayId, seq) is the cloud's deduplication key. */
  seq: positiveSafeInt,
  /** The gateway's clock when the message was committed to the durable outbox (not when the data was measured). */
  sentAt: isoDateTime,
} as const;

// ─── telemetry ────────────────────────────────────────────────────────────────────────────────────────────────────

export const telemetrySampleSchema = z
  .strictObject({
    deviceId: deviceIdSchema,
    pointId: pointIdSchema,
    role: z.enum(ROLE_NAMES),
    channel: channelSchema.optional(),
    /** JSON has no NaN or Infinity and z.number() refuses both: a value the edge could not decode is not sent. */
    value: z.number(),
    unit: z.enum(UNIT_NAMES),
    at: isoDateTime,
  })
  .superRefine((s, ctx) => {
    const allowed: readonly string[] = ROLES[s.role].units;
    if (!allowed.includes(s.unit)) ctx.addIssue({ code: "custom", path: ["unit"], message: `role ${s.role} is expressed in ${allowed.join(", ")}, not ${s.unit}` });
  });

export const telemetryBatchSchema = z.strictObject({
  ...uplinkEnvelope,
  samples: z.array(telemetrySampleSchema).min(1).max(1000),
});

// ─── billing readings ─────────────────────────────────────────────────────────────────────────────────────────────

export const BILLING_ROLES = ["import_energy", "export_energy", "total_energy"] as const;

export const billingReadingSchema = z
  .strictObject({
    meterId: deviceIdSchema,
    unitId: unitIdSchema.optional(),
    pointId: pointIdSchema,
    role: z.enum(BILLING_ROLES),
    /** Per-meter, strictly rising: the billing chain. A gap tells the cloud a reading is still in the outbox. */
    registerSeq: positiveSafeInt,
    at: isoDateTime,
    /** What the meter said, verbatim, so a disputed charge can be re-decoded from the words themselves. */
    raw: z.strictObject({
      // The widest value type is 64 bits (4 words); 8 leaves room for BCD and vendor formats.
      words: z.array(z.int().min(0).max(0xffff)).min(1).max(8),
      value: z.number(),
    }),
    /** The cumulative register in integer Wh (units.ts): what the ledger charges from. */
    energyWh: nonNegativeSafeInt,
    /** How the raw value became energyWh (units.ts WhConversion): |droppedWh| < 1, and 0 when exact. */
    conversion: z.strictObject({
      exact: z.boolean(),
      droppedWh: z.number().gt(-1).lt(1),
    }),
  })
  .superRefine((r, ctx) => {
    if (r.conversion.exact && r.conversion.droppedWh !== 0) {
      ctx.addIssue({ code: "custom", path: ["conversion", "droppedWh"], message: "an exact conversion drops nothing" });
    }
  });

export const billingReadingsSchema = z
  .strictObject({
    ...uplinkEnvelope,
    readings: z.array(billingReadingSchema).min(1).max(500),
  })
  .superRefine((m, ctx) => {
    // The same link of the chain twice in one batch means the outbox or the edge guard is broken.
    const seen = new Set<string>();
    m.readings.forEach((r, i) => {
      const key = `${r.meterId}\u0000${r.pointId}\u0000${r.registerSeq}`;
      if (seen.has(key)) ctx.addIssue({ code: "custom", path: ["readings", i, "registerSeq"], message: `registerSeq ${r.registerSeq} of ${r.meterId}/${r.pointId} appears twice` });
      seen.add(key);
    });
  });

// ─── events ───────────────────────────────────────────────────────────────────────────────────────────────────────
// Every event carries `at`: when the edge observed it. The envelope's sentAt is when it entered the outbox, which after
// an outage can be days later.

export const ALARM_CAUSES = ["device_flag", "smoke_density", "temperature_rise", "heat_flag"] as const;

export const alarmRaisedOrClearedSchema = z.strictObject({
  type: z.enum(["alarm.raised", "alarm.cleared"]),
  deviceId: deviceIdSchema,
  cause: z.enum(ALARM_CAUSES),
  value: z.number().optional(),
  threshold: z.number().optional(),
  at: isoDateTime,
  /** Stable across raised → cleared, so the cloud pairs them into one incident. */
  alarmId: z.string().min(1).max(64),
});

/** A sensor that stopped answering is itself an alert (ARCHITECTURE.md invariant 7). */
export const monitoringGapSchema = z.strictObject({
  type: z.literal("monitoring.gap"),
  deviceId: deviceIdSchema,
  at: isoDateTime,
  /** The last time the device answered. */
  silentSinceAt: isoDateTime,
  missedPolls: positiveSafeInt,
});

export const TAMPER_KINDS = ["cover_open", "reverse_flow", "energy_backwards", "energy_jump", "not_a_number", "bypass_suspected"] as const;

export const tamperSchema = z.strictObject({
  type: z.literal("tamper"),
  deviceId: deviceIdSchema,
  at: isoDateTime,
  kind: z.enum(TAMPER_KINDS),
  detail: longText,
  registerWh: nonNegativeSafeInt.optional(),
});

export const RELAY_REASONS = ["credit_exhausted", "credit_granted", "officer_override", "restored_after_reboot", "friendly_period"] as const;

export const relayChangedSchema = z.strictObject({
  type: z.enum(["relay.opened", "relay.closed"]),
  deviceId: deviceIdSchema,
  at: isoDateTime,
  reason: z.enum(RELAY_REASONS),
  /** The import register at the moment of switching: ties the relay action to the billing chain. */
  registerWh: nonNegativeSafeInt,
  grantSeq: positiveSafeInt.optional(),
  /** The raw value written to (and read back from) the relay register or coil. */
  registerValue: z.int().min(0).max(0xffff),
  /** Whether the read-back confirmed the new state. */
  verified: z.boolean(),
});

export const deviceReachabilitySchema = z.strictObject({
  type: z.enum(["device.offline", "device.online"]),
  deviceId: deviceIdSchema,
  at: isoDateTime,
  consecutiveFailures: nonNegativeSafeInt.optional(),
  lastError: longText.optional(),
});

export const grantAppliedSchema = z.strictObject({
  type: z.literal("grant.applied"),
  meterId: deviceIdSchema,
  at: isoDateTime,
  grantSeq: positiveSafeInt,
  reason: shortText.optional(),
});

/** A refused grant always says why (older than the one in force, unknown meter, expired command). */
export const grantRejectedSchema = z.strictObject({
  type: z.literal("grant.rejected"),
  meterId: deviceIdSchema,
  at: isoDateTime,
  grantSeq: positiveSafeInt,
  reason: shortText,
});

/** The sensor answers again after a monitoring gap; pairs with the gap by deviceId and silentSinceAt. */
export const monitoringRestoredSchema = z.strictObject({
  type: z.literal("monitoring.restored"),
  deviceId: deviceIdSchema,
  at: isoDateTime,
  silentSinceAt: isoDateTime,
  /** When the gap was reported, so the cloud pairs this with its monitoring.gap. */
  gapReportedAt: isoDateTime,
});

/** A fire sensor's own fault flag changed: while faulted it is not watching, which the command room must see. */
export const sensorFaultSchema = z.strictObject({
  type: z.literal("sensor.fault"),
  deviceId: deviceIdSchema,
  at: isoDateTime,
  faulted: z.boolean(),
});

/**
 * A battery-powered fire sensor's battery fell below thresholdMv (battery.low), or rose back above thresholdMv
 * (battery.ok; the gateway's threshold plus its hysteresis). Reported once per crossing. Maintenance, not fire: it
 * goes out with the other events, not on the alarm lane, and the cloud makes it a low_battery incident that never
 * joins or counts as a fire; battery.ok closes it.
 */
export const batteryLevelSchema = z.strictObject({
  type: z.enum(["battery.low", "battery.ok"]),
  deviceId: deviceIdSchema,
  at: isoDateTime,
  /** The battery voltage that crossed the threshold, in mV. */
  batteryMv: nonNegativeSafeInt,
  /** The level it crossed, in mV. */
  thresholdMv: nonNegativeSafeInt,
});

/**
 * Low credit (请购电, DL/T 1490's two alarm stages): the meter's remaining granted energy fell to the first or second
 * warning level. remainingWh may be zero or negative when the warning comes with the cut or inside a friendly period.
 */
export const creditLowSchema = z.strictObject({
  type: z.literal("credit.low"),
  meterId: deviceIdSchema,
  at: isoDateTime,
  level: z.union([z.literal(1), z.literal(2)]),
  remainingWh: z.int(),
  grantSeq: positiveSafeInt,
});

/** The events that go out on the alarm topic, one per message, ahead of any backlog (invariant 6). */
export const alarmEventSchema = z.discriminatedUnion("type", [alarmRaisedOrClearedSchema, monitoringGapSchema, monitoringRestoredSchema, sensorFaultSchema]);

export const gatewayEventSchema = z.discriminatedUnion("type", [
  alarmRaisedOrClearedSchema,
  monitoringGapSchema,
  monitoringRestoredSchema,
  sensorFaultSchema,
  tamperSchema,
  relayChangedSchema,
  deviceReachabilitySchema,
  grantAppliedSchema,
  grantRejectedSchema,
  creditLowSchema,
  batteryLevelSchema,
]);

export const eventBatchSchema = z.strictObject({
  ...uplinkEnvelope,
  events: z.array(gatewayEventSchema).min(1).max(100),
});

export const alarmMessageSchema = z.strictObject({
  ...uplinkEnvelope,
  event: alarmEventSchema,
});

// ─── birth and status ─────────────────────────────────────────────────────────────────────────────────────────────

/** Semantic Versioning 2.0.0 §2, §9, §10 (numeric identifiers without leading zeros; pre-release and build parts). */
const semverSchema = z
  .string()
  .max(64)
  .regex(/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/, "version must be semver (1.2.3)");

export const birthSchema = z
  .strictObject({
    ...uplinkEnvelope,
    version: semverSchema,
    startedAt: isoDateTime,
    devices: z
      .array(
        z.strictObject({
          deviceId: deviceIdSchema,
          profileId: profileIdSchema,
          kind: z.enum(DEVICE_KINDS),
          /** The bus name in the edge config (a serial port or a TCP endpoint alias). */
          bus: z.string().min(1).max(64),
          unitId: unitIdSchema,
        }),
      )
      .max(1000),
  })
  .superRefine((b, ctx) => {
    const seen = new Set<string>();
    b.devices.forEach((d, i) => {
      if (seen.has(d.deviceId)) ctx.addIssue({ code: "custom", path: ["devices", i, "deviceId"], message: `device ${d.deviceId} listed twice` });
      seen.add(d.deviceId);
    });
  });

/**
 * Retained status, and the MQTT last will (state "offline") that the broker publishes for a gateway that vanished.
 * It has no `seq` and no `sentAt`: the will's bytes are fixed when the gateway connects (MQTT v3.1.1 §3.1.2.5) and
 * are published by the broker at some unknown later time, so an outbox sequence or send time in it would be a lie
 * and would collide with (or run behind) real outbox messages. It is not deduplicated, either: it is a retained
 * last-value state, and the newest one on the topic is the truth. `at` is optional for the same reason.
 */
export const statusSchema = z.strictObject({
  v: z.literal(MESSAGE_VERSION),
  gatewayId: gatewayIdSchema,
  state: z.enum(["online", "offline"]),
  at: isoDateTime.optional(),
  reason: shortText.optional(),
});

// ─── commands (downlink) and their acks ───────────────────────────────────────────────────────────────────────────

const commandIdSchema = z.string().regex(/^[A-Za-z0-9-]{8,64}$/, "command ids are 8..64 chars of A-Z, a-z, 0-9 and '-' (a UUID fits)");
/** 24-hour local time "HH:MM". */
const clockTimeSchema = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "time must be HH:MM (00:00..23:59)");

/**
 * A window in which the relay stays closed even with no credit (night irrigation during a drought order, say).
 * Times are Asia/Shanghai local time (UTC+8, no daylight saving); `from` after `to` crosses midnight. `days` uses
 * 0 = Sunday .. 6 = Saturday (as Date#getDay) and means every day when absent.
 */
export const friendlyPeriodSchema = z
  .strictObject({
    from: clockTimeSchema,
    to: clockTimeSchema,
    days: z.array(z.int().min(0).max(6)).min(1).max(7).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.from === p.to) ctx.addIssue({ code: "custom", path: ["to"], message: "a friendly period needs from ≠ to" });
    if (p.days !== undefined && new Set(p.days).size !== p.days.length) ctx.addIssue({ code: "custom", path: ["days"], message: "days repeat" });
  });

/**
 * A grant's low-credit warning stages (请购电) as remaining Wh before limitWh: [stage 1, stage 2], stage 2 no larger
 * (the edge guard warns at stage 2 when one reading crosses both). The cloud converts the village's fen thresholds
 * at the grant's highest price, so the two may round to the same Wh.
 */
export const warnAtWhSchema = z
  .tuple([nonNegativeSafeInt, nonNegativeSafeInt])
  .refine(([stage1Wh, stage2Wh]) => stage1Wh >= stage2Wh, { message: "stage 2 warns later than stage 1: warnAtWh[1] ≤ warnAtWh[0]" });

/**
 * Credit as a limit on the meter's own import register (invariant 4): the edge keeps the relay closed until the
 * register reaches limitWh, online or offline. grantSeq rises per meter; the edge ignores a grant older than the
 * one in force, so reordered or replayed grants cannot raise a limit that was lowered.
 */
export const creditGrantSchema = z.strictObject({
  type: z.literal("credit.grant"),
  meterId: deviceIdSchema,
  grantSeq: positiveSafeInt,
  limitWh: nonNegativeSafeInt,
  /** "manual": after credit returns, the relay stays open until someone on site (or an officer) closes it. */
  reconnect: z.enum(["automatic", "manual"]),
  friendlyPeriods: z.array(friendlyPeriodSchema).max(16).optional(),
  /**
   * The village's warning stages (warnAtWhSchema). When present they replace the gateway's configured warnAtWh for
   * this meter while the grant is in force; absent, the configured ones apply. Optional so a grant from a cloud
   * without village policies still parses.
   */
  warnAtWh: warnAtWhSchema.optional(),
});

export const relaySetSchema = z.strictObject({
  type: z.literal("relay.set"),
  deviceId: deviceIdSchema,
  state: z.enum(["open", "closed"]),
  /** Who ordered it: a relay switched by hand must be traceable to a person. */
  officerId: z.string().min(1).max(64),
  reason: shortText,
});

/** Largest config.update body, in characters of JSON; the edge config is small and a broker packet is bounded. */
export const MAX_CONFIG_JSON_CHARS = 64 * 1024;

export const configUpdateSchema = z.strictObject({
  type: z.literal("config.update"),
  /** The edge validates this against its own config schema; here it only has to be a bounded JSON object. */
  config: z.record(z.string().max(128), z.json()).refine((c) => JSON.stringify(c).length <= MAX_CONFIG_JSON_CHARS, {
    message: `config must serialise to at most ${MAX_CONFIG_JSON_CHARS} characters`,
  }),
  configVersion: positiveSafeInt,
});

export const pingSchema = z.strictObject({
  type: z.literal("ping"),
  nonce: z.string().min(1).max(64),
});

export const commandBodySchema = z.discriminatedUnion("type", [creditGrantSchema, relaySetSchema, configUpdateSchema, pingSchema]);

/**
 * A command expires: after an offline period the broker may deliver queued QoS 1 commands late, and a stale relay
 * order or grant must be refused (the gateway checks expiresAt against its clock; see commandExpired).
 */
export const commandSchema = z
  .strictObject({
    v: z.literal(MESSAGE_VERSION),
    commandId: commandIdSchema,
    issuedAt: isoDateTime,
    expiresAt: isoDateTime,
    command: commandBodySchema,
  })
  .superRefine((c, ctx) => {
    const issued = Date.parse(c.issuedAt);
    const expires = Date.parse(c.expiresAt);
    if (!(expires > issued)) ctx.addIssue({ code: "custom", path: ["expiresAt"], message: "expiresAt must be after issuedAt" });
  });

export const COMMAND_ACK_STATUSES = ["accepted", "rejected", "done", "failed"] as const;

export const commandAckSchema = z
  .strictObject({
    ...uplinkEnvelope,
    commandId: commandIdSchema,
    status: z.enum(COMMAND_ACK_STATUSES),
    reason: shortText.optional(),
    detail: longText.optional(),
  })
  .superRefine((a, ctx) => {
    // An operator looking at a refused relay order needs to know why without reading gateway logs.
    if ((a.status === "rejected" || a.status === "failed") && a.reason === undefined) {
      ctx.addIssue({ code: "custom", path: ["reason"], message: `a ${a.status} ack needs a reason` });
    }
  });

// ─── the table and the parser ─────────────────────────────────────────────────────────────────────────────────────

/** Every payload schema by name; topics.ts names these keys. */
export const MESSAGE_SCHEMAS = {
  telemetryBatch: telemetryBatchSchema,
  billingReadings: billingReadingsSchema,
  eventBatch: eventBatchSchema,
  alarmMessage: alarmMessageSchema,
  birth: birthSchema,
  status: statusSchema,
  command: commandSchema,
  commandAck: commandAckSchema,
} as const;
export type MessageName = keyof typeof MESSAGE_SCHEMAS;
export const MESSAGE_NAMES = Object.keys(MESSAGE_SCHEMAS) as [MessageName, ...MessageName[]];
export type MessageOf<N extends MessageName> = z.output<(typeof MESSAGE_SCHEMAS)[N]>;

export type TelemetrySample = z.output<typeof telemetrySampleSchema>;
export type TelemetryBatch = z.output<typeof telemetryBatchSchema>;
export type BillingReading = z.output<typeof billingReadingSchema>;
export type BillingReadings = z.output<typeof billingReadingsSchema>;
export type AlarmEvent = z.output<typeof alarmEventSchema>;
export type GatewayEvent = z.output<typeof gatewayEventSchema>;
export type GatewayEventType = GatewayEvent["type"];
export type EventBatch = z.output<typeof eventBatchSchema>;
export type AlarmMessage = z.output<typeof alarmMessageSchema>;
export type Birth = z.output<typeof birthSchema>;
export type Status = z.output<typeof statusSchema>;
export type FriendlyPeriod = z.output<typeof friendlyPeriodSchema>;
export type CommandBody = z.output<typeof commandBodySchema>;
export type CommandType = CommandBody["type"];
export type Command = z.output<typeof commandSchema>;
export type CommandAck = z.output<typeof commandAckSchema>;

export interface MessageIssue {
  /** Dotted path into the payload ("readings.0.energyWh"); "" for the payload itself. */
  readonly path: string;
  readonly message: string;
}
export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly issues: readonly MessageIssue[] };

/**
 * Validate a decoded JSON payload against the named schema. Never throws: a bad payload from the network is data
 * (a counter and a log line, invariant 9), not an exception.
 */
export function parseMessage<N extends MessageName>(name: N, json: unknown): ParseResult<MessageOf<N>> {
  if (!Object.hasOwn(MESSAGE_SCHEMAS, name)) return { ok: false, issues: [{ path: "", message: `unknown message schema ${String(name)}` }] };
  const schema: z.ZodType = MESSAGE_SCHEMAS[name];
  try {
    const result = schema.safeParse(json);
    // The schema was looked up by N, so its output is MessageOf<N>; TypeScript cannot follow an indexed generic.
    if (result.success) return { ok: true, value: result.data as MessageOf<N> };
    return { ok: false, issues: result.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })) };
  } catch (error) {
    // safeParse reports, but a refinement over a hostile value (a getter, a cyclic object) could still throw.
    return { ok: false, issues: [{ path: "", message: `payload could not be checked: ${error instanceof Error ? error.message : String(error)}` }] };
  }
}

/** Whether a command is past its expiry at `nowMs` (the caller's clock, epoch ms); an expired command is rejected. */
export function commandExpired(command: Pick<Command, "expiresAt">, nowMs: number): boolean {
  return !(Date.parse(command.expiresAt) > nowMs);
}
