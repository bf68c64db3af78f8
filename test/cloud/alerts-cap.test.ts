// CAP 1.2 output checked against the rules of the OASIS CAP 1.2 schema (CAP-v1.2-os, §3.2 and the XSD): the
// namespace, the required elements of alert, info and area, their order, the enumerations, the dateTime form
// ("-00:00" for UTC, no fractional seconds), identifiers without spaces, commas or '<' '&', "sender,identifier,sent"
// references, closed polygons of at least four WGS-84 "lat,lon" pairs and "lat,lon radius" circles.

import { describe, expect, it } from "vitest";
import { CAP_NAMESPACE, renderCap, type CapOptions } from "../../cloud/alerts/cap.js";
import { incidentStep, openIncident } from "../../cloud/alerts/incident-step.js";
import type { AlarmRecord, Incident, IncidentEvent } from "../../cloud/alerts/types.js";

// ─── a strict little XML reader: elements, text and attributes; anything else is an error ─────────────────────────

interface XmlElement {
  readonly name: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly children: XmlElement[];
  text: string;
}

function parseXml(xml: string): XmlElement {
  const body = xml.replace(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n/, "");
  if (body === xml) throw new Error("missing XML declaration");
  const tokens = body.trim().match(/<[^>]+>|[^<]+/g) ?? [];
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const unescape = (s: string): string => {
    if (/&(?!(amp|lt|gt|quot|apos);)/.test(s)) throw new Error(`bad entity in ${s}`);
    return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&");
  };
  for (const token of tokens) {
    if (token.startsWith("</")) {
      const name = token.slice(2, -1);
      const top = stack.pop();
      if (top?.name !== name) throw new Error(`</${name}> closes <${top?.name ?? "nothing"}>`);
      continue;
    }
    if (token.startsWith("<")) {
      const m = /^<([A-Za-z][\w.-]*)((?:\s+[\w:.-]+="[^"]*")*)\s*(\/?)>$/.exec(token);
      if (m === null) throw new Error(`bad tag ${token}`);
      const attributes = Object.fromEntries([...(m[2] ?? "").matchAll(/([\w:.-]+)="([^"]*)"/g)].map((a) => [a[1] ?? "", unescape(a[2] ?? "")]));
      const element: XmlElement = { name: m[1] ?? "", attributes, children: [], text: "" };
      const parent = stack.at(-1);
      if (parent === undefined) {
        if (root !== undefined) throw new Error("two root elements");
        root = element;
      } else parent.children.push(element);
      if (m[3] !== "/") stack.push(element);
      continue;
    }
    const parent = stack.at(-1);
    if (parent === undefined) {
      if (token.trim() !== "") throw new Error("text outside the root");
      continue;
    }
    parent.text += unescape(token);
  }
  if (stack.length > 0 || root === undefined) throw new Error("unclosed elements");
  return root;
}

// ─── the CAP 1.2 rules ────────────────────────────────────────────────────────────────────────────────────────────

type Occurs = "1" | "?" | "*" | "+";
/** Element sequences of the CAP 1.2 XSD, in schema order, with their occurrence. */
const ALERT_SEQUENCE: readonly [string, Occurs][] = [["identifier", "1"], ["sender", "1"], ["sent", "1"], ["status", "1"], ["msgType", "1"], ["source", "?"], ["scope", "1"], ["restriction", "?"], ["addresses", "?"], ["code", "*"], ["note", "?"], ["references", "?"], ["incidents", "?"], ["info", "*"]];
const INFO_SEQUENCE: readonly [string, Occurs][] = [["language", "?"], ["category", "+"], ["event", "1"], ["responseType", "*"], ["urgency", "1"], ["severity", "1"], ["certainty", "1"], ["audience", "?"], ["eventCode", "*"], ["effective", "?"], ["onset", "?"], ["expires", "?"], ["senderName", "?"], ["headline", "?"], ["description", "?"], ["instruction", "?"], ["web", "?"], ["contact", "?"], ["parameter", "*"], ["resource", "*"], ["area", "*"]];
const AREA_SEQUENCE: readonly [string, Occurs][] = [["areaDesc", "1"], ["polygon", "*"], ["circle", "*"], ["geocode", "*"], ["altitude", "?"], ["ceiling", "?"]];
const ENUMS: Readonly<Record<string, readonly string[]>> = {
  status: ["Actual", "Exercise", "System", "Test", "Draft"],
  msgType: ["Alert", "Update", "Cancel", "Ack", "Error"],
  scope: ["Public", "Restricted", "Private"],
  category: ["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"],
  responseType: ["Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"],
  urgency: ["Immediate", "Expected", "Future", "Past", "Unknown"],
  severity: ["Extreme", "Severe", "Moderate", "Minor", "Unknown"],
  certainty: ["Observed", "Likely", "Possible", "Unlikely", "Unknown"],
};
/** CAP 1.2 §3.3.2 / XSD pattern: no fractional seconds, an explicit offset, never "Z". */
const CAP_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[-+]\d{2}:\d{2}$/;
const NO_RESTRICTED = /^[^\s,<&]+$/;
const LAT_LON = /^-?\d{1,2}(\.\d+)?,-?\d{1,3}(\.\d+)?$/;

function checkSequence(parent: XmlElement, sequence: readonly [string, Occurs][], problems: string[]): void {
  let i = 0;
  for (const [name, occurs] of sequence) {
    let n = 0;
    while (parent.children[i]?.name === name) {
      n++;
      i++;
    }
    if ((occurs === "1" || occurs === "+") && n === 0) problems.push(`<${parent.name}> lacks required <${name}>`);
    if ((occurs === "1" || occurs === "?") && n > 1) problems.push(`<${parent.name}> has ${n} <${name}>`);
  }
  if (i < parent.children.length) problems.push(`<${parent.name}> has <${parent.children[i]?.name ?? "?"}> out of schema order or unknown`);
}

function checkPair(value: string, what: string, problems: string[]): void {
  if (!LAT_LON.test(value)) return void problems.push(`${what} point "${value}" is not lat,lon`);
  const [lat, lon] = value.split(",").map(Number);
  if (lat === undefined || lon === undefined || Math.abs(lat) > 90 || Math.abs(lon) > 180) problems.push(`${what} point ${value} is outside WGS-84 ranges`);
}

/** Every CAP 1.2 rule this file checks; [] when the document keeps them all. */
function capProblems(xml: string): string[] {
  const problems: string[] = [];
  const alert = parseXml(xml);
  if (alert.name !== "alert") problems.push(`root is <${alert.name}>`);
  if (alert.attributes.xmlns !== CAP_NAMESPACE) problems.push("wrong or missing CAP 1.2 namespace");
  checkSequence(alert, ALERT_SEQUENCE, problems);
  const walk = (e: XmlElement): void => {
    if (e.children.length === 0 && e.text.trim() === "" && e.name !== "alert") problems.push(`<${e.name}> is empty`);
    const allowed = ENUMS[e.name];
    if (allowed !== undefined && !allowed.includes(e.text)) problems.push(`<${e.name}>${e.text}</${e.name}> is not one of ${allowed.join(", ")}`);
    if (["sent", "effective", "onset", "expires"].includes(e.name) && !CAP_DATETIME.test(e.text)) problems.push(`<${e.name}> ${e.text} is not a CAP dateTime`);
    if (["sent", "effective", "onset", "expires"].includes(e.name) && e.text.endsWith("+00:00")) problems.push(`<${e.name}> writes UTC as +00:00, CAP wants -00:00`);
    e.children.forEach(walk);
  };
  walk(alert);
  const child = (p: XmlElement, name: string): XmlElement | undefined => p.children.find((c) => c.name === name);
  for (const name of ["identifier", "sender"]) {
    const v = child(alert, name)?.text ?? "";
    if (!NO_RESTRICTED.test(v)) problems.push(`<${name}> "${v}" has spaces, commas or restricted characters`);
  }
  const scope = child(alert, "scope")?.text;
  if (scope === "Restricted" && child(alert, "restriction") === undefined) problems.push("Restricted scope without <restriction>");
  if (scope === "Private" && child(alert, "addresses") === undefined) problems.push("Private scope without <addresses>");
  const msgType = child(alert, "msgType")?.text;
  const references = child(alert, "references")?.text;
  if ((msgType === "Update" || msgType === "Cancel") && references === undefined) problems.push(`${msgType} without <references>`);
  for (const ref of references?.split(" ") ?? []) {
    const parts = ref.split(",");
    if (parts.length !== 3 || !CAP_DATETIME.test(parts[2] ?? "")) problems.push(`reference "${ref}" is not sender,identifier,sent`);
  }
  for (const info of alert.children.filter((c) => c.name === "info")) {
    checkSequence(info, INFO_SEQUENCE, problems);
    for (const parameter of info.children.filter((c) => c.name === "parameter")) checkSequence(parameter, [["valueName", "1"], ["value", "1"]], problems);
    for (const area of info.children.filter((c) => c.name === "area")) {
      checkSequence(area, AREA_SEQUENCE, problems);
      for (const polygon of area.children.filter((c) => c.name === "polygon")) {
        const pairs = polygon.text.split(" ");
        if (pairs.length < 4) problems.push(`polygon has ${pairs.length} points, CAP needs at least 4`);
        if (pairs[0] !== pairs.at(-1)) problems.push("polygon is not closed");
        pairs.forEach((p) => checkPair(p, "polygon", problems));
      }
      for (const circle of area.children.filter((c) => c.name === "circle")) {
        const [centre, radius, extra] = circle.text.split(" ");
        if (extra !== undefined || radius === undefined || !/^\d+(\.\d+)?$/.test(radius)) problems.push(`circle "${circle.text}" is not "lat,lon radius"`);
        checkPair(centre ?? "", "circle", problems);
      }
    }
  }
  return problems;
}

// ─── incidents to render ──────────────────────────────────────────────────────────────────────────────────────────

const T0 = Date.UTC(2026, 10, 23, 6, 0, 0, 123);
const OPTIONS: CapOptions = { sender: "alerts@deqing.agri-edge.invalid", senderName: "Deqing forest fire command room", identifierPrefix: "agri-edge.deqing", jurisdictionName: "Xiantan <village> & forest" };
const alarm = (sensorId: string, atMs: number, cause: AlarmRecord["cause"] = "device_flag"): AlarmRecord => ({ alarmId: `${sensorId}-${atMs}`, sensorId, gatewayId: "gw-1", cause, atMs, receivedAtMs: atMs });
const join = (incident: Incident, sensorId: string, lat: number, lon: number, atMs: number): Incident => {
  const r = incidentStep(incident, { kind: "alarm", alarm: alarm(sensorId, atMs), point: { lat, lon }, registered: true }, atMs);
  if (!r.ok) throw new Error(r.reason);
  return r.incident;
};
const step = (incident: Incident, event: IncidentEvent, atMs: number): Incident => {
  const r = incidentStep(incident, event, atMs);
  if (!r.ok) throw new Error(r.reason);
  return r.incident;
};
const opened = openIncident({ incidentId: "inc-xt-1", class: "fire", jurisdictionId: "xiantan" }, { kind: "alarm", alarm: alarm("s-a", T0), point: { lat: 30.5851, lon: 119.8723 }, registered: true }, T0 + 40).incident;

describe("CAP 1.2 rendering", () => {
  it("renders a new incident as a valid CAP Alert", () => {
    const xml = renderCap(opened, OPTIONS);
    expect(capProblems(xml)).toEqual([]);
    expect(xml).toContain("<msgType>Alert</msgType>");
    expect(xml).toContain("<status>Actual</status>");
    expect(xml).toContain("<certainty>Possible</certainty>");
  });

  it("writes times in UTC as -00:00 without fractional seconds", () => {
    expect(renderCap(opened, OPTIONS)).toContain("<sent>2026-11-23T06:00:00-00:00</sent>");
  });

  it("renders a corroborated incident as an Update referencing the original alert", () => {
    const updated = join(opened, "s-b", 30.5878, 119.8723, T0 + 30_000);
    const xml = renderCap(updated, OPTIONS);
    expect(capProblems(xml)).toEqual([]);
    expect(xml).toContain("<msgType>Update</msgType>");
    expect(xml).toContain("<references>alerts@deqing.agri-edge.invalid,agri-edge.deqing.inc-xt-1.1,2026-11-23T06:00:00-00:00</references>");
    expect(xml).toContain("<certainty>Likely</certainty>");
  });

  it("renders a false alarm as a Cancel", () => {
    const cancelled = step(opened, { kind: "action", action: "false_alarm", actor: "dispatcher-wang" }, T0 + 60_000);
    const xml = renderCap(cancelled, OPTIONS);
    expect(capProblems(xml)).toEqual([]);
    expect(xml).toContain("<msgType>Cancel</msgType>");
  });

  it("renders a test incident with status Test", () => {
    const test = { ...opened, class: "test" as const };
    const xml = renderCap(test, OPTIONS);
    expect(capProblems(xml)).toEqual([]);
    expect(xml).toContain("<status>Test</status>");
  });

  it("draws a closed polygon around three or more sensors, and a circle covering them all", () => {
    const three = join(join(opened, "s-b", 30.5878, 119.8723, T0 + 1000), "s-c", 30.5866, 119.8761, T0 + 2000);
    const xml = renderCap(three, OPTIONS);
    expect(capProblems(xml)).toEqual([]);
    const polygon = /<polygon>([^<]+)<\/polygon>/.exec(xml)?.[1]?.split(" ");
    expect(polygon).toHaveLength(4);
    expect(/<circle>[\d.]+,[\d.]+ \d+\.\d{3}<\/circle>/.test(xml)).toBe(true);
  });

  it("renders an unregistered sensor's incident without coordinates and says the location is unknown", () => {
    const ghost = openIncident({ incidentId: "inc-ghost", class: "fire", jurisdictionId: null }, { kind: "alarm", alarm: alarm("ghost-7", T0), registered: false }, T0).incident;
    const { jurisdictionName: _unused, ...withoutName } = OPTIONS;
    const xml = renderCap(ghost, withoutName);
    expect(capProblems(xml)).toEqual([]);
    expect(xml).toContain("unregistered sensor ghost-7 (location unknown)");
    expect(xml).not.toContain("<circle>");
  });

  it("escapes markup in names so the document stays well formed", () => {
    const xml = renderCap(opened, OPTIONS);
    expect(xml).toContain("Xiantan &lt;village&gt; &amp; forest");
    expect(capProblems(xml)).toEqual([]);
  });

  it("catches documents that break the rules (the checker is not a rubber stamp)", () => {
    const good = renderCap(opened, OPTIONS);
    expect(capProblems(good.replace("<status>Actual</status>", "<status>Real</status>"))).toContain("<status>Real</status> is not one of Actual, Exercise, System, Test, Draft");
    expect(capProblems(good.replace(/<sent>[^<]+<\/sent>/, "<sent>2026-11-23T06:00:00.123Z</sent>"))).toContain("<sent> 2026-11-23T06:00:00.123Z is not a CAP dateTime");
    expect(capProblems(good.replace(/(<scope>Restricted<\/scope>)(<restriction>[^<]+<\/restriction>)/, "$2$1")).length).toBeGreaterThan(0);
    expect(capProblems(good.replace(/<event>[^<]+<\/event>/, ""))).toContain("<info> lacks required <event>");
    expect(capProblems(good.replace("<msgType>Alert</msgType>", "<msgType>Update</msgType>"))).toContain("Update without <references>");
  });
});
