// The gateway's configuration: one YAML or JSON file (or a config.update command) validated here, then frozen.
// Every error is reported with its path in one pass; cross-references (a device on a bus that does not exist, a
// contactor on a device that is not a relay module, a unit id used twice on one bus) are checked too, because a
// mistake there cuts the wrong pump.

import { z } from "zod";
import { deviceIdSchema, gatewayIdSchema } from "../../protocols/mqtt/messages.js";
import type { DeviceProfile } from "../../protocols/profiles/schema.js";

const ms = (min: number, max: number) => z.number().int().min(min).max(max);

const tcpBusSchema = z.strictObject({
  host: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65535).default(502),
});

const rtuBusSchema = z.strictObject({
  /** Serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/... (stable across replugs). */
  path: z.string().min(1).max(4096),
  baud: z.union([z.literal(1200), z.literal(2400), z.literal(4800), z.literal(9600), z.literal(19200), z.literal(38400), z.literal(57600), z.literal(115200)]),
  parity: z.enum(["none", "even", "odd"]).default("none"),
  stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
  /** Device turnaround assumed when checking the poll plan against the line's capacity. */
  turnaroundMs: z.number().min(0).max(500).default(5),
});

const busSchema = z
  .strictObject({
    id: deviceIdSchema,
    tcp: tcpBusSchema.optional(),
    rtu: rtuBusSchema.optional(),
    /** Per-request timeout. RTU: a few frame times; TCP: the round trip through the gateway. */
    timeoutMs: ms(20, 30_000).default(500),
    /** Attempts per request before the poll counts as failed (1 = no retry). */
    attempts: z.number().int().min(1).max(5).default(2),
    /** Pause between attempts, doubled each time. */
    retryBackoffMs: ms(0, 5000).default(20),
  })
  .refine((b) => (b.tcp === undefined) !== (b.rtu === undefined), { message: "a bus has exactly one of tcp or rtu" });

export const DEVICE_ROLES = ["meter", "relay-module", "fire-sensor"] as const;

const supplySchema = z.strictObject({
  /** How the supply is cut: the meter's own relay register, or a relay-module coil driving a contactor. */
  cut: z.discriminatedUnion("kind", [
    z.strictObject({ kind: z.literal("meter-relay") }),
    z.strictObject({
      kind: z.literal("contactor"),
      device: deviceIdSchema,
      channel: z.number().int().min(1).max(64),
      /** Normally-open contactor: coil energised = supply closed. A normally-closed one inverts it. */
      contactor: z.enum(["normally-open", "normally-closed"]).default("normally-open"),
    }),
  ]),
  /** Without any credit grant yet: keep the supply open (cut) or closed (on). Cut is the safe default for money. */
  noGrantPolicy: z.enum(["open", "closed"]).default("open"),
  /** Two-stage low-credit warnings (请购电): remaining Wh at which each stage fires. */
  warnAtWh: z.tuple([z.number().int().min(0), z.number().int().min(0)]).default([5000, 1000]),
});

const fireSchema = z.strictObject({
  smokeThresholdDbPerM: z.number().positive().max(10).default(0.05),
  smokeClearDbPerM: z.number().positive().max(10).default(0.03),
  consecutiveK: z.number().int().min(1).max(20).default(3),
  clearM: z.number().int().min(1).max(100).default(5),
  tempRiseCPerMin: z.number().positive().max(100).default(8),
  tempWindowMs: ms(10_000, 3_600_000).default(120_000),
  silentIntervals: z.number().int().min(1).max(100).default(3),
  /** battery.low below this many mV, 0 to never report (fire-guard.ts FIRE_GUARD_DEFAULTS says why 3300). */
  batteryLowMv: z.number().int().min(0).max(65_535).default(3300),
  /** battery.ok only above batteryLowMv + this: a cell's voltage recovers at rest and in the warmth. */
  batteryHysteresisMv: z.number().int().min(0).max(5000).default(100),
});

