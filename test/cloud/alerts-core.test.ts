// The alerts domain's pure cores: the incident state machine, clustering, escalation, mutes, metrics, SSE framing
// and the webhook back-off — plain data in, plain data out, no clock but the `nowMs` they are given.

import { describe, expect, it } from "vitest";
import { clusterFor, haversineM } from "../../cloud/alerts/clustering.js";
import { ancestry, dueEscalations } from "../../cloud/alerts/escalation.js";
import { incidentStep, openIncident, type StepResult } from "../../cloud/alerts/incident-step.js";
import { jurisdictionMetrics, sensorFalseAlarmRates } from "../../cloud/alerts/metrics.js";
import { activeMute, checkMuteRequest } from "../../cloud/alerts/mutes.js";
import { parseLastEventId, sseFrame } from "../../cloud/alerts/sse-frame.js";
import type { AlarmRecord, Incident, IncidentEvent, Jurisdiction, Mute } from "../../cloud/alerts/types.js";
import { afterFailure, WEBHOOK_RETRY_DEFAULTS } from "../../cloud/alerts/webhook-backoff.js";

const T0 = Date.UTC(2026, 10, 23, 6, 0, 0);
// Xiantan village, Mogan, Deqing: two sensors 300 m apart and one 5 km away.
const A = { lat: 30.5851, lon: 119.8723 };
const B = { lat: 30.5878, lon: 119.8723 };
const FAR = { lat: 30.6301, lon: 119.8723 };

const alarm = (sensorId: string, atMs: number, cause: AlarmRecord["cause"] = "device_flag", alarmId = `${sensorId}-${atMs}-${cause}`): AlarmRecord => ({ alarmId, sensorId, gatewayId: "gw-1", cause, atMs, receivedAtMs: atMs + 50 });
const alarmEvent = (a: AlarmRecord, point?: { lat: number; lon: number }): Extract<IncidentEvent, { kind: "alarm" }> => ({ kind: "alarm", alarm: a, registered: point !== undefined, ...(point === undefined ? {} : { point }) });
const fire = (overrides: Partial<Incident> = {}): Incident => ({ ...openIncident({ incidentId: "inc-1", class: "fire", jurisdictionId: "xiantan" }, alarmEvent(alarm("s-a", T0), A), T0).incident, ...overrides });
const act = (action: Extract<IncidentEvent, { kind: "action" }>["action"], extra: Partial<Extract<IncidentEvent, { kind: "action" }>> = {}): IncidentEvent => ({ kind: "action", action, actor: "dispatcher-wang", ...extra });

function ok(result: StepResult): Incident {
  if (!result.ok) throw new Error(`step refused: ${result.code} ${result.reason}`);
  return result.incident;
}

function walk(incident: Incident, steps: readonly IncidentEvent[], startMs: number): Incident {
  return steps.reduce((inc, step, i) => ok(incidentStep(inc, step, startMs + (i + 1) * 60_000)), incident);
}

