// The zod schema of a device profile: a Modbus register map as data. One profile describes one device model —
// its points (what to read, where, how to decode), its write targets (relay, reset), its serial defaults and the
// request limits the device enforces. Every profile, built-in or loaded from a file, passes through this schema.

import { z } from "zod";
import { VALUE_TYPE_NAMES, VALUE_TYPES, WORD_ORDERS } from "../codec/value-types.js";
import { QUANTITY_LIMITS } from "../modbus/pdu.js";
import { ROLE_NAMES, ROLES, UNIT_NAMES, WRITE_ROLES } from "./roles.js";

/** Modbus Application Protocol v1.1b3 §6: the four read function codes and the tables they address. */
export const READ_FUNCTION_CODES = {
  1: { table: "coils", bits: true, maxCount: QUANTITY_LIMITS[1] },
  2: { table: "discrete inputs", bits: true, maxCount: QUANTITY_LIMITS[2] },
  3: { table: "holding registers", bits: false, maxCount: QUANTITY_LIMITS[3] },
  4: { table: "input registers", bits: false, maxCount: QUANTITY_LIMITS[4] },
} as const;
export type ReadFunctionCode = keyof typeof READ_FUNCTION_CODES;

const readFc = z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]);
const address = z.number().int().min(0).max(0xffff);

/** Scales are powers of ten (every meter we know uses decimal scaling), so conversion to integer Wh can be exact. */
export const scaleSchema = z
  .number()
  .positive()
  .refine((s) => scaleExponent(s) !== undefined, {
    message: "scale must be a power of ten between 1e-6 and 1e6",
  });

const POWERS_OF_TEN = Array.from({ length: 13 }, (_, i) => [10 ** (i - 6), i - 6] as const);

/** The k of a scale 10^k (k in -6..6), or undefined when the scale is not a power of ten. */
export function scaleExponent(scale: number): number | undefined {
  if (scale === 1) return 0;
  for (const [power, k] of POWERS_OF_TEN) if (Math.abs(scale - power) <= power * 1e-12) return k;
  return undefined;
}

export const pointSchema = z
  .object({
    id: z.string().regex(/^[a-z][a-zA-Z0-9]*$/, "point ids are camelCase"),
    role: z.enum(ROLE_NAMES),
    /** Phase (L1/L2/L3) or channel number, to tell apart points that share a role. */
    channel: z.string().min(1).optional(),
    fc: readFc,
    address,
    type: z.enum(VALUE_TYPE_NAMES),
    wordOrder: z.enum(WORD_ORDERS).default("ABCD"),
    scale: scaleSchema.default(1),
    unit: z.enum(UNIT_NAMES),
    /** For bit-field registers: which bit of a u16 carries a flag (0 = least significant). */
    bit: z.number().int().min(0).max(15).optional(),
    description: z.string().min(1),
    /** Whether the point is worth reading in a normal poll (configuration registers are not). */
    poll: z.boolean().default(true),
  })
  .superRefine((p, ctx) => {
    const bitFc = READ_FUNCTION_CODES[p.fc].bits;
    if (bitFc && p.type !== "bool") ctx.addIssue({ code: "custom", path: ["type"], message: `FC ${p.fc} reads bits: type must be bool` });
    if (!bitFc && p.type === "bool") ctx.addIssue({ code: "custom", path: ["type"], message: `FC ${p.fc} reads registers: bool needs FC 01 or 02` });
    if (p.bit !== undefined && p.type !== "u16") ctx.addIssue({ code: "custom", path: ["bit"], message: "bit selects a flag inside a u16 register" });
    // roles.ts ROLES: a role fixes what the value means, so its unit set is closed (the edge bills import_energy
    // assuming an energy unit; a profile loaded from a file must not be able to say "V").
    const allowedUnits: readonly string[] = ROLES[p.role].units;
    if (!allowedUnits.includes(p.unit)) ctx.addIssue({ code: "custom", path: ["unit"], message: `role ${p.role} is expressed in ${allowedUnits.join(", ")}, not ${p.unit}` });
  });
