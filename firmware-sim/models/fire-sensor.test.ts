import { describe, expect, it } from "vitest";
import { decodePointBit, decodePointWords } from "../../protocols/codec/point-codec.js";
import { FIRE_NODE_RESET_CODE, FIRE_NODE_SELF_TEST_CODE } from "../../protocols/profiles/agri-fire-node.js";
import { findProfile } from "../../protocols/profiles/index.js";
import { FireSensorModel } from "./fire-sensor.js";
import { seededRandom } from "./random.js";

const NOON = Date.parse("2026-08-10T12:00:00+08:00");
const MIN = 60_000;

function node(): FireSensorModel {
  const profile = findProfile("agri-fire-node");
  if (!profile) throw new Error("profile");
  return new FireSensorModel({ id: "f", profile, random: seededRandom(7), smokeNoiseDbPerM: 0.001 });
}

function flag(s: FireSensorModel, id: string): boolean {
  const p = s.bank.point(id);
  const r = decodePointBit(p, s.bank.bit("discrete", p.address));
  return r.ok && r.value === 1;
}

function reg(s: FireSensorModel, id: string): number {
  const p = s.bank.point(id);
  const r = decodePointWords(p, s.bank.readWords("input", p.address, p.type === "u32" ? 2 : 1));
  if (!r.ok) throw new Error(r.code);
  return r.value;
}

function run(s: FireSensorModel, from: number, minutes: number): number {
  let t = from;
  for (let i = 0; i < minutes * 6; i++) {
    t += 10_000;
    s.step(10_000, t);
  }
  return t;
}

describe("forest-fire node model", () => {
  it("stays quiet in clean air for a day", () => {
    const s = node();
    run(s, NOON, 24 * 60);
    expect(flag(s, "smokeAlarm")).toBe(false);
    expect(reg(s, "smokeDensity")).toBeLessThan(0.05);
  });

  it("latches its smoke alarm once a fire pushes smoke past 0.05 dB/m, and shows density and heat", () => {
    const s = node();
    s.startFire(NOON, { smokeRiseDbPerMPerMin: 0.03, tempRiseCPerMin: 3 });
    run(s, NOON, 3);
    expect(flag(s, "smokeAlarm")).toBe(true);
    expect(reg(s, "smokeDensity")).toBeGreaterThanOrEqual(0.05);
    expect(reg(s, "temperature")).toBeGreaterThan(25);
  });

  it("keeps the alarm latched after the smoke clears until the reset code is written", () => {
    const s = node();
    s.startFire(NOON);
    let t = run(s, NOON, 5);
    s.stopFire();
    t = run(s, t, 60);
    expect(flag(s, "smokeAlarm")).toBe(true);
    expect(s.write("holding", 1, [1234], t).exception).toBe(3);
    expect(s.write("holding", 1, [FIRE_NODE_RESET_CODE], t).exception).toBeUndefined();
    expect(flag(s, "smokeAlarm")).toBe(false);
  });

  it("raises the heat flag at 57 °C", () => {
    const s = node();
    s.startFire(NOON, { smokeRiseDbPerMPerMin: 0.001, tempRiseCPerMin: 10, maxTempC: 80 });
    run(s, NOON, 6);
    expect(flag(s, "heatAlarm")).toBe(true);
  });

  it("shows a fault after a failing self-test and clears it after a passing one", () => {
    const s = node();
    s.selfTestWillFail = true;
    s.write("holding", 2, [FIRE_NODE_SELF_TEST_CODE], NOON);
    s.step(1000, NOON + 1000);
    expect(flag(s, "selfTestActive")).toBe(true);
    run(s, NOON + 1000, 1);
    expect(flag(s, "fault")).toBe(true);
    expect(reg(s, "faultCode")).toBe(3);
    s.selfTestWillFail = false;
    s.write("holding", 2, [FIRE_NODE_SELF_TEST_CODE], NOON + 2 * MIN);
    expect(flag(s, "fault")).toBe(false);
  });

  it("drains its battery and raises low battery below 3.3 V", () => {
    const s = node();
    s.batteryMv = 3305;
    run(s, NOON, 3 * 24 * 60);
    expect(reg(s, "battery")).toBeLessThan(3300);
    expect(flag(s, "lowBattery")).toBe(true);
  });

  it("accepts an alarm threshold in 0.01-1.00 dB/m and refuses others", () => {
    const s = node();
    expect(s.write("holding", 0, [5], NOON).exception).toBe(3);
    expect(s.write("holding", 0, [100], NOON).exception).toBeUndefined();
    expect(s.thresholdDbPerM).toBe(0.1);
  });

  it("reports an opened enclosure as tamper", () => {
    const s = node();
    s.tamper = true;
    s.step(1000, NOON);
    expect(flag(s, "tamper")).toBe(true);
  });

  it("plays a Calectro detector: mounted, smoke alarm flag and alarm relay, reset by 234", () => {
    const profile = findProfile("calectro-ug-3-o-mb-r");
    if (!profile) throw new Error("profile");
    const s = new FireSensorModel({ id: "c", profile, random: seededRandom(3) });
    s.step(1000, NOON);
    expect(s.bank.bit("discrete", 0)).toBe(true);
    s.startFire(NOON);
    run(s, NOON, 5);
    expect(s.bank.bit("discrete", 2)).toBe(true);
    expect(s.bank.bit("discrete", 3)).toBe(true);
    s.stopFire();
    const t = run(s, NOON + 5 * MIN, 60);
    expect(s.write("holding", 0, [234], t).exception).toBeUndefined();
    expect(s.bank.bit("discrete", 2)).toBe(false);
  });
});