describe("incidentStep: the forward-only lifecycle", () => {
  it("opens a single-sensor alarm at once as a new, Possible incident and asks for a publish and a notification", () => {
    const { incident, effects } = openIncident({ incidentId: "inc-1", class: "fire", jurisdictionId: "xiantan" }, alarmEvent(alarm("s-a", T0), A), T0 + 80);
    expect(incident).toMatchObject({ state: "new", certainty: "Possible", version: 1, openedAtMs: T0 + 80, firstObservedAtMs: T0, sensorIds: ["s-a"] });
    expect(effects).toEqual([{ kind: "publish", msgType: "Alert" }, { kind: "notify", jurisdictionId: "xiantan", level: 0, reason: "opened" }]);
  });

  it("walks the Mogan story from new to resolved as a fire, stamping each state with the server's time", () => {
    const done = walk(fire(), [act("acknowledge"), act("verify", { assignee: "grid-worker-chen" }), act("confirm"), act("dispatch", { assignee: "officer-lu" }), act("arrive"), act("resolve", { disposition: "fire" })], T0);
    expect(done).toMatchObject({ state: "resolved", disposition: "fire", certainty: "Observed", gridWorker: "grid-worker-chen", officer: "officer-lu", version: 7 });
    expect(done.times).toEqual({ acknowledged: T0 + 60_000, verifying: T0 + 120_000, confirmed: T0 + 180_000, dispatched: T0 + 240_000, on_scene: T0 + 300_000, resolved: T0 + 360_000 });
  });

  it("refuses to move an incident backwards", () => {
    const confirmed = walk(fire(), [act("acknowledge"), act("confirm")], T0);
    const back = incidentStep(confirmed, act("acknowledge"), T0 + 600_000);
    expect(back).toMatchObject({ ok: false, code: "ALERTS_TRANSITION_NOT_ALLOWED" });
  });

  it("refuses the same transition twice (a double click in two command rooms)", () => {
    const acknowledged = walk(fire(), [act("acknowledge")], T0);
    expect(incidentStep(acknowledged, act("acknowledge"), T0 + 120_000)).toMatchObject({ ok: false, code: "ALERTS_TRANSITION_NOT_ALLOWED" });
  });

  it("refuses any action on a resolved incident", () => {
    const closed = walk(fire(), [act("false_alarm"), act("resolve", { disposition: "false_alarm" })], T0);
    expect(incidentStep(closed, act("confirm"), T0 + 600_000)).toMatchObject({ ok: false, code: "ALERTS_INCIDENT_CLOSED" });
  });

  it("counts a first action past new as the acknowledgement", () => {
    const verifying = walk(fire(), [act("verify", { assignee: "grid-worker-chen" })], T0);
    expect(verifying.times).toEqual({ acknowledged: T0 + 60_000, verifying: T0 + 60_000 });
  });

  it("needs a named grid worker to verify and a named officer to dispatch", () => {
    expect(incidentStep(fire(), act("verify"), T0)).toMatchObject({ ok: false, code: "ALERTS_ASSIGNEE_REQUIRED" });
    const confirmed = walk(fire(), [act("confirm")], T0);
    expect(incidentStep(confirmed, act("dispatch", { assignee: "  " }), T0)).toMatchObject({ ok: false, code: "ALERTS_ASSIGNEE_REQUIRED" });
  });

  it("never dispatches a test incident", () => {
    const test = walk(fire({ class: "test" }), [act("confirm")], T0);
    expect(incidentStep(test, act("dispatch", { assignee: "officer-lu" }), T0)).toMatchObject({ ok: false, code: "ALERTS_NOT_DISPATCHABLE" });
  });

  it("closes a test incident only with the test disposition", () => {
    const test = fire({ class: "test" });
    expect(incidentStep(test, act("resolve", { disposition: "false_alarm" }), T0)).toMatchObject({ ok: false, code: "ALERTS_DISPOSITION_INVALID" });
    expect(ok(incidentStep(test, act("resolve", { disposition: "test" }), T0))).toMatchObject({ state: "resolved", disposition: "test" });
  });

  it("refuses to close an unconfirmed incident as a fire", () => {
    expect(incidentStep(fire(), act("resolve", { disposition: "fire" }), T0)).toMatchObject({ ok: false, code: "ALERTS_DISPOSITION_INVALID" });
  });

  it("refuses to close without a disposition", () => {
    expect(incidentStep(fire(), act("resolve"), T0)).toMatchObject({ ok: false, code: "ALERTS_DISPOSITION_INVALID" });
  });

  it("publishes a false alarm as a CAP Cancel", () => {
    const result = incidentStep(fire(), act("false_alarm"), T0 + 1000);
    expect(result).toMatchObject({ ok: true, effects: [{ kind: "publish", msgType: "Cancel" }] });
    expect(ok(result).certainty).toBe("Unlikely");
  });

  it("raises certainty to Likely when a second sensor corroborates", () => {
    const joined = ok(incidentStep(fire(), alarmEvent(alarm("s-b", T0 + 30_000), B), T0 + 31_000));
    expect(joined).toMatchObject({ certainty: "Likely", sensorIds: ["s-a", "s-b"], version: 2 });
  });

  it("raises certainty to Likely when a temperature rise joins the smoke of one sensor", () => {
    const joined = ok(incidentStep(fire(), alarmEvent(alarm("s-a", T0 + 30_000, "temperature_rise"), A), T0 + 31_000));
    expect(joined.certainty).toBe("Likely");
  });

  it("opens a muted sensor's alarm shown but notified to nobody", () => {
    const { incident, effects } = openIncident({ incidentId: "inc-1", class: "fire", jurisdictionId: "xiantan" }, { ...alarmEvent(alarm("s-a", T0), A), mutedBy: "mute-1" }, T0);
    expect(incident.mutedBy).toBe("mute-1");
    expect(effects).toEqual([{ kind: "publish", msgType: "Alert" }]);
  });

  it("unmutes a muted incident when an unmuted alarm joins it, and notifies its own tier", () => {
    const step = incidentStep(fire({ mutedBy: "mute-1" }), alarmEvent(alarm("s-b", T0 + 120_000), B), T0 + 120_050);
    expect(ok(step)).not.toHaveProperty("mutedBy");
    expect(step).toMatchObject({ effects: [{ kind: "publish", msgType: "Update" }, { kind: "notify", jurisdictionId: "xiantan", level: 0, reason: "opened" }] });
  });

  it("keeps an incident muted while the alarm joining it is muted too", () => {
    const step = incidentStep(fire({ mutedBy: "mute-1" }), { ...alarmEvent(alarm("s-a", T0 + 30_000, "smoke_density"), A), mutedBy: "mute-1" }, T0 + 30_050);
    expect(ok(step).mutedBy).toBe("mute-1");
    expect(step).toMatchObject({ effects: [{ kind: "publish", msgType: "Update" }] });
  });

  it("never mutes an unmuted incident again because a muted sensor joins it", () => {
    const step = incidentStep(fire(), { ...alarmEvent(alarm("s-b", T0 + 30_000), B), mutedBy: "mute-2" }, T0 + 30_050);
    expect(ok(step)).not.toHaveProperty("mutedBy");
  });

  it("ignores an alarm it already has (a redelivered message)", () => {
    const incident = fire();
    const again = incidentStep(incident, alarmEvent(alarm("s-a", T0), A), T0 + 5000);
    expect(again).toEqual({ ok: true, incident, effects: [] });
  });

  it("keeps a late alarm on a resolved incident without reopening or publishing it", () => {
    const closed = walk(fire(), [act("false_alarm"), act("resolve", { disposition: "nuisance" })], T0);
    const late = incidentStep(closed, alarmEvent(alarm("s-b", T0 - 10_000), B), T0 + 900_000);
    expect(late).toMatchObject({ ok: true, effects: [] });
    expect(ok(late)).toMatchObject({ state: "resolved", disposition: "nuisance", firstObservedAtMs: T0 - 10_000, version: closed.version });
  });

  it("records a cleared alarm without changing the state: smoke that stops may be a sensor that burned", () => {
    const cleared = ok(incidentStep(fire(), { kind: "alarm_cleared", alarmId: `s-a-${T0}-device_flag`, atMs: T0 + 60_000 }, T0 + 61_000));
    expect(cleared.state).toBe("new");
    expect(cleared.alarms[0]?.clearedAtMs).toBe(T0 + 60_000);
  });

  it("closes a monitoring gap as restored when the sensor answers again, but never a fire", () => {
    const gap = fire({ class: "monitoring_gap" });
    expect(ok(incidentStep(gap, { kind: "sensor_recovered" }, T0 + 5000))).toMatchObject({ state: "resolved", disposition: "restored" });
    expect(ok(incidentStep(fire(), { kind: "sensor_recovered" }, T0 + 5000)).state).toBe("new");
  });
});

