// The one suite that walks every built-in profile (ARCHITECTURE.md §5, "protocols as data"): each register map is
// checked against the schema, the Modbus limits, the role/unit table and the facts of its sources. Then the schema
// itself is shown refusing the mistakes a hand-written profile file would make, each with a path to the culprit.

import { describe, expect, it } from "vitest";
import { VALUE_TYPES } from "../codec/value-types.js";
import { BUILT_IN_PROFILES, findProfile, profileIds } from "./index.js";
import { ROLES } from "./roles.js";
import { READ_FUNCTION_CODES, profileSchema, tableOf, type DeviceProfile, type DeviceProfileInput, type Point } from "./schema.js";

function profile(id: string): DeviceProfile {
  const p = findProfile(id);
  if (p === undefined) throw new Error(`no built-in profile ${id}`);
  return p;
}

function pointOf(p: DeviceProfile, id: string): Point {
  const pt = p.points.find((x) => x.id === id);
  if (pt === undefined) throw new Error(`${p.id} has no point ${id}`);
  return pt;
}

/** Registers (or bits) a point occupies: a bool is one bit, a register type its word count. */
function span(pt: Point): number {
  return Math.max(1, VALUE_TYPES[pt.type].words);
}

describe("every built-in profile", () => {
  it("has a unique id, and findProfile/profileIds agree with BUILT_IN_PROFILES", () => {
    const ids = BUILT_IN_PROFILES.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(profileIds()).toEqual(ids);
    for (const p of BUILT_IN_PROFILES) expect(findProfile(p.id)).toBe(p);
    expect(findProfile("no-such-meter")).toBeUndefined();
  });

  for (const p of BUILT_IN_PROFILES) {
    describe(p.id, () => {
      it("passes profileSchema again, unchanged", () => {
        const again = profileSchema.safeParse(p);
        expect(again.success ? [] : again.error.issues).toEqual([]);
        expect(again.data).toEqual(p);
      });

      it("is frozen, so no caller can edit a shared register map", () => {
        expect(Object.isFrozen(p)).toBe(true);
      });

      it("cites at least one source and names a variant base that exists", () => {
        expect(p.sources.length).toBeGreaterThan(0);
        for (const s of p.sources) expect(s.trim().length).toBeGreaterThan(0);
        if (p.variantOf !== undefined) {
          expect(findProfile(p.variantOf)).toBeDefined();
          expect(p.variantOf).not.toBe(p.id);
        }
      });

      it("has no two points on the same register or bit (bit flags of one u16 excepted)", () => {
        const owners = new Map<string, Point[]>();
        for (const pt of p.points) {
          for (let a = pt.address; a < pt.address + span(pt); a++) {
            const key = `${tableOf(pt.fc)}:${a}`;
            owners.set(key, [...(owners.get(key) ?? []), pt]);
          }
        }
        for (const [key, pts] of owners) {
          if (pts.length < 2) continue;
          const bits = pts.map((x) => x.bit);
          expect(bits.every((b) => b !== undefined), `${key} shared by ${pts.map((x) => x.id).join(", ")}`).toBe(true);
          expect(new Set(bits).size, `${key} flags repeat a bit`).toBe(bits.length);
        }
      });

      it("fits every point in one request under the device's limits, on an even address where the device needs pairs", () => {
        for (const pt of p.points) {
          const fcInfo = READ_FUNCTION_CODES[pt.fc];
          expect(fcInfo.bits, `${pt.id}: bool ⇔ bit function code`).toBe(pt.type === "bool");
          expect(pt.address + span(pt) - 1, `${pt.id} runs past 65535`).toBeLessThanOrEqual(0xffff);
          if (fcInfo.bits) {
            expect(1).toBeLessThanOrEqual(p.limits.maxBitsPerRead);
            continue;
          }
          // An even-aligned device reads in pairs, so a one-register point still costs a two-register request.
          const readSpan = p.limits.evenAlignment ? span(pt) + (span(pt) % 2) : span(pt);
          expect(readSpan, `${pt.id} needs ${readSpan} registers`).toBeLessThanOrEqual(Math.min(p.limits.maxRegistersPerRead, fcInfo.maxCount));
          if (p.limits.evenAlignment) expect(pt.address % 2, `${pt.id} at odd address 0x${pt.address.toString(16)}`).toBe(0);
        }
        if (p.limits.evenAlignment) expect(p.limits.maxRegistersPerRead % 2).toBe(0);
      });

      it("expresses every point in a unit its role allows (roles.ts ROLES)", () => {
        for (const pt of p.points) {
          const allowed: readonly string[] = ROLES[pt.role].units;
          expect(allowed, `${pt.id}: ${pt.role} in ${pt.unit}`).toContain(pt.unit);
        }
      });

      it("uses each role + channel once, and each point id once", () => {
        const keys = p.points.map((pt) => `${pt.role}/${pt.channel ?? ""}`);
        expect(new Set(keys).size).toBe(keys.length);
        const ids = p.points.map((pt) => pt.id);
        expect(new Set(ids).size).toBe(ids.length);
      });

      it("has valid write targets: relays with distinct open/closed values, commands with a value, read-backs that exist", () => {
        const channels = p.writes.map((w) => `${w.role}/${w.channel ?? ""}`);
        expect(new Set(channels).size).toBe(channels.length);
        for (const w of p.writes) {
          if (w.role === "relay") {
            expect(w.openValue).toBeDefined();
            expect(w.closedValue).toBeDefined();
            expect(w.openValue).not.toBe(w.closedValue);
          } else {
            expect(w.commandValue).toBeDefined();
          }
          if (w.fc === 5 || w.fc === 15) {
            for (const v of [w.openValue, w.closedValue]) if (v !== undefined) expect([0, 1]).toContain(v);
          }
          if (w.fc === 16) expect(p.limits.maxWriteRegisters).toBeGreaterThanOrEqual(1);
          if (w.readBack !== undefined) {
            const back = pointOf(p, w.readBack);
            // The read-back must read the table the write went to (a coil for FC 05/15, a holding register for 06/16).
            expect(tableOf(back.fc)).toBe(tableOf(w.fc));
            expect(back.address).toBe(w.address);
            if (w.role === "relay") expect(back.role).toBe("relay_state");
          }
        }
      });

      if (p.kind === "meter") {
        it("is a meter with an import energy register, a maximum power and a phase count", () => {
          const imports = p.points.filter((pt) => pt.role === "import_energy");
          expect(imports.length).toBeGreaterThanOrEqual(1);
          for (const pt of imports) expect(["Wh", "kWh", "MWh"]).toContain(pt.unit);
          expect(p.maxPowerW).toBeGreaterThan(0);
          expect([1, 3]).toContain(p.phases);
        });
      }

      if (p.kind === "fire-sensor" || p.kind === "smoke-detector") {
        it("is a fire or smoke sensor with a smoke alarm flag", () => {
          const smoke = p.points.filter((pt) => pt.role === "smoke_alarm");
          expect(smoke).toHaveLength(1);
          expect(smoke[0]?.unit).toBe("1");
        });
      }
    });
  }
});