const deviceSchema = z.strictObject({
  id: deviceIdSchema,
  bus: deviceIdSchema,
  unit: z.number().int().min(1).max(247),
  profile: z.string().min(1).max(64),
  /** What the device is for; must agree with its profile's kind (a smoke detector is a fire sensor). */
  role: z.enum(DEVICE_ROLES),
  pollIntervalMs: ms(100, 3_600_000).default(5000),
  /** Point ids to read; default: every point of the profile marked poll. */
  points: z.array(z.string().min(1).max(64)).max(256).optional(),
  supply: supplySchema.optional(),
  fire: fireSchema.optional(),
  /** Device refuses reads through unmapped registers (answers exception 02): never bridge gaps. */
  noGapBridging: z.boolean().default(false),
});

export const edgeConfigSchema = z.strictObject({
  gateway: z.strictObject({
    id: gatewayIdSchema,
    /** Broker password; or passwordFile to keep the secret out of the config. */
    password: z.string().min(1).max(256).optional(),
    passwordFile: z.string().min(1).optional(),
  }),
  broker: z.strictObject({
    url: z.string().regex(/^mqtts?:\/\/[^/\s]+$/, "broker url is mqtt://host[:port] or mqtts://host[:port]"),
    caFile: z.string().min(1).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    keepaliveS: z.number().int().min(5).max(3600).default(30),
    reconnectMinMs: ms(100, 60_000).default(1000),
    reconnectMaxMs: ms(1000, 3_600_000).default(60_000),
    /** QoS 1 messages in flight at once while draining the outbox. */
    inflight: z.number().int().min(1).max(1000).default(32),
  }),
  buses: z.array(busSchema).min(1).max(16),
  devices: z.array(deviceSchema).min(1).max(512),
  outbox: z.strictObject({
    path: z.string().min(1),
    maxBytes: z.number().int().min(1 << 20).default(256 << 20),
    maxCount: z.number().int().min(1000).default(1_000_000),
  }),
  /** Where the prepaid guard keeps grants and relay state across reboots. */
  statePath: z.string().min(1),
  telemetry: z
    .strictObject({
      /** Plain telemetry: at most one sample per point per interval. */
      intervalMs: ms(1000, 3_600_000).default(60_000),
      /** Billing readings of each meter's energy registers (the cloud charges from them). */
      billingIntervalMs: ms(1000, 3_600_000).default(60_000),
    })
    .default({ intervalMs: 60_000, billingIntervalMs: 60_000 }),
  status: z.strictObject({ host: z.string().default("127.0.0.1"), port: z.number().int().min(0).max(65535).default(8600) }).default({ host: "127.0.0.1", port: 8600 }),
  /** Devices failing this many polls in a row are reported offline and polled more slowly. */
  offlineAfterFailures: z.number().int().min(1).max(100).default(3),
  /** Slowest poll of an offline device. */
  offlinePollMaxMs: ms(1000, 3_600_000).default(60_000),
});

export type EdgeConfig = z.output<typeof edgeConfigSchema>;
export type EdgeConfigInput = z.input<typeof edgeConfigSchema>;
export type BusConfig = EdgeConfig["buses"][number];
export type DeviceConfig = EdgeConfig["devices"][number];

const KIND_FOR_ROLE: Record<(typeof DEVICE_ROLES)[number], readonly DeviceProfile["kind"][]> = {
  meter: ["meter"],
  "relay-module": ["relay-module"],
  "fire-sensor": ["fire-sensor", "smoke-detector"],
};