describe("clustering", () => {
  it("measures great-circle distance in metres (one minute of latitude ≈ 1853 m)", () => {
    expect(haversineM({ lat: 30, lon: 120 }, { lat: 30 + 1 / 60, lon: 120 })).toBeCloseTo(1853.3, 0);
  });

  it("joins an alarm from a sensor nearby within the window to the open incident", () => {
    const open = [fire()];
    expect(clusterFor(open, { sensorId: "s-b", atMs: T0 + 60_000, point: B }, { radiusM: 1500, windowMs: 600_000 })?.incidentId).toBe("inc-1");
  });

  it("does not join a sensor farther than the radius", () => {
    expect(clusterFor([fire()], { sensorId: "s-far", atMs: T0 + 60_000, point: FAR }, { radiusM: 1500, windowMs: 600_000 })).toBeUndefined();
  });

  it("does not join an alarm outside the time window", () => {
    expect(clusterFor([fire()], { sensorId: "s-b", atMs: T0 + 700_000, point: B }, { radiusM: 1500, windowMs: 600_000 })).toBeUndefined();
  });

  it("never joins a fire to a test, a false alarm or a resolved incident", () => {
    const rule = { radiusM: 1500, windowMs: 600_000 };
    for (const other of [fire({ class: "test" }), fire({ state: "false_alarm" }), fire({ state: "resolved" })]) {
      expect(clusterFor([other], { sensorId: "s-b", atMs: T0, point: B }, rule)).toBeUndefined();
    }
  });

  it("joins an unregistered sensor (no location) only to its own open incident", () => {
    const own = fire({ sensorIds: ["ghost"], points: [] });
    expect(clusterFor([fire(), own], { sensorId: "ghost", atMs: T0 }, { radiusM: 1500, windowMs: 600_000 })).toBe(own);
    expect(clusterFor([fire()], { sensorId: "ghost-2", atMs: T0 }, { radiusM: 1500, windowMs: 600_000 })).toBeUndefined();
  });
});

