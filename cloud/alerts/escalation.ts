// Escalation tiers (the 12345 hotline's time-limited tiers, Guangzhou's village → town → district reporting): a fire
// incident not acknowledged within its tier's ackTimeoutMs, or dispatched and not on scene within onSceneTimeoutMs,
// escalates to the parent jurisdiction and is notified again; at the root it keeps being re-notified at the root's
// interval. Pure: dueEscalations(incidents, jurisdictions, nowMs) says which escalations are due now.

import type { Escalation, Incident, IncidentClass, Jurisdiction } from "./types.js";

/** Used for an incident with no jurisdiction (an unregistered sensor on an unknown gateway). */
export const FALLBACK_TIMEOUTS = { ackTimeoutMs: 120_000, onSceneTimeoutMs: 30 * 60_000 } as const;

/** Only these escalate: a dead fire sensor is a hazard too (invariant 7); test and calibration traffic never does. */
const ESCALATING: readonly IncidentClass[] = ["fire", "monitoring_gap"];

/** The jurisdiction itself first, then its parent, up to the root (coversJurisdiction's ancestor list). */
export function ancestry(jurisdictions: ReadonlyMap<string, Jurisdiction>, jurisdictionId: string | null): readonly string[] {
  const chain: string[] = [];
  let id = jurisdictionId;
  while (id !== null && !chain.includes(id)) {
    const j = jurisdictions.get(id);
    if (j === undefined) break;
    chain.push(id);
    id = j.parentId;
  }
  return chain;
}

export interface DueEscalation {
  readonly incidentId: string;
  readonly escalation: Escalation;
}

export function dueEscalations(incidents: readonly Incident[], jurisdictions: ReadonlyMap<string, Jurisdiction>, nowMs: number): readonly DueEscalation[] {
  const due: DueEscalation[] = [];
  for (const incident of incidents) {
    if (!ESCALATING.includes(incident.class) || incident.mutedBy !== undefined) continue;
    let reason: Escalation["reason"];
    let sinceMs: number;
    if (incident.state === "new") {
      reason = "ack_timeout";
      sinceMs = incident.openedAtMs;
    } else if (incident.state === "dispatched" && incident.times.dispatched !== undefined) {
      reason = "on_scene_timeout";
      sinceMs = incident.times.dispatched;
    } else continue;
    const chain = ancestry(jurisdictions, incident.jurisdictionId);
    // Escalations for the current wait only: an ack escalation does not count against the on-scene clock.
    const previous = incident.escalations.filter((e) => e.reason === reason && e.atMs >= sinceMs);
    const last = previous.at(-1);
    const level = last?.level ?? 0;
    const tier = jurisdictions.get(chain[Math.min(level, chain.length - 1)] ?? "") ?? undefined;
    const timeoutMs = reason === "ack_timeout" ? (tier?.ackTimeoutMs ?? FALLBACK_TIMEOUTS.ackTimeoutMs) : (tier?.onSceneTimeoutMs ?? FALLBACK_TIMEOUTS.onSceneTimeoutMs);
    if (nowMs - (last?.atMs ?? sinceMs) < timeoutMs) continue;
    const nextLevel = Math.min(level + 1, Math.max(chain.length - 1, 0));
    due.push({ incidentId: incident.incidentId, escalation: { level: nextLevel, jurisdictionId: chain[nextLevel] ?? null, reason, atMs: nowMs } });
  }
  return due;
}
