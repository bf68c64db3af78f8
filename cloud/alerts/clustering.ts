// Which open incident a new fire alarm joins: alarms from sensors near each other (great-circle distance between
// their WGS-84 coordinates) within a time window are one fire, so the command room sees one incident whose
// certainty rises, not a page of alarms. Pure.

import type { Incident } from "./types.js";

/** IUGG mean Earth radius; the haversine error against the ellipsoid (< 0.5 %) is far below a sensor spacing. */
const EARTH_RADIUS_M = 6_371_008.8;

export function haversineM(a: { readonly lat: number; readonly lon: number }, b: { readonly lat: number; readonly lon: number }): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

export interface ClusterRule {
  /** Sensors within this distance of any sensor already in the incident join it. */
  readonly radiusM: number;
  /** ... if their alarm is within this of the incident's latest alarm (edge time). */
  readonly windowMs: number;
}

export const CLUSTER_DEFAULTS: ClusterRule = { radiusM: 1500, windowMs: 30 * 60_000 };

export interface ClusterCandidate {
  readonly sensorId: string;
  readonly atMs: number;
  /** Absent for an unregistered sensor: it can only join its own open incident. */
  readonly point?: { readonly lat: number; readonly lon: number };
}

/**
 * The open fire incident this alarm belongs to, or undefined for a new one. The sensor's own open incident wins
 * (a second cause from the same detector); otherwise the nearest incident with a member within the radius and a
 * last alarm inside the window. Closed and false-alarm incidents are never joined: a fire after a false alarm is news.
 */
export function clusterFor(open: Iterable<Incident>, alarm: ClusterCandidate, rule: ClusterRule): Incident | undefined {
  const live: Incident[] = [];
  for (const i of open) {
    if (i.class !== "fire" || i.state === "resolved" || i.state === "false_alarm") continue;
    if (i.sensorIds.includes(alarm.sensorId)) return i;
    live.push(i);
  }
  const point = alarm.point;
  if (point === undefined) return undefined;
  // A box of the radius in degrees rules out nearly every incident before the trigonometry (one degree of latitude
  // is ≥ 110.5 km; of longitude, that times cos(lat)); the haversine decides for what is left.
  const dLatMax = rule.radiusM / 110_000;
  const dLonMax = dLatMax / Math.max(0.01, Math.cos((point.lat * Math.PI) / 180));
  let best: { incident: Incident; distanceM: number } | undefined;
  for (const incident of live) {
    if (Math.abs(alarm.atMs - incident.lastObservedAtMs) > rule.windowMs) continue;
    for (const p of incident.points) {
      if (Math.abs(p.lat - point.lat) > dLatMax || Math.abs(p.lon - point.lon) > dLonMax) continue;
      const distanceM = haversineM(point, p);
      if (distanceM <= rule.radiusM && (best === undefined || distanceM < best.distanceM)) best = { incident, distanceM };
    }
  }
  return best?.incident;
}