describe("escalation tiers", () => {
  const tree = new Map<string, Jurisdiction>([
    ["deqing", { jurisdictionId: "deqing", parentId: null, tier: "county", name: "Deqing", ackTimeoutMs: 300_000, onSceneTimeoutMs: 1_800_000 }],
    ["mogan", { jurisdictionId: "mogan", parentId: "deqing", tier: "township", name: "Moganshan", ackTimeoutMs: 120_000, onSceneTimeoutMs: 1_200_000 }],
    ["xiantan", { jurisdictionId: "xiantan", parentId: "mogan", tier: "village", name: "Xiantan", ackTimeoutMs: 60_000, onSceneTimeoutMs: 600_000 }],
  ]);

  it("lists a jurisdiction's ancestry from itself to the root", () => {
    expect(ancestry(tree, "xiantan")).toEqual(["xiantan", "mogan", "deqing"]);
  });

  it("escalates an unacknowledged fire to the township after the village's ack timeout", () => {
    const incident = fire({ openedAtMs: T0 });
    expect(dueEscalations([incident], tree, T0 + 59_999)).toEqual([]);
    expect(dueEscalations([incident], tree, T0 + 60_000)).toEqual([{ incidentId: "inc-1", escalation: { level: 1, jurisdictionId: "mogan", reason: "ack_timeout", atMs: T0 + 60_000 } }]);
  });

  it("escalates again to the county after the township's timeout, then keeps re-notifying the county", () => {
    const once = fire({ openedAtMs: T0, escalations: [{ level: 1, jurisdictionId: "mogan", reason: "ack_timeout", atMs: T0 + 60_000 }] });
    expect(dueEscalations([once], tree, T0 + 179_999)).toEqual([]);
    expect(dueEscalations([once], tree, T0 + 180_000)[0]?.escalation).toMatchObject({ level: 2, jurisdictionId: "deqing" });
    const twice = fire({ openedAtMs: T0, escalations: [...once.escalations, { level: 2, jurisdictionId: "deqing", reason: "ack_timeout", atMs: T0 + 180_000 }] });
    expect(dueEscalations([twice], tree, T0 + 480_000)[0]?.escalation).toMatchObject({ level: 2, jurisdictionId: "deqing" });
  });

  it("escalates a dispatched incident not on scene in time, counting from the dispatch", () => {
    const dispatched = fire({ state: "dispatched", openedAtMs: T0, times: { acknowledged: T0 + 10_000, confirmed: T0 + 60_000, dispatched: T0 + 100_000 }, escalations: [{ level: 1, jurisdictionId: "mogan", reason: "ack_timeout", atMs: T0 + 60_000 }] });
    expect(dueEscalations([dispatched], tree, T0 + 699_999)).toEqual([]);
    expect(dueEscalations([dispatched], tree, T0 + 700_000)[0]?.escalation).toMatchObject({ level: 1, jurisdictionId: "mogan", reason: "on_scene_timeout" });
  });

  it("never escalates acknowledged, test, calibration or muted incidents", () => {
    const late = T0 + 86_400_000;
    expect(dueEscalations([fire({ state: "acknowledged" }), fire({ class: "test" }), fire({ class: "calibration" }), fire({ mutedBy: "mute-1" })], tree, late)).toEqual([]);
  });
});

