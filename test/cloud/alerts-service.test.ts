// The alert service with its real SQLite file and real HTTP webhook receivers: alarms and gateway events become
// incidents of the right class, persisted when the sink returns; the state survives a restart; the stream log
// replays after an id; webhooks reach a receiver that was down, in order and signed, and an alert that cannot be
// delivered is shown as undelivered.

import { createServer, type IncomingMessage, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createAlertService, type AlertService } from "../../cloud/alerts/service.js";
import type { StreamEvent } from "../../cloud/alerts/store.js";
import type { Incident } from "../../cloud/alerts/types.js";
import { startWebhookWorker, verifyWebhook, type WebhookWorker } from "../../cloud/alerts/webhooks.js";
import type { AlarmMessage, EventBatch, GatewayEvent } from "../../protocols/mqtt/messages.js";
import { eventually } from "../harness/broker.js";
import { freePort } from "../harness/servers.js";

const GW = "gw-xiantan";
const T0 = Date.UTC(2026, 10, 23, 6, 0, 0);
const log = pino({ level: process.env.TEST_LOG ?? "silent" });

let dir: string;
let clock: number;
let seq: number;
let service: AlertService;
let ids: number;
const services: AlertService[] = [];
const workers: WebhookWorker[] = [];
const servers: Server[] = [];

function start(): AlertService {
  const s = createAlertService({ path: join(dir, "alerts.db"), log, now: () => clock, newId: (kind) => `${kind}-${++ids}`, escalationCheckMs: 0, cluster: { radiusM: 1500, windowMs: 600_000 } });
  services.push(s);
  return s;
}

function provision(s: AlertService): void {
  s.upsertJurisdiction({ jurisdictionId: "deqing", parentId: null, tier: "county", name: "Deqing", ackTimeoutMs: 300_000, onSceneTimeoutMs: 1_800_000 });
  s.upsertJurisdiction({ jurisdictionId: "mogan", parentId: "deqing", tier: "township", name: "Moganshan", ackTimeoutMs: 120_000, onSceneTimeoutMs: 1_200_000 });
  s.upsertJurisdiction({ jurisdictionId: "xiantan", parentId: "mogan", tier: "village", name: "Xiantan", ackTimeoutMs: 60_000, onSceneTimeoutMs: 600_000 });
  s.upsertJurisdiction({ jurisdictionId: "anji", parentId: null, tier: "county", name: "Anji", ackTimeoutMs: 300_000, onSceneTimeoutMs: 1_800_000 });
  s.upsertSensor({ sensorId: "fire-a", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.5851, lon: 119.8723, name: "ridge east", mode: "normal" });
  s.upsertSensor({ sensorId: "fire-b", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.5878, lon: 119.8723, name: "ridge west", mode: "normal" });
  s.upsertSensor({ sensorId: "fire-far", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.6301, lon: 119.8723, name: "far valley", mode: "normal" });
  s.upsertSensor({ sensorId: "fire-test", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.5852, lon: 119.8724, name: "test bench", mode: "test" });
  s.upsertSensor({ sensorId: "fire-cal", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.5853, lon: 119.8725, name: "new node", mode: "calibration" });
}

const iso = (ms: number): string => new Date(ms).toISOString();
const alarmMessage = (event: AlarmMessage["event"]): AlarmMessage => ({ v: 1, gatewayId: GW, seq: ++seq, sentAt: iso(clock), event });
const raised = (deviceId: string, atMs: number, cause: "device_flag" | "temperature_rise" | "smoke_density" = "device_flag"): AlarmMessage["event"] => ({ type: "alarm.raised", deviceId, cause, at: iso(atMs), alarmId: `${deviceId}-${atMs}-${cause}` });
const batch = (...events: GatewayEvent[]): EventBatch => ({ v: 1, gatewayId: GW, seq: ++seq, sentAt: iso(clock), events });

