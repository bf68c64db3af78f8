import { describe, expect, it } from "vitest";
import { decodePointWords } from "../../protocols/codec/point-codec.js";
import { findProfile } from "../../protocols/profiles/index.js";
import type { DeviceProfile } from "../../protocols/profiles/schema.js";
import { MeterModel, type MeterOptions } from "./meter.js";
import { seededRandom } from "./random.js";

const HOUR = 3_600_000;
// 2026-06-01 06:00 Asia/Shanghai = 2026-05-31T22:00Z
const SIX_AM = Date.parse("2026-06-01T06:00:00+08:00");

function profile(id: string): DeviceProfile {
  const p = findProfile(id);
  if (!p) throw new Error(id);
  return p;
}

function meter(id: string, opts: Partial<MeterOptions> = {}): MeterModel {
  return new MeterModel({ id: "m", profile: profile(id), loads: [{ kind: "constant", watts: 7500 }], random: seededRandom(1), ...opts });
}

function readPoint(m: MeterModel, pointId: string): number {
  const p = m.bank.point(pointId);
  const table = p.fc === 3 ? "holding" : "input";
  const r = decodePointWords(p, m.bank.readWords(table, p.address, p.type === "u16" || p.type === "i16" ? 1 : 2));
  if (!r.ok) throw new Error(r.code);
  return r.value;
}

