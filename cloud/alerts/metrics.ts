// Response numbers (the 12345 hotline's "analyse and report", NFPA 1225's answer/process times): per incident, the
// time from opening to acknowledge, verify (confirmed or found false), dispatch, arrive and resolve; per jurisdiction
// the same as p50/p90; per sensor the false-alarm rate, fed back so a noisy sensor is re-tuned or muted with a
// reason. Test traffic never enters these numbers, nor do the technical classes. Pure.

import type { Incident } from "./types.js";

export const MILESTONES = ["acknowledge", "verify", "dispatch", "arrive", "resolve"] as const;
export type Milestone = (typeof MILESTONES)[number];

export type IncidentTimes = Readonly<Partial<Record<Milestone, number>>>;

/** Milliseconds from the incident's opening (server time) to each milestone it reached. */
export function incidentTimes(incident: Incident): IncidentTimes {
  const since = (at: number | undefined): number | undefined => (at === undefined ? undefined : at - incident.openedAtMs);
  const t = incident.times;
  const out: Partial<Record<Milestone, number>> = {};
  const set = (m: Milestone, v: number | undefined): void => {
    if (v !== undefined) out[m] = v;
  };
  set("acknowledge", since(t.acknowledged));
  set("verify", since(t.confirmed ?? t.false_alarm));
  set("dispatch", since(t.dispatched));
  set("arrive", since(t.on_scene));
  set("resolve", since(t.resolved));
  return out;
}

/** Incidents the statistics count: real fire traffic only. */
export const countsInStatistics = (i: Incident): boolean => i.class === "fire";

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? null;
}

export interface MilestoneStats {
  readonly count: number;
  readonly p50Ms: number | null;
  readonly p90Ms: number | null;
}

export interface JurisdictionMetrics {
  readonly jurisdictionId: string | null;
  readonly incidents: number;
  readonly falseAlarms: number;
  readonly milestones: Readonly<Record<Milestone, MilestoneStats>>;
}

export function jurisdictionMetrics(incidents: readonly Incident[]): readonly JurisdictionMetrics[] {
  const groups = new Map<string | null, Incident[]>();
  for (const i of incidents.filter(countsInStatistics)) groups.set(i.jurisdictionId, [...(groups.get(i.jurisdictionId) ?? []), i]);
  return [...groups.entries()]
    .sort(([a], [b]) => String(a).localeCompare(String(b)))
    .map(([jurisdictionId, list]) => {
      const times = list.map(incidentTimes);
      const milestones = Object.fromEntries(
        MILESTONES.map((m) => {
          const values = times.flatMap((t) => (t[m] === undefined ? [] : [t[m]])).sort((a, b) => a - b);
          return [m, { count: values.length, p50Ms: percentile(values, 50), p90Ms: percentile(values, 90) }];
        }),
      ) as Record<Milestone, MilestoneStats>;
      return { jurisdictionId, incidents: list.length, falseAlarms: list.filter(isFalseAlarm).length, milestones };
    });
}

const isFalseAlarm = (i: Incident): boolean => i.disposition === "false_alarm" || i.disposition === "nuisance" || (i.state === "false_alarm" && i.disposition === undefined);

export interface SensorFalseAlarmRate {
  readonly sensorId: string;
  /** Closed or judged fire incidents this sensor alarmed in. */
  readonly judged: number;
  readonly falseAlarms: number;
  /** falseAlarms / judged, as a ratio (display only; no money). */
  readonly rate: number;
  /** Enough history and a high enough rate that someone should look at this sensor. */
  readonly noisy: boolean;
}

export const NOISY_SENSOR = { minJudged: 3, minRate: 0.5 } as const;

export function sensorFalseAlarmRates(incidents: readonly Incident[]): readonly SensorFalseAlarmRate[] {
  const tally = new Map<string, { judged: number; falseAlarms: number }>();
  for (const i of incidents.filter(countsInStatistics)) {
    const judged = i.state === "resolved" || i.state === "false_alarm" || i.times.confirmed !== undefined;
    if (!judged) continue;
    for (const sensorId of i.sensorIds) {
      const t = tally.get(sensorId) ?? { judged: 0, falseAlarms: 0 };
      tally.set(sensorId, { judged: t.judged + 1, falseAlarms: t.falseAlarms + (isFalseAlarm(i) ? 1 : 0) });
    }
  }
  return [...tally.entries()]
    .map(([sensorId, t]) => {
      const rate = t.falseAlarms / t.judged;
      return { sensorId, judged: t.judged, falseAlarms: t.falseAlarms, rate, noisy: t.judged >= NOISY_SENSOR.minJudged && rate >= NOISY_SENSOR.minRate };
    })
    .sort((a, b) => b.rate - a.rate || a.sensorId.localeCompare(b.sensorId));
}