describe("facts from the manuals", () => {
  it("SDM120: import energy is input register 0x0048 (30073), f32 ABCD, kWh (Eastron V2.5)", () => {
    expect(pointOf(profile("eastron-sdm120"), "importEnergy")).toMatchObject({ role: "import_energy", fc: 4, address: 0x0048, type: "f32", wordOrder: "ABCD", scale: 1, unit: "kWh" });
    expect(profile("eastron-sdm120").serial).toMatchObject({ baud: 2400, parity: "none", stopBits: 1, unitId: 1 });
  });

  it("SDM630: at most 40 values = 80 registers per request, in pairs (Eastron 2018 v2.0 §1.1)", () => {
    expect(profile("eastron-sdm630-v2").limits).toMatchObject({ maxRegistersPerRead: 80, evenAlignment: true });
    expect(profile("eastron-sdm630-v2").phases).toBe(3);
  });

  it("DTSU666: currents are f32 × 0.001 A; the 0x4000 variant reads import energy at input 0x4000 with FC 04", () => {
    const dtsu = profile("chint-dtsu666");
    for (const ch of ["L1", "L2", "L3"]) expect(pointOf(dtsu, `current${ch}`)).toMatchObject({ type: "f32", scale: 0.001, unit: "A" });
    expect(pointOf(dtsu, "importEnergy")).toMatchObject({ fc: 3, address: 0x101e });
    const variant = profile("chint-dtsu666-4000");
    expect(variant.variantOf).toBe("chint-dtsu666");
    expect(pointOf(variant, "importEnergy")).toMatchObject({ fc: 4, address: 0x4000, type: "f32", unit: "kWh" });
    for (const pt of variant.points) expect(pt.fc).toBe(4);
  });

  it("DDS238: the relay is holding register 0x001A, written with FC 16 only (the meter ignores FC 06)", () => {
    const dds = profile("hiking-dds238-2-zn");
    const relays = dds.writes.filter((w) => w.role === "relay");
    expect(relays).toHaveLength(1);
    expect(relays[0]).toMatchObject({ fc: 16, address: 0x001a, openValue: 0, closedValue: 1, readBack: "relay" });
    expect(dds.writes.every((w) => w.fc === 16)).toBe(true);
    expect(dds.limits.maxWriteRegisters).toBe(1);
    expect(pointOf(dds, "importEnergy")).toMatchObject({ fc: 3, address: 0x000a, type: "u32", scale: 0.01, unit: "kWh" });
  });

  it("Calectro UG-3-O-MB-R: smoke alarm is discrete input 2 (1x0003); reset writes 234 to holding 0", () => {
    const cal = profile("calectro-ug-3-o-mb-r");
    expect(pointOf(cal, "smokeAlarm")).toMatchObject({ role: "smoke_alarm", fc: 2, address: 2, type: "bool" });
    expect(cal.writes.find((w) => w.role === "alarm_reset")).toMatchObject({ fc: 6, address: 0, commandValue: 234 });
  });

  it("agri-fire-node: smoke density is u16 × 0.001 dB/m, so the EN 54-7 threshold 0.05 dB/m is raw 50", () => {
    const node = profile("agri-fire-node");
    expect(pointOf(node, "smokeDensity")).toMatchObject({ role: "smoke_density", fc: 4, type: "u16", scale: 0.001, unit: "dB/m" });
    expect(pointOf(node, "alarmThreshold")).toMatchObject({ scale: 0.001, unit: "dB/m", poll: false });
    expect(50 / 1000).toBe(0.05);
    expect(pointOf(node, "smokeAlarm")).toMatchObject({ fc: 2, address: 0, type: "bool" });
  });
});