export type Point = z.output<typeof pointSchema>;
export type PointInput = z.input<typeof pointSchema>;

export const writeTargetSchema = z
  .object({
    role: z.enum(WRITE_ROLES),
    channel: z.string().min(1).optional(),
    /** 05 write single coil, 06 write single register, 15 write multiple coils, 16 write multiple registers. */
    fc: z.union([z.literal(5), z.literal(6), z.literal(15), z.literal(16)]),
    address,
    /** For a relay: the value that opens the supply (cuts power) and the one that closes it. */
    openValue: z.number().int().min(0).max(0xffff).optional(),
    closedValue: z.number().int().min(0).max(0xffff).optional(),
    /** For a command (reset, self-test): the value to write. */
    commandValue: z.number().int().min(0).max(0xffff).optional(),
    /** Point id to read back after writing, to verify the write took effect. */
    readBack: z.string().optional(),
    description: z.string().min(1),
  })
  .superRefine((w, ctx) => {
    if (w.role === "relay" && (w.openValue === undefined || w.closedValue === undefined)) {
      ctx.addIssue({ code: "custom", path: ["openValue"], message: "a relay target needs openValue and closedValue" });
    }
    if (w.role !== "relay" && w.commandValue === undefined) {
      ctx.addIssue({ code: "custom", path: ["commandValue"], message: "a command target needs commandValue" });
    }
    if ((w.fc === 5 || w.fc === 15) && w.role === "relay" && (w.openValue! > 1 || w.closedValue! > 1)) {
      ctx.addIssue({ code: "custom", path: ["openValue"], message: "coil targets take 0 or 1 (sent as 0x0000/0xFF00)" });
    }
  });
export type WriteTarget = z.output<typeof writeTargetSchema>;

export const serialSchema = z.object({
  baud: z.union([z.literal(1200), z.literal(2400), z.literal(4800), z.literal(9600), z.literal(19200), z.literal(38400), z.literal(57600), z.literal(115200)]),
  parity: z.enum(["none", "even", "odd"]),
  stopBits: z.union([z.literal(1), z.literal(2)]),
  dataBits: z.literal(8).default(8),
  unitId: z.number().int().min(1).max(247),
});
export type SerialDefaults = z.output<typeof serialSchema>;

export const limitsSchema = z.object({
  /** Most registers one FC 03/04 request may ask for (spec: 125; Eastron: 80). */
  maxRegistersPerRead: z.number().int().min(1).max(125).default(125),
  /** Most bits one FC 01/02 request may ask for (spec: 2000). */
  maxBitsPerRead: z.number().int().min(1).max(2000).default(2000),
  /** Eastron: "read/write in register pairs" — start address and count must be even. */
  evenAlignment: z.boolean().default(false),
  /** Most registers one FC 16 request may write (spec: 123, §6.12; DDS238: 1). */
  maxWriteRegisters: z.number().int().min(1).max(123).default(123),
  /** Largest gap of unused registers worth reading through to save a request (0 = never bridge). */
  maxBridgeGap: z.number().int().min(0).max(125).default(8),
});
export type DeviceLimits = z.output<typeof limitsSchema>;

export const DEVICE_KINDS = ["meter", "relay-module", "fire-sensor", "smoke-detector"] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];