describe("mutes", () => {
  const mute: Mute = { muteId: "m1", sensorId: "s-a", fromMs: T0, untilMs: T0 + 3_600_000, reason: "burning straw, permitted", actor: "dispatcher-wang", createdAtMs: T0 };

  it("is in force only between its start and its end", () => {
    expect(activeMute([mute], "s-a", T0 - 1)).toBeUndefined();
    expect(activeMute([mute], "s-a", T0)).toBe(mute);
    expect(activeMute([mute], "s-a", T0 + 3_600_000)).toBeUndefined();
    expect(activeMute([mute], "s-b", T0 + 10)).toBeUndefined();
  });

  it("ends when lifted early", () => {
    expect(activeMute([{ ...mute, liftedAtMs: T0 + 60_000, liftedBy: "dispatcher-wang" }], "s-a", T0 + 60_000)).toBeUndefined();
  });

  it("refuses a mute without a reason, open-ended or ending before it starts", () => {
    expect(checkMuteRequest({ fromMs: T0, untilMs: T0 + 60_000, reason: " " })).toMatchObject({ ok: false });
    expect(checkMuteRequest({ fromMs: T0, untilMs: T0 + 30 * 86_400_000, reason: "maintenance" })).toMatchObject({ ok: false });
    expect(checkMuteRequest({ fromMs: T0, untilMs: T0, reason: "maintenance" })).toMatchObject({ ok: false });
    expect(checkMuteRequest({ fromMs: T0, untilMs: T0 + 60_000, reason: "maintenance" })).toEqual({ ok: true });
  });
});

describe("metrics", () => {
  const resolvedFire = walk(fire({ incidentId: "f1", openedAtMs: T0 }), [act("acknowledge"), act("confirm"), act("dispatch", { assignee: "officer-lu" }), act("arrive"), act("resolve", { disposition: "fire" })], T0);
  const falseAlarm = (id: string): Incident => walk(fire({ incidentId: id, openedAtMs: T0 }), [act("false_alarm"), act("resolve", { disposition: "false_alarm" })], T0);

  it("measures time to acknowledge, verify, dispatch, arrive and resolve per jurisdiction", () => {
    const [xiantan] = jurisdictionMetrics([resolvedFire]);
    expect(xiantan?.milestones).toEqual({
      acknowledge: { count: 1, p50Ms: 60_000, p90Ms: 60_000 },
      verify: { count: 1, p50Ms: 120_000, p90Ms: 120_000 },
      dispatch: { count: 1, p50Ms: 180_000, p90Ms: 180_000 },
      arrive: { count: 1, p50Ms: 240_000, p90Ms: 240_000 },
      resolve: { count: 1, p50Ms: 300_000, p90Ms: 300_000 },
    });
  });

  it("never counts test traffic", () => {
    const test = walk(fire({ incidentId: "t1", class: "test" }), [act("acknowledge"), act("resolve", { disposition: "test" })], T0);
    expect(jurisdictionMetrics([test])).toEqual([]);
    expect(sensorFalseAlarmRates([test])).toEqual([]);
  });

  it("flags a sensor whose alarms are mostly false as noisy", () => {
    const rates = sensorFalseAlarmRates([falseAlarm("x1"), falseAlarm("x2"), falseAlarm("x3"), resolvedFire]);
    expect(rates).toEqual([{ sensorId: "s-a", judged: 4, falseAlarms: 3, rate: 0.75, noisy: true }]);
  });
});

describe("SSE framing and webhook back-off", () => {
  it("frames an event with its id, name and one data line per payload line", () => {
    expect(sseFrame({ id: 42, event: "incident.opened", data: '{"a":1}\n{"b":2}' })).toBe('id: 42\nevent: incident.opened\ndata: {"a":1}\ndata: {"b":2}\n\n');
  });

  it("reads Last-Event-ID as a sequence and ignores garbage", () => {
    expect(parseLastEventId("17")).toBe(17);
    expect(parseLastEventId(["9"])).toBe(9);
    expect(parseLastEventId("-1")).toBeUndefined();
    expect(parseLastEventId("abc")).toBeUndefined();
    expect(parseLastEventId(undefined)).toBeUndefined();
  });

  it("backs off exponentially up to a cap, and gives up after the attempts or the age limit", () => {
    const p = { ...WEBHOOK_RETRY_DEFAULTS, baseDelayMs: 100, maxDelayMs: 1000, maxAttempts: 10, maxAgeMs: 60_000 };
    expect(afterFailure(p, 1, T0, T0)).toEqual({ kind: "retry", atMs: T0 + 100 });
    expect(afterFailure(p, 3, T0, T0)).toEqual({ kind: "retry", atMs: T0 + 400 });
    expect(afterFailure(p, 8, T0, T0)).toEqual({ kind: "retry", atMs: T0 + 1000 });
    expect(afterFailure(p, 10, T0, T0)).toMatchObject({ kind: "give_up" });
    expect(afterFailure(p, 2, T0, T0 + 60_000)).toMatchObject({ kind: "give_up" });
  });
});