// ─── the schema refuses bad profiles, pointing at the field ──────────────────────────────────────────────────────

const validInput = {
  id: "test-meter",
  manufacturer: "test",
  model: "T-1",
  kind: "meter",
  description: "A minimal valid meter to mutate.",
  sources: ["this test"],
  confidence: "own-design",
  serial: { baud: 9600, parity: "none", stopBits: 1, unitId: 1 },
  limits: { maxRegistersPerRead: 80, evenAlignment: true },
  maxPowerW: 11_000,
  phases: 1,
  points: [
    { id: "voltage", role: "voltage", fc: 4, type: "f32", address: 0x0000, unit: "V", description: "voltage" },
    { id: "importEnergy", role: "import_energy", fc: 4, type: "f32", address: 0x0048, unit: "kWh", description: "import energy" },
    { id: "relay", role: "relay_state", fc: 3, type: "u16", address: 0x001a, unit: "1", description: "relay" },
  ],
  writes: [{ role: "relay", fc: 16, address: 0x001a, openValue: 0, closedValue: 1, readBack: "relay", description: "relay" }],
} as const satisfies DeviceProfileInput;

type PointIn = DeviceProfileInput["points"][number];
type WriteIn = NonNullable<DeviceProfileInput["writes"]>[number];

function withPoints(...extra: PointIn[]): DeviceProfileInput {
  return { ...validInput, points: [...validInput.points, ...extra] };
}

