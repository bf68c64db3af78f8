// The scenario file: a simulated field as data — clock, buses (Modbus TCP ports or RTU ptys), devices with their
// unit ids and profiles, loads, fires and faults. Validated with zod in one pass; every error comes back with its
// path (devices[3].unit: unit 1 already used on bus field-north by pump-zhang).

import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { AgriError } from "../protocols/errors.js";
import { BUILT_IN_PROFILES } from "../protocols/profiles/index.js";
import { profileSchema, type DeviceProfile } from "../protocols/profiles/schema.js";
import { issuesToText } from "../protocols/validation.js";
import { faultSchema } from "./modbus/faults.js";

const id = z.string().regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, "ids are kebab-case: lowercase letters, digits, hyphens");
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "times are HH:MM (24 h, Asia/Shanghai)");

export const loadSchema = z.discriminatedUnion("kind", [
  z
    .object({
      kind: z.literal("pump"),
      ratedW: z.number().positive().max(200_000),
      schedule: z.array(z.object({ from: hhmm, to: hhmm }).strict()).min(1).max(16),
      days: z.array(z.number().int().min(0).max(6)).min(1).max(7).optional(),
    })
    .strict(),
  z.object({ kind: z.literal("constant"), watts: z.number().min(0).max(200_000) }).strict(),
  z.object({ kind: z.literal("household"), baseW: z.number().min(0).max(20_000), peakW: z.number().min(0).max(20_000) }).strict(),
]);

const fireScriptSchema = z
  .object({
    /** Seconds of simulated time after the scenario's start. */
    atS: z.number().min(0),
    durationS: z.number().positive().optional(),
    smokeRiseDbPerMPerMin: z.number().positive().max(10).optional(),
    maxSmokeDbPerM: z.number().positive().max(65).optional(),
    tempRiseCPerMin: z.number().min(0).max(100).optional(),
    maxTempC: z.number().max(300).optional(),
  })
  .strict();

const meterSectionSchema = z
  .object({
    loads: z.array(loadSchema).max(16).default([]),
    initialImportWh: z.number().int().min(0).default(0),
    rolloverWh: z.number().int().positive().optional(),
    relayClosed: z.boolean().default(true),
    /** The contactor that switches this meter's supply: a relay-module device and its channel (1-based). */
    contactor: z.object({ device: id, channel: z.number().int().min(1).max(8) }).strict().optional(),
  })
  .strict();

const fireSectionSchema = z
  .object({
    ambientC: z.number().min(-40).max(50).default(18),
    dailySwingC: z.number().min(0).max(25).default(6),
    humidityPct: z.number().min(0).max(100).default(60),
    batteryMv: z.number().int().min(2500).max(4500).default(3900),
    drainMvPerDay: z.number().min(0).max(500).default(4),
    smokeNoiseDbPerM: z.number().min(0).max(0.05).default(0.002),
    fires: z.array(fireScriptSchema).max(100).default([]),
  })
  .strict();

const deviceSchema = z
  .object({
    id,
    bus: id,
    unit: z.number().int().min(1).max(247),
    profile: z.string().min(1),
    /** Where the device stands (WGS-84), for maps; optional. */
    location: z.object({ lat: z.number().min(-90).max(90), lon: z.number().min(-180).max(180) }).strict().optional(),
    description: z.string().max(200).optional(),
    meter: meterSectionSchema.optional(),
    fire: fireSectionSchema.optional(),
    relayModule: z.object({ initiallyOn: z.boolean().default(true) }).strict().optional(),
    faults: z.array(faultSchema).max(20).default([]),
    dead: z.boolean().default(false),
    /** Answer ILLEGAL DATA ADDRESS for reads that bridge unmapped registers. */
    holesAreIllegal: z.boolean().default(false),
  })
  .strict();

