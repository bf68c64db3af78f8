// The incident state machine as one pure step: incidentStep(incident, event, nowMs) → { incident, effects }, and
// openIncident for the first signal. It owns the forward-only lifecycle (new → acknowledged → verifying →
// confirmed | false alarm → dispatched → on scene → resolved), the rules on dispositions, and certainty.
//
// Why forward-only, with server time: a late or replayed event (a gateway's outbox drained after an outage, a
// double click in two command rooms) must never move an incident backwards or rewrite when something happened, so
// an action is accepted only from the states that precede its target, and every timestamp is the server's `nowMs`.
// Sensor signals never change the state at all: they add evidence (sensors, causes → certainty) and nothing else —
// except that an unmuted alarm joining a muted incident unmutes it (a mute silences one sensor, never a real fire
// that a neighbour, or the same sensor after its mute ended, goes on reporting).

import type { Certainty, Disposition, Incident, IncidentAction, IncidentClass, IncidentEffect, IncidentEvent, IncidentState } from "./types.js";

export type StepResult =
  | { readonly ok: true; readonly incident: Incident; readonly effects: readonly IncidentEffect[] }
  | { readonly ok: false; readonly code: StepRefusal; readonly reason: string };

export const STEP_REFUSALS = ["ALERTS_INCIDENT_CLOSED", "ALERTS_TRANSITION_NOT_ALLOWED", "ALERTS_NOT_DISPATCHABLE", "ALERTS_DISPOSITION_INVALID", "ALERTS_ASSIGNEE_REQUIRED"] as const;
export type StepRefusal = (typeof STEP_REFUSALS)[number];

/** The state each action leads to, and the states it may be taken from (everything before it on the way). */
const ACTIONS: Readonly<Record<Exclude<IncidentAction, "resolve">, { readonly to: IncidentState; readonly from: readonly IncidentState[] }>> = {
  acknowledge: { to: "acknowledged", from: ["new"] },
  verify: { to: "verifying", from: ["new", "acknowledged"] },
  confirm: { to: "confirmed", from: ["new", "acknowledged", "verifying"] },
  false_alarm: { to: "false_alarm", from: ["new", "acknowledged", "verifying"] },
  dispatch: { to: "dispatched", from: ["confirmed"] },
  arrive: { to: "on_scene", from: ["dispatched"] },
};

const TECHNICAL_CLASSES: readonly IncidentClass[] = ["monitoring_gap", "sensor_fault", "low_battery", "calibration"];
export const isTechnical = (c: IncidentClass): boolean => TECHNICAL_CLASSES.includes(c);

/** Which dispositions may close an incident of this class from this state. */
export function allowedDispositions(incident: Pick<Incident, "class" | "state">): readonly Disposition[] {
  if (incident.class === "test") return ["test"];
  if (incident.state === "false_alarm") return ["false_alarm", "nuisance"];
  if (isTechnical(incident.class)) return ["restored", "false_alarm", "nuisance"];
  if (incident.state === "confirmed" || incident.state === "dispatched" || incident.state === "on_scene") return ["fire", "false_alarm", "nuisance"];
  return ["false_alarm", "nuisance"];
}

/**
 * CAP certainty from the evidence: one sensor's alarm is Possible (shown at once, not hidden until corroborated);
 * a second sensor, or a temperature rise beside another cause, makes it Likely; a person's confirmation makes it
 * Observed, and a false alarm Unlikely.
 */
export function certaintyOf(incident: Pick<Incident, "state" | "disposition" | "alarms" | "sensorIds">): Certainty {
  if (incident.disposition === "fire" || incident.state === "confirmed" || incident.state === "dispatched" || incident.state === "on_scene") return "Observed";
  if (incident.state === "false_alarm" || incident.disposition === "false_alarm" || incident.disposition === "nuisance") return "Unlikely";
  if (incident.sensorIds.length >= 2) return "Likely";
  const causes = new Set(incident.alarms.map((a) => a.cause));
  if (causes.has("temperature_rise") && causes.size >= 2) return "Likely";
  return "Possible";
}