export const profileSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, "profile ids are kebab-case"),
    manufacturer: z.string().min(1),
    model: z.string().min(1),
    kind: z.enum(DEVICE_KINDS),
    description: z.string().min(1),
    /** Where every address came from (short citations; see ../shared/reference/device-register-maps.md). */
    sources: z.array(z.string().min(1)).min(1),
    /** How sure we are of the map: verified = vendor document or two independent implementations agree. */
    confidence: z.enum(["verified", "partial", "own-design"]),
    serial: serialSchema,
    limits: limitsSchema.default({ maxRegistersPerRead: 125, maxBitsPerRead: 2000, evenAlignment: false, maxWriteRegisters: 123, maxBridgeGap: 8 }),
    /** For meters: the largest power the meter can carry (Imax × Un × phases), used to reject impossible energy jumps. */
    maxPowerW: z.number().int().positive().optional(),
    /** Phases metered (1 or 3) for meters. */
    phases: z.union([z.literal(1), z.literal(3)]).optional(),
    /** Another profile this one is a variant of (e.g. DTSU666 firmware with energy at 0x4000). */
    variantOf: z.string().optional(),
    points: z.array(pointSchema).min(1),
    writes: z.array(writeTargetSchema).default([]),
  })
  .superRefine((p, ctx) => {
    const seen = new Map<string, number>();
    p.points.forEach((pt, i) => {
      const key = `${pt.role}/${pt.channel ?? ""}`;
      const prev = seen.get(key);
      if (prev !== undefined) ctx.addIssue({ code: "custom", path: ["points", i, "role"], message: `role ${key} already used by points[${prev}]` });
      seen.set(key, i);
    });
    const ids = new Set<string>();
    p.points.forEach((pt, i) => {
      if (ids.has(pt.id)) ctx.addIssue({ code: "custom", path: ["points", i, "id"], message: `duplicate point id ${pt.id}` });
      ids.add(pt.id);
    });
    p.writes.forEach((w, i) => {
      if (w.readBack !== undefined && !ids.has(w.readBack)) {
        ctx.addIssue({ code: "custom", path: ["writes", i, "readBack"], message: `no point ${w.readBack}` });
      }
    });
    // Overlap check: two points may share a register only when both are bit flags of the same u16.
    // Every earlier owner of a register is kept, not just the last one: flags on bits 0, 1, 0 of one register must
    // still clash on bit 0.
    const owners = new Map<string, { index: number; bit: number | undefined }[]>();
    p.points.forEach((pt, i) => {
      const span = Math.max(1, VALUE_TYPES[pt.type].words);
      for (let a = pt.address; a < pt.address + span; a++) {
        const key = `${tableOf(pt.fc)}:${a}`;
        const previous = owners.get(key) ?? [];
        const prev = previous.find((o) => o.bit === undefined || pt.bit === undefined || o.bit === pt.bit);
        if (prev) {
          ctx.addIssue({ code: "custom", path: ["points", i, "address"], message: `register ${a} (FC ${pt.fc}) overlaps points[${prev.index}]` });
        }
        owners.set(key, [...previous, { index: i, bit: pt.bit }]);
      }
      if (pt.address + span - 1 > 0xffff) ctx.addIssue({ code: "custom", path: ["points", i, "address"], message: "point runs past register 65535" });
      if (p.limits.evenAlignment && VALUE_TYPES[pt.type].words > 0 && pt.address % 2 !== 0) {
        ctx.addIssue({ code: "custom", path: ["points", i, "address"], message: "device reads register pairs only: address must be even" });
      }
      if (span > p.limits.maxRegistersPerRead) ctx.addIssue({ code: "custom", path: ["points", i, "type"], message: "point larger than one request" });
    });
  });
export type DeviceProfile = z.output<typeof profileSchema>;
export type DeviceProfileInput = z.input<typeof profileSchema>;

/** FC 01 and 05/15 address coils; 03 and 06/16 address holding registers: they share one table each. */
export function tableOf(fc: number): "coil" | "discrete" | "holding" | "input" {
  if (fc === 1 || fc === 5 || fc === 15) return "coil";
  if (fc === 2) return "discrete";
  if (fc === 3 || fc === 6 || fc === 16) return "holding";
  return "input";
}

export function defineProfile(input: DeviceProfileInput): DeviceProfile {
  return Object.freeze(profileSchema.parse(input));
}