/** The full schema with cross-reference checks against the known profiles. */
export function edgeConfigSchemaWith(profiles: ReadonlyMap<string, DeviceProfile>) {
  return edgeConfigSchema.superRefine((c, ctx) => {
    const buses = new Set<string>();
    c.buses.forEach((b, i) => {
      if (buses.has(b.id)) ctx.addIssue({ code: "custom", path: ["buses", i, "id"], message: `bus id ${b.id} used twice` });
      buses.add(b.id);
    });
    const devices = new Map<string, { index: number; role: string }>();
    const units = new Map<string, string>();
    c.devices.forEach((d, i) => {
      if (devices.has(d.id)) ctx.addIssue({ code: "custom", path: ["devices", i, "id"], message: `device id ${d.id} used twice` });
      devices.set(d.id, { index: i, role: d.role });
      if (!buses.has(d.bus)) ctx.addIssue({ code: "custom", path: ["devices", i, "bus"], message: `no bus ${d.bus}` });
      const key = `${d.bus}/${d.unit}`;
      const other = units.get(key);
      if (other) ctx.addIssue({ code: "custom", path: ["devices", i, "unit"], message: `unit ${d.unit} on bus ${d.bus} is already ${other}` });
      units.set(key, d.id);
      const profile = profiles.get(d.profile);
      if (!profile) {
        ctx.addIssue({ code: "custom", path: ["devices", i, "profile"], message: `unknown profile "${d.profile}"` });
        return;
      }
      if (!KIND_FOR_ROLE[d.role].includes(profile.kind)) {
        ctx.addIssue({ code: "custom", path: ["devices", i, "role"], message: `profile ${profile.id} is a ${profile.kind}, not a ${d.role}` });
      }
      for (const [j, p] of (d.points ?? []).entries()) {
        if (!profile.points.some((pt) => pt.id === p)) ctx.addIssue({ code: "custom", path: ["devices", i, "points", j], message: `profile ${profile.id} has no point ${p}` });
      }
      if (d.supply && d.role !== "meter") ctx.addIssue({ code: "custom", path: ["devices", i, "supply"], message: "only meters have a supply to cut" });
      if (d.supply?.cut.kind === "meter-relay" && !profile.writes.some((w) => w.role === "relay")) {
        ctx.addIssue({ code: "custom", path: ["devices", i, "supply", "cut", "kind"], message: `profile ${profile.id} has no relay register; use a contactor` });
      }
      if (d.role === "meter" && !profile.points.some((p) => p.role === "import_energy")) {
        ctx.addIssue({ code: "custom", path: ["devices", i, "profile"], message: `profile ${profile.id} has no import energy register to bill from` });
      }
      if (d.fire && d.role !== "fire-sensor") ctx.addIssue({ code: "custom", path: ["devices", i, "fire"], message: "only fire sensors take fire thresholds" });
      if (d.fire && d.fire.smokeClearDbPerM >= d.fire.smokeThresholdDbPerM) {
        ctx.addIssue({ code: "custom", path: ["devices", i, "fire", "smokeClearDbPerM"], message: "the clear level must be below the alarm threshold (hysteresis)" });
      }
    });
    const contactors = new Map<string, string>();
    c.devices.forEach((d, i) => {
      const cut = d.supply?.cut;
      if (cut?.kind !== "contactor") return;
      const target = devices.get(cut.device);
      if (!target) ctx.addIssue({ code: "custom", path: ["devices", i, "supply", "cut", "device"], message: `no device ${cut.device}` });
      else if (target.role !== "relay-module") ctx.addIssue({ code: "custom", path: ["devices", i, "supply", "cut", "device"], message: `${cut.device} is not a relay module` });
      else {
        const profile = profiles.get(c.devices[target.index]?.profile ?? "");
        if (profile && !profile.writes.some((w) => w.role === "relay" && w.channel === String(cut.channel))) {
          ctx.addIssue({ code: "custom", path: ["devices", i, "supply", "cut", "channel"], message: `${cut.device} has no relay channel ${cut.channel}` });
        }
      }
      const key = `${cut.device}/${cut.channel}`;
      const other = contactors.get(key);
      if (other) ctx.addIssue({ code: "custom", path: ["devices", i, "supply", "cut", "channel"], message: `channel already switches ${other}` });
      contactors.set(key, d.id);
    });
    if (c.gateway.password === undefined && c.gateway.passwordFile === undefined) {
      ctx.addIssue({ code: "custom", path: ["gateway", "password"], message: "give password or passwordFile (each gateway has its own broker credentials)" });
    }
    if (c.broker.reconnectMaxMs < c.broker.reconnectMinMs) {
      ctx.addIssue({ code: "custom", path: ["broker", "reconnectMaxMs"], message: "must be ≥ reconnectMinMs" });
    }
    if ((c.broker.certFile === undefined) !== (c.broker.keyFile === undefined)) {
      ctx.addIssue({ code: "custom", path: ["broker", "certFile"], message: "a client certificate needs both certFile and keyFile" });
    }
  });
}