export interface OpenIncident {
  readonly incidentId: string;
  readonly class: IncidentClass;
  readonly jurisdictionId: string | null;
  /** Defaults to the opening alarm's own mutedBy. */
  readonly mutedBy?: string;
}

/** The first signal of a new incident: shown at once (published) and notified to its own tier unless muted. */
export function openIncident(init: OpenIncident, event: Extract<IncidentEvent, { kind: "alarm" }>, nowMs: number): { readonly incident: Incident; readonly effects: readonly IncidentEffect[] } {
  const mutedBy = init.mutedBy ?? event.mutedBy;
  const base: Incident = {
    incidentId: init.incidentId,
    class: init.class,
    state: "new",
    certainty: "Possible",
    jurisdictionId: init.jurisdictionId,
    sensorIds: [event.alarm.sensorId],
    unregisteredSensorIds: event.registered ? [] : [event.alarm.sensorId],
    alarms: [event.alarm],
    points: event.point === undefined ? [] : [{ sensorId: event.alarm.sensorId, lat: event.point.lat, lon: event.point.lon }],
    openedAtMs: nowMs,
    updatedAtMs: nowMs,
    firstObservedAtMs: event.alarm.atMs,
    lastObservedAtMs: event.alarm.atMs,
    times: {},
    escalations: [],
    version: 1,
    ...(mutedBy === undefined ? {} : { mutedBy }),
  };
  const incident = { ...base, certainty: certaintyOf(base) };
  const effects: IncidentEffect[] = [{ kind: "publish", msgType: "Alert" }];
  if (mutedBy === undefined) effects.push({ kind: "notify", jurisdictionId: init.jurisdictionId, level: 0, reason: "opened" });
  return { incident, effects };
}

const published = (incident: Incident, nowMs: number, msgType: "Update" | "Cancel" = "Update"): StepResult => ({
  ok: true,
  incident: { ...incident, updatedAtMs: nowMs, version: incident.version + 1 },
  effects: [{ kind: "publish", msgType }],
});

const refuse = (code: StepRefusal, reason: string): StepResult => ({ ok: false, code, reason });

export function incidentStep(incident: Incident, event: IncidentEvent, nowMs: number): StepResult {
  switch (event.kind) {
    case "alarm": {
      if (incident.alarms.some((a) => a.alarmId === event.alarm.alarmId && a.sensorId === event.alarm.sensorId)) return { ok: true, incident, effects: [] };
      const newSensor = !incident.sensorIds.includes(event.alarm.sensorId);
      // The incident stays muted only while this alarm is muted too; once unmuted it never mutes again.
      const unmutes = incident.mutedBy !== undefined && event.mutedBy === undefined;
      const { mutedBy: _wasMutedBy, ...rest } = incident;
      const next: Incident = {
        ...(unmutes ? rest : incident),
        alarms: [...incident.alarms, event.alarm],
        sensorIds: newSensor ? [...incident.sensorIds, event.alarm.sensorId] : incident.sensorIds,
        unregisteredSensorIds: newSensor && !event.registered ? [...incident.unregisteredSensorIds, event.alarm.sensorId] : incident.unregisteredSensorIds,
        points: newSensor && event.point !== undefined ? [...incident.points, { sensorId: event.alarm.sensorId, lat: event.point.lat, lon: event.point.lon }] : incident.points,
        firstObservedAtMs: Math.min(incident.firstObservedAtMs, event.alarm.atMs),
        lastObservedAtMs: Math.max(incident.lastObservedAtMs, event.alarm.atMs),
      };
      // Evidence arriving after the close is kept (the record is complete) but changes nothing anyone acts on.
      if (incident.state === "resolved") return { ok: true, incident: next, effects: [] };
      const step = published({ ...next, certainty: certaintyOf(next) }, nowMs);
      if (!unmutes || !step.ok) return step;
      // Nobody outside the command room was told while it was muted: its own tier is notified now, as on opening, and
      // the ack clock still runs from the opening — it was on screen unacknowledged all along, so escalation is not reset.
      return { ...step, effects: [...step.effects, { kind: "notify", jurisdictionId: incident.jurisdictionId, level: 0, reason: "opened" }] };
    }
    case "alarm_cleared": {
      const i = incident.alarms.findIndex((a) => a.alarmId === event.alarmId && a.clearedAtMs === undefined);
      if (i < 0) return { ok: true, incident, effects: [] };
      const alarms = incident.alarms.map((a, k) => (k === i ? { ...a, clearedAtMs: event.atMs } : a));
      // A cleared alarm is not an all-clear: smoke that stops may be a sensor that burned. State stays.
      if (incident.state === "resolved") return { ok: true, incident: { ...incident, alarms }, effects: [] };
      return published({ ...incident, alarms }, nowMs);
    }
    case "sensor_recovered": {
      if (!isTechnical(incident.class) || incident.state === "resolved") return { ok: true, incident, effects: [] };
      const times = { ...incident.times, resolved: nowMs };
      return published({ ...incident, state: "resolved", disposition: "restored", times }, nowMs);
    }
    case "escalate": {
      if (incident.state === "resolved") return { ok: true, incident, effects: [] };
      const next = { ...incident, escalations: [...incident.escalations, event.escalation] };
      return {
        ok: true,
        incident: { ...next, updatedAtMs: nowMs, version: incident.version + 1 },
        effects: [{ kind: "publish", msgType: "Update" }, { kind: "notify", jurisdictionId: event.escalation.jurisdictionId, level: event.escalation.level, reason: event.escalation.reason }],
      };
    }
    case "action":
      return applyAction(incident, event, nowMs);
  }
}