const incidents = (s: AlertService = service): readonly Incident[] => s.listIncidents({ sinceMs: 0, limit: 1000, openOnly: false });
const only = (s: AlertService = service): Incident => {
  const list = incidents(s);
  if (list.length !== 1) throw new Error(`expected one incident, got ${list.length}`);
  return list[0] as Incident;
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "alerts-service-"));
  clock = T0;
  seq = 0;
  ids = 0;
  service = start();
  provision(service);
});

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const s of services.splice(0)) {
    try {
      s.stop();
    } catch {
      // already stopped by the test
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("alarms become incidents", () => {
  it("has the incident committed to the file when the alarm sink returns", () => {
    service.onAlarm(alarmMessage(raised("fire-a", T0 - 300)), GW);
    const db = new Database(join(dir, "alerts.db"), { readonly: true });
    try {
      expect(db.prepare("SELECT class, state, jurisdiction_id FROM alerts_incidents").all()).toEqual([{ class: "fire", state: "new", jurisdiction_id: "xiantan" }]);
      expect(db.prepare("SELECT count(*) AS n FROM alerts_stream").get()).toEqual({ n: 1 });
    } finally {
      db.close();
    }
  });

  it("joins alarms from two nearby sensors into one incident of rising certainty", () => {
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    expect(only().certainty).toBe("Possible");
    clock += 20_000;
    service.onAlarm(alarmMessage(raised("fire-b", T0 + 20_000)), GW);
    expect(only()).toMatchObject({ sensorIds: ["fire-a", "fire-b"], certainty: "Likely", version: 2 });
  });

  it("opens a separate incident for a sensor kilometres away", () => {
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    service.onAlarm(alarmMessage(raised("fire-far", T0 + 1000)), GW);
    expect(incidents()).toHaveLength(2);
  });

  it("changes nothing when the same alarm is delivered twice", () => {
    const message = alarmMessage(raised("fire-a", T0));
    service.onAlarm(message, GW);
    service.onAlarm(message, GW);
    expect(only().version).toBe(1);
    expect(service.lastStreamId()).toBe(1);
  });

  it("keeps an alarm from an unregistered sensor as an incident in its gateway's jurisdiction, location unknown", () => {
    service.onAlarm(alarmMessage(raised("fire-ghost", T0)), GW);
    expect(only()).toMatchObject({ class: "fire", jurisdictionId: "xiantan", unregisteredSensorIds: ["fire-ghost"], points: [] });
  });

  it("keeps an alarm from an unknown gateway's unknown sensor for the admins (no jurisdiction)", () => {
    service.onAlarm({ ...alarmMessage(raised("stray", T0)), gatewayId: "gw-unknown" }, "gw-unknown");
    expect(only().jurisdictionId).toBeNull();
  });

  it("records a cleared alarm on its incident without closing it", () => {
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    service.onAlarm(alarmMessage({ type: "alarm.cleared", deviceId: "fire-a", cause: "device_flag", at: iso(T0 + 60_000), alarmId: `fire-a-${T0}-device_flag` }), GW);
    expect(only()).toMatchObject({ state: "new", alarms: [{ clearedAtMs: T0 + 60_000 }] });
  });

  it("ignores metering events in an event batch", () => {
    service.onEvents(batch({ type: "relay.opened", deviceId: "pump-li", at: iso(T0), reason: "credit_exhausted", registerWh: 1000, registerValue: 0, verified: true }), GW);
    expect(incidents()).toEqual([]);
  });
});

describe("classes that never mix with fire", () => {
  it("turns a silent sensor into a monitoring-gap incident, closed as restored when it answers again", () => {
    service.onAlarm(alarmMessage({ type: "monitoring.gap", deviceId: "fire-a", at: iso(T0), silentSinceAt: iso(T0 - 3000), missedPolls: 3 }), GW);
    expect(only()).toMatchObject({ class: "monitoring_gap", state: "new" });
    service.onAlarm(alarmMessage({ type: "monitoring.restored", deviceId: "fire-a", at: iso(T0 + 9000), silentSinceAt: iso(T0 - 3000), gapReportedAt: iso(T0) }), GW);
    expect(only()).toMatchObject({ class: "monitoring_gap", state: "resolved", disposition: "restored" });
  });

  it("never joins a fire alarm to a monitoring gap of the same sensor", () => {
    service.onAlarm(alarmMessage({ type: "monitoring.gap", deviceId: "fire-a", at: iso(T0), silentSinceAt: iso(T0 - 3000), missedPolls: 3 }), GW);
    service.onAlarm(alarmMessage(raised("fire-a", T0 + 1000)), GW);
    expect(incidents().map((i) => i.class).sort()).toEqual(["fire", "monitoring_gap"]);
  });

  it("opens a sensor-fault incident for a faulted sensor and closes it when the fault clears", () => {
    service.onEvents(batch({ type: "sensor.fault", deviceId: "fire-b", at: iso(T0), faulted: true }), GW);
    expect(only()).toMatchObject({ class: "sensor_fault", state: "new" });
    service.onEvents(batch({ type: "sensor.fault", deviceId: "fire-b", at: iso(T0 + 5000), faulted: false }), GW);
    expect(only()).toMatchObject({ state: "resolved", disposition: "restored" });
  });

  it("makes a test sensor's alarm a test incident that can never be dispatched", () => {
    service.onAlarm(alarmMessage(raised("fire-test", T0)), GW);
    const incident = only();
    expect(incident.class).toBe("test");
    service.transition(incident.incidentId, { action: "confirm" }, "dispatcher-wang");
    expect(() => service.transition(incident.incidentId, { action: "dispatch", assignee: "officer-lu" }, "dispatcher-wang")).toThrow(/never dispatched/);
  });

  it("makes an alarm of a sensor in calibration a calibration incident, not a fire", () => {
    service.onAlarm(alarmMessage(raised("fire-cal", T0)), GW);
    service.onAlarm(alarmMessage(raised("fire-a", T0 + 1000)), GW);
    expect(incidents().map((i) => i.class).sort()).toEqual(["calibration", "fire"]);
  });
});

describe("transitions, mutes and escalation", () => {
  it("logs every transition with its actor and the server's time", () => {
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    const { incidentId } = only();
    clock = T0 + 10_000;
    service.transition(incidentId, { action: "acknowledge" }, "dispatcher-wang");
    clock = T0 + 20_000;
    service.transition(incidentId, { action: "verify", assignee: "grid-worker-chen" }, "dispatcher-wang");
    expect(service.incidentLog(incidentId).map((e) => [e.kind, e.actor, e.atMs])).toEqual([
      ["opened", `gateway:${GW}`, T0],
      ["acknowledge", "dispatcher-wang", T0 + 10_000],
      ["verify", "dispatcher-wang", T0 + 20_000],
    ]);
  });

  it("refuses a transition on an incident that does not exist", () => {
    expect(() => service.transition("inc-nope", { action: "acknowledge" }, "dispatcher-wang")).toThrow(/no incident/);
  });

  it("records a muted sensor's alarm and shows it, but neither escalates it nor sends it out", async () => {
    const receiver = await startReceiver();
    service.upsertReceiver({ receiverId: "county-119", url: receiver.url, secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: null, enabled: true });
    const mute = service.mute({ sensorId: "fire-a", untilMs: T0 + 3_600_000, reason: "permitted straw burning" }, "dispatcher-wang");
    service.onAlarm(alarmMessage(raised("fire-a", T0 + 1000)), GW);
    expect(only().mutedBy).toBe(mute.muteId);
    clock = T0 + 86_400_000;
    expect(service.runEscalations()).toBe(0);
    expect(service.deliveries(only().incidentId)).toEqual([]);
  });

  it("sends out and escalates a muted sensor's incident once an unmuted neighbour's alarm joins it", async () => {
    const receiver = await startReceiver();
    service.upsertReceiver({ receiverId: "county-119", url: receiver.url, secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: null, enabled: true });
    service.mute({ sensorId: "fire-a", untilMs: T0 + 60_000, reason: "permitted straw burning" }, "dispatcher-wang");
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    expect(service.deliveries(only().incidentId)).toEqual([]);
    clock = T0 + 120_000;
    service.onAlarm(alarmMessage(raised("fire-b", T0 + 120_000)), GW);
    expect(only()).toMatchObject({ sensorIds: ["fire-a", "fire-b"] });
    expect(only().mutedBy).toBeUndefined();
    expect(service.deliveries(only().incidentId).map((d) => [d.receiverId, d.state])).toEqual([["county-119", "pending"]]);
    expect(service.runEscalations()).toBe(1);
    expect(only().escalations).toMatchObject([{ level: 1, jurisdictionId: "mogan", reason: "ack_timeout" }]);
  });

  it("sends out and escalates a muted sensor's incident when the same sensor alarms again after its mute ended", async () => {
    const receiver = await startReceiver();
    service.upsertReceiver({ receiverId: "county-119", url: receiver.url, secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: null, enabled: true });
    service.mute({ sensorId: "fire-a", untilMs: T0 + 60_000, reason: "permitted straw burning" }, "dispatcher-wang");
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    clock = T0 + 120_000;
    service.onAlarm(alarmMessage(raised("fire-a", T0 + 120_000, "smoke_density")), GW);
    expect(only()).toMatchObject({ sensorIds: ["fire-a"] });
    expect(only().mutedBy).toBeUndefined();
    expect(service.deliveries(only().incidentId)).toHaveLength(1);
    expect(service.runEscalations()).toBe(1);
  });

  it("keeps an incident muted while every alarm joining it comes from a sensor still muted", async () => {
    const receiver = await startReceiver();
    service.upsertReceiver({ receiverId: "county-119", url: receiver.url, secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: null, enabled: true });
    const mute = service.mute({ sensorId: "fire-a", untilMs: T0 + 3_600_000, reason: "permitted straw burning" }, "dispatcher-wang");
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    clock = T0 + 120_000;
    service.onAlarm(alarmMessage(raised("fire-a", T0 + 120_000, "smoke_density")), GW);
    expect(only()).toMatchObject({ mutedBy: mute.muteId, version: 2 });
    expect(service.deliveries(only().incidentId)).toEqual([]);
    expect(service.runEscalations()).toBe(0);
  });

  it("refuses a mute without a reason", () => {
    expect(() => service.mute({ sensorId: "fire-a", untilMs: T0 + 60_000, reason: "" }, "dispatcher-wang")).toThrow(/reason/);
  });

  it("escalates an unacknowledged fire to the township and streams the escalation", () => {
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    clock = T0 + 60_000;
    expect(service.runEscalations()).toBe(1);
    expect(only().escalations).toEqual([{ level: 1, jurisdictionId: "mogan", reason: "ack_timeout", atMs: T0 + 60_000 }]);
    const events: StreamEvent[] = [];
    service.subscribe(0, { covers: () => true }, (e) => events.push(e)).close();
    expect(events.map((e) => e.kind)).toEqual(["incident.opened", "incident.escalated"]);
  });
});

describe("the escalation timer", () => {
  it("escalates and notifies again by itself when nobody acknowledges in time", async () => {
    const timed = createAlertService({ path: join(dir, "timed.db"), log, escalationCheckMs: 50 });
    services.push(timed);
    timed.upsertJurisdiction({ jurisdictionId: "mogan", parentId: null, tier: "township", name: "Moganshan", ackTimeoutMs: 1000, onSceneTimeoutMs: 60_000 });
    timed.upsertJurisdiction({ jurisdictionId: "xiantan", parentId: "mogan", tier: "village", name: "Xiantan", ackTimeoutMs: 1000, onSceneTimeoutMs: 60_000 });
    timed.upsertSensor({ sensorId: "fire-a", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.5851, lon: 119.8723, name: "ridge east", mode: "normal" });
    const kinds: string[] = [];
    timed.subscribe(undefined, { covers: () => true }, (e) => kinds.push(e.kind));
    clock = Date.now();
    timed.onAlarm(alarmMessage(raised("fire-a", clock)), GW);
    await eventually(() => kinds.includes("incident.escalated"), 10_000, "escalation");
    expect(timed.listIncidents({ sinceMs: 0, limit: 10, openOnly: true })[0]?.escalations[0]).toMatchObject({ level: 1, jurisdictionId: "mogan", reason: "ack_timeout" });
  });
});

describe("restart and replay", () => {
  it("keeps an incident's state and history across a restart, and stream ids keep rising", () => {
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    const { incidentId } = only();
    service.transition(incidentId, { action: "confirm" }, "dispatcher-wang");
    service.stop();
    const again = start();
    expect(only(again)).toMatchObject({ incidentId, state: "confirmed", certainty: "Observed" });
    // The restarted service still clusters into the open incident, and continues the lifecycle.
    again.onAlarm(alarmMessage(raised("fire-b", T0 + 5000)), GW);
    again.transition(incidentId, { action: "dispatch", assignee: "officer-lu" }, "dispatcher-wang");
    expect(only(again)).toMatchObject({ state: "dispatched", sensorIds: ["fire-a", "fire-b"] });
    expect(again.lastStreamId()).toBe(4);
  });

  it("replays everything after a Last-Event-ID, then goes on live, with nothing between", () => {
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    service.onAlarm(alarmMessage(raised("fire-far", T0)), GW);
    const got: number[] = [];
    const sub = service.subscribe(1, { covers: () => true }, (e) => got.push(e.id));
    expect(sub.replayed).toBe(1);
    service.onAlarm(alarmMessage(raised("fire-b", T0 + 1000)), GW);
    sub.close();
    service.onAlarm(alarmMessage(raised("fire-test", T0 + 1000)), GW);
    expect(got).toEqual([2, 3]);
  });

  it("streams only what the subscriber's jurisdictions cover", () => {
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    const anji: StreamEvent[] = [];
    const mogan: StreamEvent[] = [];
    service.subscribe(0, { covers: (chain) => chain.includes("anji") }, (e) => anji.push(e)).close();
    service.subscribe(0, { covers: (chain) => chain.includes("mogan") }, (e) => mogan.push(e)).close();
    expect(anji).toEqual([]);
    expect(mogan).toHaveLength(1);
  });
});

// ─── webhooks through real HTTP ───────────────────────────────────────────────────────────────────────────────────

interface Received {
  readonly eventId: string;
  readonly body: string;
  readonly valid: boolean;
}

async function startReceiver(port = 0, secret = "s3cret-s3cret-s3cret"): Promise<{ url: string; port: number; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const read = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => resolve(body));
    });
  const server = createServer((req, res) => {
    void read(req).then((body) => {
      const h = (name: string): string => String(req.headers[name] ?? "");
      received.push({ eventId: h("x-agri-event-id"), body, valid: verifyWebhook(secret, h("x-agri-timestamp"), body, h("x-agri-signature")) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  servers.push(server);
  const address = server.address();
  const bound = typeof address === "object" && address !== null ? address.port : port;
  return { url: `http://127.0.0.1:${bound}/alerts`, port: bound, received, server };
}

describe("webhooks", () => {
  it("delivers every alert to a receiver that was down, after it comes back, in order and signed", async () => {
    clock = Date.now();
    const port = await freePort();
    service.upsertReceiver({ receiverId: "county-119", url: `http://127.0.0.1:${port}/alerts`, secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: null, enabled: true });
    const worker = startWebhookWorker({ service, log, now: () => clock, pollMs: 20, policy: { baseDelayMs: 20, maxDelayMs: 100, maxAttempts: 1000, maxAgeMs: 3_600_000 } });
    workers.push(worker);
    service.onAlarm(alarmMessage(raised("fire-a", clock)), GW);
    service.onAlarm(alarmMessage(raised("fire-far", clock)), GW);
    service.onAlarm(alarmMessage(raised("fire-b", clock + 1)), GW);
    const advance = setInterval(() => (clock += 100), 20);
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    try {
      // The receiver refuses connections for a while: attempts pile up on the head of its queue, the rest wait.
      const head = (): number => incidents().flatMap((i) => service.deliveries(i.incidentId)).find((d) => d.streamId === 1)?.attempts ?? 0;
      await eventually(() => head() >= 3, 10_000, "failed attempts");
      expect(incidents().flatMap((i) => service.deliveries(i.incidentId)).filter((d) => d.streamId > 1).every((d) => d.attempts === 0)).toBe(true);
      receiver = await startReceiver(port);
      await eventually(() => receiver.received.length === 3, 10_000, "three deliveries");
    } finally {
      clearInterval(advance);
    }
    expect(receiver.received.map((r) => r.eventId)).toEqual(["1", "2", "3"]);
    expect(receiver.received.every((r) => r.valid)).toBe(true);
    expect((JSON.parse(receiver.received[0]?.body ?? "{}") as { kind: string }).kind).toBe("incident.opened");
    expect(incidents().flatMap((i) => service.deliveries(i.incidentId)).every((d) => d.state === "delivered")).toBe(true);
  });

  it("sends CAP XML to a receiver that asked for it", async () => {
    clock = Date.now();
    const receiver = await startReceiver();
    service.upsertReceiver({ receiverId: "cap-feed", url: receiver.url, secret: "s3cret-s3cret-s3cret", format: "cap", jurisdictionId: "mogan", enabled: true });
    workers.push(startWebhookWorker({ service, log, now: () => clock, pollMs: 20 }));
    service.onAlarm(alarmMessage(raised("fire-a", clock)), GW);
    await eventually(() => receiver.received.length === 1, 10_000, "CAP delivery");
    expect(receiver.received[0]?.body).toContain("<msgType>Alert</msgType>");
    expect(receiver.received[0]?.valid).toBe(true);
  });

  it("sends a receiver only the incidents of its jurisdiction", async () => {
    clock = Date.now();
    const receiver = await startReceiver();
    service.upsertReceiver({ receiverId: "anji-only", url: receiver.url, secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: "anji", enabled: true });
    service.onAlarm(alarmMessage(raised("fire-a", clock)), GW);
    expect(service.deliveries(only().incidentId)).toEqual([]);
  });

  it("marks a receiver's waiting alerts undelivered when it is disabled, logged on the incident and streamed", () => {
    const closed = { receiverId: "county-119", url: "http://127.0.0.1:9/alerts", secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: null, enabled: true } as const;
    service.upsertReceiver(closed);
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    service.onAlarm(alarmMessage(raised("fire-far", T0)), GW);
    const streamed: StreamEvent[] = [];
    service.subscribe(undefined, { covers: () => true }, (e) => streamed.push(e));
    clock = T0 + 5000;
    service.upsertReceiver({ ...closed, enabled: false });
    const rows = incidents().flatMap((i) => service.deliveries(i.incidentId));
    expect(rows.map((d) => [d.state, d.lastError, d.doneAtMs])).toEqual([
      ["undelivered", "receiver county-119 is disabled", T0 + 5000],
      ["undelivered", "receiver county-119 is disabled", T0 + 5000],
    ]);
    expect(streamed.map((e) => e.kind)).toEqual(["delivery.undelivered", "delivery.undelivered"]);
    for (const i of incidents()) expect(service.incidentLog(i.incidentId).map((e) => e.kind)).toEqual(["opened", "undelivered"]);
  });

  it("reports an alert given up by disabling its receiver only once, though the attempt in flight then fails too", () => {
    const closed = { receiverId: "county-119", url: "http://127.0.0.1:9/alerts", secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: null, enabled: true } as const;
    service.upsertReceiver(closed);
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    const inFlight = service.store.outboxHead("county-119");
    if (inFlight === undefined) throw new Error("no outbox row");
    service.upsertReceiver({ ...closed, enabled: false });
    service.deliveryFailed(inFlight, "ECONNREFUSED (max attempts)", true, 0);
    expect(service.incidentLog(only().incidentId).filter((e) => e.kind === "undelivered")).toHaveLength(1);
    expect(service.counters.undelivered).toBe(1);
  });

  it("marks alerts left waiting for a receiver that was already disabled undelivered when the service starts", () => {
    const closed = { receiverId: "county-119", url: "http://127.0.0.1:9/alerts", secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: null, enabled: true } as const;
    service.upsertReceiver(closed);
    service.onAlarm(alarmMessage(raised("fire-a", T0)), GW);
    service.stop();
    // What an older version left behind: the receiver switched off with its queue still pending.
    const db = new Database(join(dir, "alerts.db"));
    try {
      db.prepare("UPDATE alerts_webhook_receivers SET enabled = 0").run();
    } finally {
      db.close();
    }
    service = start();
    expect(service.deliveries(only().incidentId)).toMatchObject([{ receiverId: "county-119", state: "undelivered" }]);
    expect(service.incidentLog(only().incidentId).map((e) => e.kind)).toEqual(["opened", "undelivered"]);
  });

  it("marks an alert undelivered when the receiver never takes it, and streams that to the command room", async () => {
    clock = Date.now();
    const port = await freePort();
    service.upsertReceiver({ receiverId: "dead", url: `http://127.0.0.1:${port}/x`, secret: "s3cret-s3cret-s3cret", format: "json", jurisdictionId: null, enabled: true });
    const worker = startWebhookWorker({ service, log, now: () => clock, pollMs: 10, policy: { baseDelayMs: 5, maxDelayMs: 10, maxAttempts: 3, maxAgeMs: 3_600_000 } });
    workers.push(worker);
    const streamed: StreamEvent[] = [];
    service.subscribe(undefined, { covers: () => true }, (e) => streamed.push(e));
    service.onAlarm(alarmMessage(raised("fire-a", clock)), GW);
    const advance = setInterval(() => (clock += 50), 10);
    try {
      await eventually(() => service.deliveries(only().incidentId)[0]?.state === "undelivered", 10_000, "undelivered");
    } finally {
      clearInterval(advance);
    }
    expect(service.deliveries(only().incidentId)[0]).toMatchObject({ receiverId: "dead", attempts: 3, state: "undelivered" });
    expect(streamed.map((e) => e.kind)).toEqual(["incident.opened", "delivery.undelivered"]);
    expect(service.incidentLog(only().incidentId).map((e) => e.kind)).toContain("undelivered");
  });
});
