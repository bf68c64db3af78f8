import { describe, expect, it } from "vitest";
import { decodePointWords } from "../../protocols/codec/point-codec.js";
import { encodeRaw } from "../../protocols/codec/word-codec.js";
import { findProfile } from "../../protocols/profiles/index.js";
import type { Point } from "../../protocols/profiles/schema.js";
import { checkEnergy } from "./energy-check.js";

function point(profileId: string, id: string): Point {
  const p = findProfile(profileId)?.points.find((x) => x.id === id);
  if (!p) throw new Error(id);
  return p;
}

const sdm = point("eastron-sdm630-v2", "importEnergy");
const dds = point("hiking-dds238-2-zn", "importEnergy");
const opts = { maxPowerW: 76_000 };
const HOUR = 3_600_000;

const f32 = (kwh: number) => decodePointWords(sdm, encodeRaw("f32", "ABCD", kwh));
const u32 = (raw: number) => decodePointWords(dds, encodeRaw("u32", "ABCD", raw));

describe("energy register check", () => {
  it("turns a first good reading into a billing reading in whole Wh", () => {
    const v = checkEnergy(dds, u32(123_456), undefined, 0, opts);
    expect(v).toMatchObject({ kind: "billing", wh: 1_234_560, conversion: { exact: true } });
  });

  it("rounds an f32 kWh register to the nearest Wh and says so", () => {
    const v = checkEnergy(sdm, f32(1234.567), undefined, 0, opts);
    expect(v.kind).toBe("billing");
    if (v.kind === "billing") {
      expect(v.wh).toBe(1_234_567);
      expect(v.conversion.exact).toBe(false);
    }
  });

  it("reports NaN as tamper not_a_number, never billing", () => {
    const nan = decodePointWords(sdm, [0x7fc0, 0]);
    expect(checkEnergy(sdm, nan, { registerWh: 5, atMs: 0 }, 1000, opts)).toMatchObject({ kind: "tamper", tamperKind: "not_a_number" });
  });

  it("reports a register that went backwards and moves the baseline to it", () => {
    const v = checkEnergy(sdm, f32(1000), { registerWh: 1_000_500, atMs: 0 }, HOUR, opts);
    expect(v).toMatchObject({ kind: "tamper", tamperKind: "energy_backwards", registerWh: 1_000_000, baseline: { registerWh: 1_000_000, atMs: HOUR } });
  });

  it("reports a negative register", () => {
    const p = { ...sdm, type: "i32" as const };
    const r = decodePointWords(p, encodeRaw("i32", "ABCD", -5));
    expect(checkEnergy(p, r, undefined, 0, opts)).toMatchObject({ kind: "tamper", tamperKind: "energy_backwards" });
  });

  it("accepts the most a meter can draw at its maximum power in the elapsed time", () => {
    const base = { registerWh: 1_000_000, atMs: 0 };
    expect(checkEnergy(sdm, f32(1076), base, HOUR, opts).kind).toBe("billing"); // 76 kWh in an hour at 76 kW
  });

  it("reports a jump larger than the maximum power allows", () => {
    const base = { registerWh: 1_000_000, atMs: 0 };
    const v = checkEnergy(sdm, f32(1100), base, HOUR, opts);
    expect(v).toMatchObject({ kind: "tamper", tamperKind: "energy_jump" });
  });

  it("allows one register step of resolution on coarse integer registers", () => {
    const base = { registerWh: 1_234_560, atMs: 0 };
    expect(checkEnergy(dds, u32(123_457), base, 1, { maxPowerW: 100 }).kind).toBe("billing");
  });
});