const busSchema = z
  .object({
    id,
    tcp: z.object({ host: z.string().min(1).default("127.0.0.1"), port: z.number().int().min(0).max(65535) }).strict().optional(),
    rtu: z
      .object({
        path: z.string().min(1),
        baud: z.number().int().min(300).max(921_600).default(9600),
        parity: z.enum(["none", "even", "odd"]).default("none"),
        stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
        /** Answer at the true frame time of the baud rate (for throughput measurements). */
        lineTiming: z.boolean().default(false),
        turnaroundMs: z.number().min(0).max(1000).default(0),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((b) => (b.tcp === undefined) !== (b.rtu === undefined), { message: "a bus has exactly one of tcp or rtu" });

const scenarioShape = z
  .object({
    name: z.string().min(1).max(100),
    description: z.string().max(2000).optional(),
    seed: z.number().int().default(1),
    clock: z
      .object({
        start: z.iso.datetime({ offset: true }).default("2026-06-01T05:55:00+08:00"),
        /** Simulated seconds per real second (86400 = a day per second; a season in about 100 s). */
        speed: z.number().min(0).max(10_000_000).default(1),
        tickMs: z.number().int().min(10).max(10_000).default(100),
      })
      .strict()
      .default({ start: "2026-06-01T05:55:00+08:00", speed: 1, tickMs: 100 }),
    buses: z.array(busSchema).min(1).max(64),
    devices: z.array(deviceSchema).min(1).max(2048),
  })
  .strict();

export type Scenario = z.output<typeof scenarioShape>;
export type ScenarioInput = z.input<typeof scenarioShape>;
export type ScenarioDevice = Scenario["devices"][number];
export type ScenarioBus = Scenario["buses"][number];

export class ScenarioError extends AgriError {
  constructor(
    message: string,
    readonly issues: readonly { path: readonly PropertyKey[]; message: string }[],
  ) {
    super("SIM_SCENARIO_INVALID", false, `${message}\n${issuesToText(issues)}`);
  }
}

/** Validate a scenario against the known profiles, reporting every problem with its path. */
export function parseScenario(input: unknown, profiles: ReadonlyMap<string, DeviceProfile> = builtInProfileMap()): Scenario {
  const schema = scenarioShape.superRefine((s, ctx) => {
    const busIds = new Map<string, number>();
    s.buses.forEach((b, i) => {
      if (busIds.has(b.id)) ctx.addIssue({ code: "custom", path: ["buses", i, "id"], message: `bus id ${b.id} used twice` });
      busIds.set(b.id, i);
    });
    const tcpPorts = new Map<string, string>();
    const rtuPaths = new Map<string, string>();
    s.buses.forEach((b, i) => {
      if (b.tcp && b.tcp.port !== 0) {
        const key = `${b.tcp.host}:${b.tcp.port}`;
        const other = tcpPorts.get(key);
        if (other) ctx.addIssue({ code: "custom", path: ["buses", i, "tcp", "port"], message: `${key} already used by bus ${other}` });
        tcpPorts.set(key, b.id);
      }
      if (b.rtu) {
        const other = rtuPaths.get(b.rtu.path);
        if (other) ctx.addIssue({ code: "custom", path: ["buses", i, "rtu", "path"], message: `${b.rtu.path} already used by bus ${other}` });
        rtuPaths.set(b.rtu.path, b.id);
      }
    });
    const deviceIds = new Map<string, ScenarioDevice>();
    const units = new Map<string, string>();
    s.devices.forEach((d, i) => {
      if (deviceIds.has(d.id)) ctx.addIssue({ code: "custom", path: ["devices", i, "id"], message: `device id ${d.id} used twice` });
      deviceIds.set(d.id, d);
      if (!busIds.has(d.bus)) ctx.addIssue({ code: "custom", path: ["devices", i, "bus"], message: `no bus ${d.bus}` });
      const key = `${d.bus}/${d.unit}`;
      const other = units.get(key);
      if (other) ctx.addIssue({ code: "custom", path: ["devices", i, "unit"], message: `unit ${d.unit} already used on bus ${d.bus} by ${other}` });
      units.set(key, d.id);
      const profile = profiles.get(d.profile);
      if (!profile) {
        ctx.addIssue({ code: "custom", path: ["devices", i, "profile"], message: `unknown profile "${d.profile}" (known: ${[...profiles.keys()].join(", ")})` });
        return;
      }
      const isMeter = profile.kind === "meter";
      const isFire = profile.kind === "fire-sensor" || profile.kind === "smoke-detector";
      if (d.meter && !isMeter) ctx.addIssue({ code: "custom", path: ["devices", i, "meter"], message: `profile ${profile.id} is a ${profile.kind}, not a meter` });
      if (d.fire && !isFire) ctx.addIssue({ code: "custom", path: ["devices", i, "fire"], message: `profile ${profile.id} is a ${profile.kind}, not a fire sensor` });
      if (d.relayModule && profile.kind !== "relay-module") ctx.addIssue({ code: "custom", path: ["devices", i, "relayModule"], message: `profile ${profile.id} is not a relay module` });
    });
    s.devices.forEach((d, i) => {
      const c = d.meter?.contactor;
      if (!c) return;
      const target = deviceIds.get(c.device);
      if (!target) ctx.addIssue({ code: "custom", path: ["devices", i, "meter", "contactor", "device"], message: `no device ${c.device}` });
      else if (profiles.get(target.profile)?.kind !== "relay-module") {
        ctx.addIssue({ code: "custom", path: ["devices", i, "meter", "contactor", "device"], message: `${c.device} is not a relay module` });
      }
    });
  });
  const result = schema.safeParse(input);
  if (!result.success) throw new ScenarioError("scenario is invalid:", result.error.issues);
  return result.data;
}

export function builtInProfileMap(extra: readonly DeviceProfile[] = []): Map<string, DeviceProfile> {
  return new Map([...BUILT_IN_PROFILES, ...extra].map((p) => [p.id, p]));
}

/** Read a YAML or JSON file; syntax errors come back as a ScenarioError naming the file. */
export function readStructuredFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ScenarioError(`cannot read ${path}:`, [{ path: [], message: (err as Error).message }]);
  }
  try {
    return extname(path) === ".json" ? (JSON.parse(text) as unknown) : (parseYaml(text) as unknown);
  } catch (err) {
    throw new ScenarioError(`${path} is not valid ${extname(path) === ".json" ? "JSON" : "YAML"}:`, [{ path: [], message: (err as Error).message }]);
  }
}

/** Load a device profile file (YAML or JSON) through the profile schema. */
export function loadProfileFile(path: string): DeviceProfile {
  const result = profileSchema.safeParse(readStructuredFile(path));
  if (!result.success) throw new ScenarioError(`profile file ${path} is invalid:`, result.error.issues);
  return result.data;
}