function issuePaths(input: unknown): string[] {
  const r = profileSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => i.path.map(String).join("."));
}

describe("profileSchema refuses", () => {
  it("nothing in the valid base profile", () => {
    expect(issuePaths(validInput)).toEqual([]);
  });

  it("two points on overlapping registers, at the second point's address", () => {
    // f32 at 0x0048-0x0049 and a u16 at 0x0049 (odd addresses are fine for this check: alignment off).
    const input = { ...withPoints({ id: "overlap", role: "frequency", fc: 4, type: "u16", address: 0x0049, unit: "Hz", description: "overlaps import energy" }), limits: { evenAlignment: false } };
    expect(issuePaths(input)).toEqual(["points.3.address"]);
  });

  it("two flags on the same bit of one register, even with another flag between them", () => {
    const flag = (id: string, channel: string, bit: number): PointIn => ({ id, role: "fault", channel, fc: 3, type: "u16", address: 0x0020, bit, unit: "1", description: id });
    expect(issuePaths(withPoints(flag("f0", "a", 0), flag("f1", "b", 1), flag("f2", "c", 2)))).toEqual([]);
    expect(issuePaths(withPoints(flag("f0", "a", 0), flag("f1", "b", 1), flag("f0again", "c", 0)))).toEqual(["points.5.address"]);
  });

  it("a role used twice on the same channel, at the second point's role", () => {
    expect(issuePaths(withPoints({ id: "voltage2", role: "voltage", fc: 4, type: "f32", address: 0x0002, unit: "V", description: "again" }))).toEqual(["points.3.role"]);
  });

  it("an odd address on a device that reads register pairs, at that address", () => {
    expect(issuePaths(withPoints({ id: "frequency", role: "frequency", fc: 4, type: "f32", address: 0x0045, unit: "Hz", description: "odd" }))).toEqual(["points.3.address"]);
  });

  it("a bool on FC 03, at its type", () => {
    expect(issuePaths(withPoints({ id: "alarm", role: "smoke_alarm", fc: 3, type: "bool", address: 0x0030, unit: "1", description: "bool on holding" }))).toEqual(["points.3.type"]);
  });

  it("a u16 on FC 02, at its type", () => {
    expect(issuePaths(withPoints({ id: "alarm", role: "smoke_alarm", fc: 2, type: "u16", address: 0, unit: "1", description: "register on discrete inputs" }))).toEqual(["points.3.type"]);
  });

  it("a relay target without openValue, at openValue", () => {
    const { openValue: _omitted, ...noOpen } = validInput.writes[0];
    const input: DeviceProfileInput = { ...validInput, writes: [noOpen satisfies WriteIn] };
    expect(issuePaths(input)).toEqual(["writes.0.openValue"]);
  });

  it("a read-back naming a point that does not exist, at readBack", () => {
    expect(issuePaths({ ...validInput, writes: [{ ...validInput.writes[0], readBack: "relayState" }] })).toEqual(["writes.0.readBack"]);
  });

  it("a unit its role does not allow (import energy in volts), at the unit", () => {
    const points = validInput.points.map((pt): PointIn => (pt.id === "importEnergy" ? { ...pt, unit: "V" } : pt));
    expect(issuePaths({ ...validInput, points })).toEqual(["points.1.unit"]);
  });

  it("a scale of 0.3 (not a power of ten), at the scale", () => {
    const points = validInput.points.map((pt): PointIn => (pt.id === "voltage" ? { ...pt, scale: 0.3 } : pt));
    expect(issuePaths({ ...validInput, points })).toEqual(["points.0.scale"]);
  });

  it("a point larger than one request (a u64 on a device that reads 2 registers at a time), at its type", () => {
    const input = { ...withPoints({ id: "serial", role: "serial_number", fc: 3, type: "u64", address: 0x0100, unit: "1", description: "serial" }), limits: { maxRegistersPerRead: 2, evenAlignment: true } };
    expect(issuePaths(input)).toEqual(["points.3.type"]);
  });
});
