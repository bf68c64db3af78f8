// CAP 1.2 (OASIS Common Alerting Protocol v1.2, 2010) XML for every incident version: the first is an Alert, every
// later change an Update that references the original, and a false alarm a Cancel. Pure: renderCap(incident,
// options) → string. Element order, enumerations and formats follow the CAP 1.2 schema (§3.2, §3.3); the tests
// check them element by element.

import { haversineM } from "./clustering.js";
import type { Certainty, Incident } from "./types.js";

export const CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2";

export interface CapOptions {
  /** CAP §3.2.1 sender: globally unique, no spaces, commas or restricted characters. */
  readonly sender: string;
  readonly senderName: string;
  /** Prefix of identifiers, e.g. "agri-edge.huzhou". */
  readonly identifierPrefix: string;
  readonly jurisdictionName?: string;
}

/** CAP §3.3.2: dateTime with an explicit offset, no fractional seconds; UTC written as "-00:00", never "Z". */
export function capDateTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}-00:00`;
}

/** CAP §3.2.1: identifier and sender must not include spaces, commas or restricted characters (< and &). */
const capToken = (s: string): string => s.replace(/[\s,<&]/g, "_");

export const capIdentifier = (prefix: string, incidentId: string, version: number): string => capToken(`${prefix}.${incidentId}.${version}`);

const escapeXml = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const el = (name: string, text: string): string => `<${name}>${escapeXml(text)}</${name}>`;

const EVENT_NAMES: Readonly<Record<Incident["class"], string>> = {
  fire: "Forest fire alarm",
  test: "Forest fire alarm (test)",
  monitoring_gap: "Fire sensor monitoring gap",
  sensor_fault: "Fire sensor fault",
  low_battery: "Fire sensor low battery",
  calibration: "Fire sensor alarm during calibration",
};

function severityOf(incident: Incident): "Extreme" | "Severe" | "Moderate" | "Minor" | "Unknown" {
  if (incident.class !== "fire" && incident.class !== "test") return "Minor";
  if (incident.certainty === "Unlikely") return "Minor";
  return incident.certainty === "Observed" ? "Extreme" : "Severe";
}

function responseTypeOf(incident: Incident): "Assess" | "Execute" | "AllClear" | "Monitor" | "None" {
  if (incident.state === "resolved" || incident.state === "false_alarm") return "AllClear";
  if (incident.class !== "fire" && incident.class !== "test") return "Monitor";
  return incident.state === "confirmed" || incident.state === "dispatched" || incident.state === "on_scene" ? "Execute" : "Assess";
}

/** Andrew's monotone chain; points as [lon, lat] in a plane, fine over the few km a cluster spans. */
function convexHull(points: readonly { readonly lat: number; readonly lon: number }[]): { lat: number; lon: number }[] {
  const p = [...points].sort((a, b) => a.lon - b.lon || a.lat - b.lat);
  const cross = (o: { lat: number; lon: number }, a: { lat: number; lon: number }, b: { lat: number; lon: number }): number => (a.lon - o.lon) * (b.lat - o.lat) - (a.lat - o.lat) * (b.lon - o.lon);
  const half = (list: readonly { lat: number; lon: number }[]): { lat: number; lon: number }[] => {
    const out: { lat: number; lon: number }[] = [];
    for (const q of list) {
      while (out.length >= 2 && cross(out[out.length - 2] as { lat: number; lon: number }, out[out.length - 1] as { lat: number; lon: number }, q) <= 0) out.pop();
      out.push(q);
    }
    out.pop();
    return out;
  };
  return [...half(p), ...half([...p].reverse())];
}

const latLon = (p: { readonly lat: number; readonly lon: number }): string => `${p.lat.toFixed(6)},${p.lon.toFixed(6)}`;

/** CAP §3.2.4 area: a circle around the sensors' centroid covering every sensor, and their hull when it is a polygon. */
function renderArea(incident: Incident, jurisdictionName: string | undefined): string {
  const where = jurisdictionName ?? incident.jurisdictionId ?? "unknown jurisdiction";
  const unknown = incident.unregisteredSensorIds.length > 0 ? `; unregistered sensor ${incident.unregisteredSensorIds.join(", ")} (location unknown)` : "";
  const desc = `${where}: sensor ${incident.sensorIds.join(", ")}${unknown}`;
  const parts = [el("areaDesc", desc)];
  const points = incident.points;
  if (points.length > 0) {
    const centre = { lat: points.reduce((s, p) => s + p.lat, 0) / points.length, lon: points.reduce((s, p) => s + p.lon, 0) / points.length };
    const hull = points.length >= 3 ? convexHull(points) : [];
    if (hull.length >= 3) {
      const first = hull[0] as { lat: number; lon: number };
      // §3.2.4 polygon: at least four pairs, the first and last the same.
      parts.push(el("polygon", [...hull, first].map(latLon).join(" ")));
    }
    const radiusKm = (Math.max(0, ...points.map((p) => haversineM(centre, p))) + 500) / 1000;
    parts.push(el("circle", `${latLon(centre)} ${radiusKm.toFixed(3)}`));
  }
  return `<area>${parts.join("")}</area>`;
}

/** The first version is the Alert; a false alarm (or a close as one) cancels it; everything else updates it. */
export function capMsgType(incident: Pick<Incident, "version" | "state" | "disposition">): "Alert" | "Update" | "Cancel" {
  if (incident.version === 1) return "Alert";
  if (incident.state === "false_alarm" || incident.disposition === "false_alarm" || incident.disposition === "nuisance") return "Cancel";
  return "Update";
}

export function renderCap(incident: Incident, options: CapOptions): string {
  const sender = capToken(options.sender);
  const identifier = capIdentifier(options.identifierPrefix, incident.incidentId, incident.version);
  const status = incident.class === "test" ? "Test" : "Actual";
  const msgType = capMsgType(incident);
  const certainty: Certainty = incident.certainty;
  const causes = [...new Set(incident.alarms.map((a) => a.cause))].join(", ");
  const headline = `${EVENT_NAMES[incident.class]} — ${options.jurisdictionName ?? incident.jurisdictionId ?? "unknown jurisdiction"}`;
  const description = `${incident.sensorIds.length} sensor(s): ${incident.sensorIds.join(", ")}; causes: ${causes}; state ${incident.state}${incident.disposition === undefined ? "" : `, disposition ${incident.disposition}`}`;
  const parameters: [string, string][] = [
    ["incidentState", incident.state],
    ["incidentClass", incident.class],
    ...(incident.disposition === undefined ? [] : [["disposition", incident.disposition] as [string, string]]),
    ...(incident.gridWorker === undefined ? [] : [["gridWorker", incident.gridWorker] as [string, string]]),
    ...(incident.officer === undefined ? [] : [["officer", incident.officer] as [string, string]]),
    ["escalationLevel", String(incident.escalations.at(-1)?.level ?? 0)],
  ];
  const info = [
    el("language", "en-US"),
    el("category", incident.class === "fire" || incident.class === "test" ? "Fire" : "Infra"),
    el("event", EVENT_NAMES[incident.class]),
    el("responseType", responseTypeOf(incident)),
    el("urgency", incident.state === "resolved" ? "Past" : "Immediate"),
    el("severity", severityOf(incident)),
    el("certainty", certainty),
    el("onset", capDateTime(incident.firstObservedAtMs)),
    el("senderName", options.senderName),
    el("headline", headline.slice(0, 160)),
    el("description", description),
    ...parameters.map(([name, value]) => `<parameter>${el("valueName", name)}${el("value", value)}</parameter>`),
    renderArea(incident, options.jurisdictionName),
  ].join("");
  const alert = [
    el("identifier", identifier),
    el("sender", sender),
    el("sent", capDateTime(incident.updatedAtMs)),
    el("status", status),
    el("msgType", msgType),
    el("scope", "Restricted"),
    el("restriction", "command rooms and emergency services of the jurisdiction"),
    // §3.2.1 references: "sender,identifier,sent" of the original alert, for every Update and Cancel.
    ...(msgType === "Alert" ? [] : [el("references", `${sender},${capIdentifier(options.identifierPrefix, incident.incidentId, 1)},${capDateTime(incident.openedAtMs)}`)]),
    el("incidents", capToken(incident.incidentId)),
    `<info>${info}</info>`,
  ].join("");
  return `<?xml version="1.0" encoding="UTF-8"?>\n<alert xmlns="${CAP_NAMESPACE}">${alert}</alert>\n`;
}