function applyAction(incident: Incident, event: Extract<IncidentEvent, { kind: "action" }>, nowMs: number): StepResult {
  if (incident.state === "resolved") return refuse("ALERTS_INCIDENT_CLOSED", `incident ${incident.incidentId} is resolved (${incident.disposition ?? "?"})`);
  const withNote = event.note === undefined ? incident : { ...incident, note: event.note };
  // Any step past "new" is also an acknowledgement: time to acknowledge is measured to the first human action.
  const acknowledgedAt = incident.times.acknowledged ?? nowMs;
  if (event.action === "resolve") {
    const allowed = allowedDispositions(incident);
    if (event.disposition === undefined || !allowed.includes(event.disposition)) {
      return refuse("ALERTS_DISPOSITION_INVALID", `a ${incident.class} incident in state ${incident.state} closes as one of: ${allowed.join(", ")}`);
    }
    const next: Incident = { ...withNote, state: "resolved", disposition: event.disposition, times: { ...incident.times, acknowledged: acknowledgedAt, resolved: nowMs } };
    const cancel = event.disposition === "false_alarm" || event.disposition === "nuisance";
    return published({ ...next, certainty: certaintyOf(next) }, nowMs, cancel ? "Cancel" : "Update");
  }
  const rule = ACTIONS[event.action];
  if (event.action === "dispatch" && incident.class !== "fire") {
    return refuse("ALERTS_NOT_DISPATCHABLE", `a ${incident.class} incident is never dispatched`);
  }
  if (!rule.from.includes(incident.state)) {
    return refuse("ALERTS_TRANSITION_NOT_ALLOWED", `${event.action} leads to ${rule.to}, which is not after ${incident.state}`);
  }
  if ((event.action === "verify" || event.action === "dispatch") && (event.assignee === undefined || event.assignee.trim() === "")) {
    return refuse("ALERTS_ASSIGNEE_REQUIRED", event.action === "verify" ? "name the grid worker who verifies" : "name the officer dispatched");
  }
  const next: Incident = {
    ...withNote,
    state: rule.to,
    times: { ...incident.times, acknowledged: acknowledgedAt, [rule.to]: nowMs },
    ...(event.action === "verify" && event.assignee !== undefined ? { gridWorker: event.assignee } : {}),
    ...(event.action === "dispatch" && event.assignee !== undefined ? { officer: event.assignee } : {}),
  };
  return published({ ...next, certainty: certaintyOf(next) }, nowMs, event.action === "false_alarm" ? "Cancel" : "Update");
}