describe("meter model", () => {
  it("raises the SDM630 import register by 7.5 kWh for a 7.5 kW pump running one hour", () => {
    const m = meter("eastron-sdm630-v2", { initialImportWh: 1_000_000 });
    m.step(HOUR, SIX_AM + HOUR);
    expect(readPoint(m, "importEnergy")).toBeCloseTo(1007.5, 2);
    expect(readPoint(m, "totalActivePower")).toBeCloseTo(7500, 0);
    expect(readPoint(m, "activePowerL1")).toBeCloseTo(2500, 0);
  });

  it("runs a scheduled pump only inside its Asia/Shanghai window", () => {
    const m = meter("eastron-sdm120", { loads: [{ kind: "pump", ratedW: 2000, schedule: [{ from: "06:00", to: "07:00" }] }] });
    m.step(24 * HOUR, SIX_AM - HOUR + 24 * HOUR); // 05:00 → 05:00 next day
    expect(Math.round(m.importWh)).toBe(2000);
  });

  it("stops the register rising while its own relay is open, and resumes when closed", () => {
    const m = meter("hiking-dds238-2-zn");
    expect(m.write("holding", 0x001a, [0]).exception).toBeUndefined();
    m.step(HOUR, SIX_AM + HOUR);
    expect(m.importWh).toBe(0);
    expect(readPoint(m, "relay")).toBe(0);
    m.write("holding", 0x001a, [1]);
    m.step(HOUR, SIX_AM + 2 * HOUR);
    expect(readPoint(m, "importEnergy")).toBe(7.5); // 750 steps of 0.01 kWh
    expect(readPoint(m, "relay")).toBe(1);
  });

  it("refuses a relay value that is neither open nor closed with exception 03", () => {
    expect(meter("hiking-dds238-2-zn").write("holding", 0x001a, [7]).exception).toBe(3);
  });

  it("refuses writes to registers that are not write targets with exception 02", () => {
    expect(meter("hiking-dds238-2-zn").write("holding", 0x000a, [0]).exception).toBe(2);
    expect(meter("eastron-sdm120").write("holding", 0x0000, [0]).exception).toBe(2);
  });

  it("follows a contactor: no energy while the contactor is open", () => {
    let contactor = false;
    const m = meter("chint-dtsu666");
    m.contactorClosed = () => contactor;
    m.step(HOUR, SIX_AM + HOUR);
    expect(m.importWh).toBe(0);
    contactor = true;
    m.step(HOUR, SIX_AM + 2 * HOUR);
    expect(m.importWh).toBeCloseTo(7500, 6);
  });

  it("counts integer registers in whole steps, never rounding up", () => {
    const m = meter("hiking-dds238-2-zn", { loads: [{ kind: "constant", watts: 9 }] });
    m.step(HOUR, SIX_AM + HOUR); // 9 Wh < one 10 Wh step
    expect(readPoint(m, "importEnergy")).toBe(0);
    m.step(HOUR, SIX_AM + 2 * HOUR); // 18 Wh → one step
    expect(readPoint(m, "importEnergy")).toBe(0.01);
  });

  it("wraps the register at the configured rollover while true energy goes on", () => {
    const m = meter("eastron-sdm120", { initialImportWh: 99_000, rolloverWh: 100_000 });
    m.step(HOUR, SIX_AM + HOUR);
    expect(m.importWh).toBeCloseTo(106_500, 6);
    expect(readPoint(m, "importEnergy")).toBeCloseTo(6.5, 3);
  });

  it("restarts the register from zero after a reset (meter swap)", () => {
    const m = meter("eastron-sdm120", { initialImportWh: 50_000 });
    m.resetRegister();
    m.step(HOUR, SIX_AM + HOUR);
    expect(readPoint(m, "importEnergy")).toBeCloseTo(7.5, 3);
    expect(m.importWh).toBeCloseTo(57_500, 6);
  });

  it("moves the register backwards on a negative jump", () => {
    const m = meter("eastron-sdm120", { initialImportWh: 50_000 });
    m.jumpRegister(-10_000);
    m.step(0, SIX_AM);
    expect(readPoint(m, "importEnergy")).toBeCloseTo(40, 3);
  });

  it("shows NaN in the import register while the NaN fault is on", () => {
    const m = meter("eastron-sdm120");
    m.nanImport = true;
    m.step(0, SIX_AM);
    const p = m.bank.point("importEnergy");
    const r = decodePointWords(p, m.bank.readWords("input", p.address, 2));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe("NOT_A_NUMBER");
  });

  it("counts reverse flow as export and shows negative power", () => {
    const m = meter("eastron-sdm120");
    m.reverseFlow = true;
    m.step(HOUR, SIX_AM + HOUR);
    expect(readPoint(m, "importEnergy")).toBe(0);
    expect(readPoint(m, "exportEnergy")).toBeCloseTo(7.5, 3);
    expect(readPoint(m, "activePower")).toBeCloseTo(-7500, 0);
  });

  it("lets a bypass feed the pump around the meter, even with the relay open", () => {
    const m = meter("hiking-dds238-2-zn");
    m.bypassW = 7500;
    m.write("holding", 0x001a, [0]);
    m.step(HOUR, SIX_AM + HOUR);
    expect(m.importWh).toBe(0);
    expect(m.unmeteredWh).toBeCloseTo(7500, 6);
  });

  it("shows DDSU666 power in kW as its manual says", () => {
    const m = meter("chint-ddsu666");
    m.step(1000, SIX_AM);
    expect(readPoint(m, "activePower")).toBeCloseTo(7.5, 3);
  });

  it("integrates a season at large steps to the same energy as small steps", () => {
    const loads = [{ kind: "pump" as const, ratedW: 7500, schedule: [{ from: "06:00", to: "09:00" }, { from: "16:00", to: "19:00" }] }];
    const coarse = meter("eastron-sdm630-v2", { loads });
    const fine = meter("eastron-sdm630-v2", { loads });
    const start = Date.parse("2026-04-01T00:00:00+08:00");
    const days = 30;
    for (let t = start; t < start + days * 24 * HOUR; t += 24 * HOUR) coarse.step(24 * HOUR, t + 24 * HOUR);
    for (let t = start; t < start + days * 24 * HOUR; t += 60_000) fine.step(60_000, t + 60_000);
    expect(Math.round(coarse.importWh)).toBe(days * 6 * 7500);
    expect(Math.round(fine.importWh)).toBe(days * 6 * 7500);
  });
});
