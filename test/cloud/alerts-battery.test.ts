// A fire sensor's low battery in the alert service (issue #6: "separate classes, never mixed with fire: … low
// battery"): battery.low from the gateway's events opens a low_battery incident, battery.ok closes it as restored,
// and none of it ever joins, dispatches, escalates or counts as a fire. Real SQLite file in a temporary directory.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAlertService, type AlertService } from "../../cloud/alerts/service.js";
import type { Incident } from "../../cloud/alerts/types.js";
import type { AlarmMessage, EventBatch, GatewayEvent } from "../../protocols/mqtt/messages.js";

const GW = "gw-xiantan";
const T0 = Date.UTC(2026, 10, 23, 6, 0, 0);
const log = pino({ level: process.env.TEST_LOG ?? "silent" });

let dir: string;
let clock: number;
let seq: number;
let ids: number;
let service: AlertService;

function start(): AlertService {
  return createAlertService({ path: join(dir, "alerts.db"), log, now: () => clock, newId: (kind) => `${kind}-${++ids}`, escalationCheckMs: 0 });
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "alerts-battery-"));
  clock = T0;
  seq = 0;
  ids = 0;
  service = start();
  service.upsertJurisdiction({ jurisdictionId: "xiantan", parentId: null, tier: "village", name: "Xiantan", ackTimeoutMs: 60_000, onSceneTimeoutMs: 600_000 });
  service.upsertSensor({ sensorId: "fire-a", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.5851, lon: 119.8723, name: "ridge east", mode: "normal" });
  service.upsertSensor({ sensorId: "fire-b", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.5878, lon: 119.8723, name: "ridge west", mode: "normal" });
});

afterEach(() => {
  service.stop();
  rmSync(dir, { recursive: true, force: true });
});

const iso = (ms: number): string => new Date(ms).toISOString();
const batch = (...events: GatewayEvent[]): EventBatch => ({ v: 1, gatewayId: GW, seq: ++seq, sentAt: iso(clock), events });
const low = (deviceId: string, atMs: number, batteryMv = 3280): GatewayEvent => ({ type: "battery.low", deviceId, at: iso(atMs), batteryMv, thresholdMv: 3300 });
const ok = (deviceId: string, atMs: number): GatewayEvent => ({ type: "battery.ok", deviceId, at: iso(atMs), batteryMv: 3450, thresholdMv: 3400 });
const fireAlarm = (deviceId: string, atMs: number): AlarmMessage => ({
  v: 1,
  gatewayId: GW,
  seq: ++seq,
  sentAt: iso(clock),
  event: { type: "alarm.raised", deviceId, cause: "device_flag", at: iso(atMs), alarmId: `${deviceId}-${atMs}-device_flag` },
});
const incidents = (): readonly Incident[] => service.listIncidents({ sinceMs: 0, limit: 1000, openOnly: false });

describe("low battery of a fire sensor", () => {
  it("opens a low_battery incident carrying the sensor and its voltage", () => {
    service.onEvents(batch(low("fire-a", T0 - 2_000)), GW);
    expect(incidents()).toHaveLength(1);
    expect(incidents()[0]).toMatchObject({
      class: "low_battery",
      state: "new",
      jurisdictionId: "xiantan",
      sensorIds: ["fire-a"],
      alarms: [{ sensorId: "fire-a", cause: "low_battery", value: 3280, atMs: T0 - 2_000, receivedAtMs: T0 }],
    });
  });

  it("closes it as restored when battery.ok arrives", () => {
    service.onEvents(batch(low("fire-a", T0)), GW);
    clock += 86_400_000;
    service.onEvents(batch(ok("fire-a", clock)), GW);
    expect(incidents()).toMatchObject([{ class: "low_battery", state: "resolved", disposition: "restored", times: { resolved: clock } }]);
  });

  it("opens one incident for a redelivered batch and for repeated reports while it is open", () => {
    const first = batch(low("fire-a", T0));
    service.onEvents(first, GW);
    service.onEvents(first, GW);
    service.onEvents(batch(low("fire-a", T0 + 3_600_000, 3_200)), GW);
    expect(incidents()).toHaveLength(1);
    expect(incidents()[0]?.alarms.map((a) => a.value)).toEqual([3280, 3200]);
  });

  it("opens a new incident when the battery runs low again after it was restored", () => {
    service.onEvents(batch(low("fire-a", T0), ok("fire-a", T0 + 1_000), low("fire-a", T0 + 2_000)), GW);
    expect(incidents().map((i) => i.state).sort()).toEqual(["new", "resolved"]);
  });

  it("never joins a fire alarm of the same sensor, and battery.ok leaves the fire open", () => {
    service.onEvents(batch(low("fire-a", T0)), GW);
    service.onAlarm(fireAlarm("fire-a", T0 + 1_000), GW);
    service.onEvents(batch(ok("fire-a", T0 + 2_000)), GW);
    const byClass = Object.fromEntries(incidents().map((i) => [i.class, i]));
    expect(Object.keys(byClass).sort()).toEqual(["fire", "low_battery"]);
    expect(byClass.fire).toMatchObject({ state: "new", sensorIds: ["fire-a"] });
    expect(byClass.low_battery).toMatchObject({ state: "resolved", disposition: "restored" });
  });

  it("closes only the battery incident of the sensor that recovered", () => {
    service.onEvents(batch(low("fire-a", T0), low("fire-b", T0)), GW);
    service.onEvents(batch(ok("fire-b", T0 + 1_000)), GW);
    expect(Object.fromEntries(incidents().map((i) => [i.sensorIds[0], i.state]))).toEqual({ "fire-a": "new", "fire-b": "resolved" });
  });

  it("refuses to dispatch a low-battery incident", () => {
    service.onEvents(batch(low("fire-a", T0)), GW);
    const id = incidents()[0]?.incidentId ?? "";
    service.transition(id, { action: "confirm" }, "officer-1");
    expect(() => service.transition(id, { action: "dispatch", assignee: "crew-3" }, "officer-1")).toThrow(/never dispatched/);
  });

  it("does not escalate an unacknowledged low-battery incident", () => {
    service.onEvents(batch(low("fire-a", T0)), GW);
    clock += 3_600_000;
    expect(service.runEscalations()).toBe(0);
  });

  it("keeps low-battery incidents out of the fire statistics", () => {
    service.onEvents(batch(low("fire-a", T0), low("fire-b", T0)), GW);
    service.onAlarm(fireAlarm("fire-a", T0 + 1_000), GW);
    expect(service.metrics(0).jurisdictions).toMatchObject([{ jurisdictionId: "xiantan", incidents: 1 }]);
  });

  it("ignores battery.ok from a sensor with no open battery incident", () => {
    service.onEvents(batch(ok("fire-a", T0)), GW);
    expect(incidents()).toEqual([]);
  });

  it("keeps an open low-battery incident across a restart of the service", () => {
    service.onEvents(batch(low("fire-a", T0)), GW);
    service.stop();
    service = start();
    service.onEvents(batch(ok("fire-a", T0 + 1_000)), GW);
    expect(incidents()).toMatchObject([{ class: "low_battery", state: "resolved", disposition: "restored" }]);
  });
});
