// The alerts domain's plain data: incidents and their classes, states and dispositions, the sensors and the
// jurisdiction tree the cloud keeps for fire alerting, mutes and the events an incident is stepped with. Pure types
// and `as const` tables only, shared by the cores (incident-step, clustering, escalation, metrics, cap) and the shell.

import type { AlarmCause } from "../../edge/guards/fire-guard.js";

/**
 * Fire is never mixed with the technical classes (domain notes, "rules that keep an alert pipeline honest"): a
 * silent sensor, a faulted one, one in calibration and Test/Exercise traffic each make incidents of their own class,
 * which never join a fire, never dispatch (test) and never count in the fire statistics.
 */
export const INCIDENT_CLASSES = ["fire", "monitoring_gap", "sensor_fault", "low_battery", "calibration", "test"] as const;
export type IncidentClass = (typeof INCIDENT_CLASSES)[number];

/** Forward-only, in this order (APCO/TMA ASAP, NENA EIDO lifecycles; the Mogan story's verify-by-grid-worker step). */
export const INCIDENT_STATES = ["new", "acknowledged", "verifying", "confirmed", "false_alarm", "dispatched", "on_scene", "resolved"] as const;
export type IncidentState = (typeof INCIDENT_STATES)[number];

/** Every incident ends in one. "restored" closes the technical classes when the sensor itself recovers. */
export const DISPOSITIONS = ["fire", "false_alarm", "test", "nuisance", "restored"] as const;
export type Disposition = (typeof DISPOSITIONS)[number];

/** CAP 1.2 certainty values this engine uses (Unknown is never produced: we always know how sure we are). */
export type Certainty = "Observed" | "Likely" | "Possible" | "Unlikely";

export const SENSOR_MODES = ["normal", "calibration", "test"] as const;
export type SensorMode = (typeof SENSOR_MODES)[number];

export const TIERS = ["village", "township", "county"] as const;
export type Tier = (typeof TIERS)[number];

export interface Sensor {
  /** The edge's device id. */
  readonly sensorId: string;
  readonly gatewayId: string;
  readonly jurisdictionId: string;
  /** WGS-84 degrees. */
  readonly lat: number;
  readonly lon: number;
  readonly name: string;
  readonly mode: SensorMode;
}

export interface Jurisdiction {
  readonly jurisdictionId: string;
  readonly parentId: string | null;
  readonly tier: Tier;
  readonly name: string;
  /** A new fire incident not acknowledged within this escalates to the parent tier. */
  readonly ackTimeoutMs: number;
  /** A dispatched incident not on scene within this escalates. */
  readonly onSceneTimeoutMs: number;
}

/** What opened or joined an incident: a fire alarm's cause, or the technical signal of the other classes. */
export type SignalCause = AlarmCause | "monitoring_gap" | "sensor_fault" | "low_battery";

export interface AlarmRecord {
  readonly alarmId: string;
  readonly sensorId: string;
  readonly gatewayId: string;
  readonly cause: SignalCause;
  /** When the edge observed it (the event's `at`). */
  readonly atMs: number;
  /** When the cloud received it. */
  readonly receivedAtMs: number;
  readonly clearedAtMs?: number;
  readonly value?: number;
}

export interface Escalation {
  /** 0 = the incident's own jurisdiction; k = its k-th ancestor (capped at the root). */
  readonly level: number;
  readonly jurisdictionId: string | null;
  readonly reason: "ack_timeout" | "on_scene_timeout";
  readonly atMs: number;
}

export interface Incident {
  readonly incidentId: string;
  readonly class: IncidentClass;
  readonly state: IncidentState;
  readonly disposition?: Disposition;
  readonly certainty: Certainty;
  /** null: an unregistered sensor on an unknown gateway (admins see it). */
  readonly jurisdictionId: string | null;
  readonly sensorIds: readonly string[];
  /** Sensor ids the cloud had no record of when their alarm arrived ("unregistered sensor", location unknown). */
  readonly unregisteredSensorIds: readonly string[];
  readonly alarms: readonly AlarmRecord[];
  /** WGS-84 points of the located sensors (for the CAP area and clustering). */
  readonly points: readonly { readonly sensorId: string; readonly lat: number; readonly lon: number }[];
  /** Server times, epoch ms. */
  readonly openedAtMs: number;
  readonly updatedAtMs: number;
  /** Edge time of the first alarm (the `at` of the event that opened the incident). */
  readonly firstObservedAtMs: number;
  readonly lastObservedAtMs: number;
  readonly times: Partial<Record<Exclude<IncidentState, "new">, number>>;
  readonly gridWorker?: string;
  readonly officer?: string;
  readonly escalations: readonly Escalation[];
  /**
   * The mute in force on a sensor when its alarm arrived: recorded and shown, but not escalated or sent out. Only
   * while every alarm in the incident is muted: one unmuted alarm joining it (a neighbour, or the same sensor after
   * its mute ended) clears it for good.
   */
  readonly mutedBy?: string;
  /** Rises with every published change; CAP identifiers are incidentId + version. */
  readonly version: number;
  readonly note?: string;
}

export interface Mute {
  readonly muteId: string;
  readonly sensorId: string;
  readonly fromMs: number;
  readonly untilMs: number;
  readonly reason: string;
  readonly actor: string;
  readonly createdAtMs: number;
  readonly liftedAtMs?: number;
  readonly liftedBy?: string;
}

/** Who did something: a user id, or "system" / "gateway:<id>" for automatic steps. */
export type Actor = string;

/** What a person may do to an incident. */
export const INCIDENT_ACTIONS = ["acknowledge", "verify", "confirm", "false_alarm", "dispatch", "arrive", "resolve"] as const;
export type IncidentAction = (typeof INCIDENT_ACTIONS)[number];

export type IncidentEvent =
  | {
      readonly kind: "alarm";
      readonly alarm: AlarmRecord;
      readonly point?: { readonly lat: number; readonly lon: number };
      readonly registered: boolean;
      /** The mute in force on this alarm's own sensor when it arrived; absent: this alarm is not muted. */
      readonly mutedBy?: string;
    }
  | { readonly kind: "alarm_cleared"; readonly alarmId: string; readonly atMs: number }
  | { readonly kind: "sensor_recovered" }
  | { readonly kind: "action"; readonly action: IncidentAction; readonly actor: Actor; readonly assignee?: string; readonly disposition?: Disposition; readonly note?: string }
  | { readonly kind: "escalate"; readonly escalation: Escalation };

/** What the shell must do after a step; every change is published (SSE, webhooks, CAP) with this msgType. */
export type IncidentEffect =
  | { readonly kind: "publish"; readonly msgType: "Alert" | "Update" | "Cancel" }
  | { readonly kind: "notify"; readonly jurisdictionId: string | null; readonly level: number; readonly reason: Escalation["reason"] | "opened" };
