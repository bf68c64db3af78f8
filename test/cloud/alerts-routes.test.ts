// The alerts HTTP API through a real fastify instance: roles and jurisdiction scope, zod-validated input as problem
// details, transitions, CAP XML, mutes, provisioning, metrics, and the SSE stream over a real socket — a client that
// reconnects with Last-Event-ID gets exactly what it missed.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAlertService, type AlertService } from "../../cloud/alerts/service.js";
import type { AlarmMessage } from "../../protocols/mqtt/messages.js";
import { eventually } from "../harness/broker.js";
import { HANGING_USERS, REVOKED_USERS, SseClient, startAlertsApp, TEST_USER_HEADER } from "./alerts-harness.js";

const GW = "gw-xiantan";

let dir: string;
let alerts: AlertService;
let app: FastifyInstance;
let baseUrl: string;
let seq = 0;

const raise = (deviceId: string, atMs = Date.now()): void => {
  const message: AlarmMessage = { v: 1, gatewayId: GW, seq: ++seq, sentAt: new Date(atMs).toISOString(), event: { type: "alarm.raised", deviceId, cause: "device_flag", at: new Date(atMs).toISOString(), alarmId: `${deviceId}-${atMs}` } };
  alerts.onAlarm(message, GW);
};

const call = (user: string | undefined, method: "GET" | "POST" | "PUT" | "DELETE", url: string, payload?: unknown) =>
  app.inject({ method, url, headers: user === undefined ? {} : { [TEST_USER_HEADER]: user }, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "alerts-routes-"));
  alerts = createAlertService({ path: join(dir, "alerts.db"), log: pino({ level: "silent" }), escalationCheckMs: 0 });
  ({ app, url: baseUrl } = await startAlertsApp(alerts));
});

afterAll(async () => {
  await app?.close();
  alerts?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("provisioning (admin)", () => {
  it("lets an admin build the jurisdiction tree and register sensors", async () => {
    const tree = [
      ["deqing", { parentId: null, tier: "county", name: "Deqing", ackTimeoutMs: 300_000, onSceneTimeoutMs: 1_800_000 }],
      ["mogan", { parentId: "deqing", tier: "township", name: "Moganshan", ackTimeoutMs: 120_000, onSceneTimeoutMs: 1_200_000 }],
      ["xiantan", { parentId: "mogan", tier: "village", name: "Xiantan", ackTimeoutMs: 60_000, onSceneTimeoutMs: 600_000 }],
      ["anji", { parentId: null, tier: "county", name: "Anji", ackTimeoutMs: 300_000, onSceneTimeoutMs: 1_800_000 }],
    ] as const;
    for (const [id, body] of tree) expect((await call("admin", "PUT", `/alerts/jurisdictions/${id}`, body)).statusCode).toBe(200);
    for (const [id, lat] of [["fire-a", 30.5851], ["fire-b", 30.5878]] as const) {
      const res = await call("admin", "PUT", `/alerts/sensors/${id}`, { gatewayId: GW, jurisdictionId: "xiantan", lat, lon: 119.8723, name: id });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ sensor: { sensorId: id, mode: "normal" } });
    }
  });

  it("refuses provisioning by a dispatcher", async () => {
    const res = await call("mogan", "PUT", "/alerts/sensors/fire-x", { gatewayId: GW, jurisdictionId: "xiantan", lat: 30, lon: 120, name: "x" });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: "API_FORBIDDEN" });
  });

  it("answers a sensor outside WGS-84 ranges with a 400 naming the field", async () => {
    const res = await call("admin", "PUT", "/alerts/sensors/fire-x", { gatewayId: GW, jurisdictionId: "xiantan", lat: 91, lon: 120, name: "x" });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: "API_INVALID_INPUT", errors: [{ path: "body.lat" }] });
  });

  it("refuses a sensor in a jurisdiction that does not exist", async () => {
    const res = await call("admin", "PUT", "/alerts/sensors/fire-x", { gatewayId: GW, jurisdictionId: "atlantis", lat: 30, lon: 120, name: "x" });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: "ALERTS_INVALID" });
  });

  it("never answers a webhook receiver's secret", async () => {
    const res = await call("admin", "PUT", "/alerts/webhooks/county-119", { url: "http://127.0.0.1:9/hook", secret: "a-very-secret-hmac-key" });
    expect(res.statusCode).toBe(200);
    expect(res.body).not.toContain("a-very-secret-hmac-key");
    await call("admin", "PUT", "/alerts/webhooks/county-119", { url: "http://127.0.0.1:9/hook", secret: "a-very-secret-hmac-key", enabled: false });
  });
});

describe("incidents through HTTP", () => {
  let incidentId: string;

  it("shows a village's incident to the township's dispatcher", async () => {
    raise("fire-a");
    const res = await call("mogan", "GET", "/alerts/incidents?open=true");
    expect(res.statusCode).toBe(200);
    const list = res.json<{ incidents: { incidentId: string; jurisdictionId: string }[] }>().incidents;
    expect(list).toHaveLength(1);
    incidentId = list[0]?.incidentId ?? "";
    expect(list[0]?.jurisdictionId).toBe("xiantan");
  });

  it("hides it from another county's dispatcher, as if it did not exist", async () => {
    expect((await call("anji", "GET", "/alerts/incidents")).json()).toEqual({ incidents: [] });
    expect((await call("anji", "GET", `/alerts/incidents/${incidentId}`)).statusCode).toBe(404);
    expect((await call("anji", "POST", `/alerts/incidents/${incidentId}/transitions`, { action: "acknowledge" })).statusCode).toBe(404);
  });

  it("refuses anonymous callers and farmers", async () => {
    expect((await call(undefined, "GET", "/alerts/incidents")).statusCode).toBe(401);
    expect((await call("farmer", "GET", "/alerts/incidents")).statusCode).toBe(403);
  });

  it("moves the incident forward and records who did it", async () => {
    const res = await call("mogan", "POST", `/alerts/incidents/${incidentId}/transitions`, { action: "verify", assignee: "grid-worker-chen" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ incident: { state: "verifying", gridWorker: "grid-worker-chen" } });
    const detail = (await call("mogan", "GET", `/alerts/incidents/${incidentId}`)).json<{ log: { kind: string; actor: string }[]; durationsMs: Record<string, number> }>();
    expect(detail.log.map((e) => [e.kind, e.actor])).toEqual([["opened", `gateway:${GW}`], ["verify", "dispatcher-wang"]]);
    expect(Object.keys(detail.durationsMs)).toEqual(["acknowledge"]);
  });

  it("answers a backwards transition with 409 and the state machine's code", async () => {
    const res = await call("mogan", "POST", `/alerts/incidents/${incidentId}/transitions`, { action: "acknowledge" });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: "ALERTS_TRANSITION_NOT_ALLOWED" });
  });

  it("answers an unknown action with 400", async () => {
    const res = await call("mogan", "POST", `/alerts/incidents/${incidentId}/transitions`, { action: "extinguish" });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ errors: [{ path: "body.action" }] });
  });

  it("serves the incident as CAP 1.2 XML", async () => {
    const res = await call("mogan", "GET", `/alerts/incidents/${incidentId}/cap.xml`);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/cap\+xml/);
    expect(res.body).toContain('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">');
    expect(res.body).toContain("<msgType>Update</msgType>");
  });

  it("mutes a sensor of the dispatcher's jurisdiction with a reason, and refuses one outside it", async () => {
    const res = await call("mogan", "POST", "/alerts/mutes", { sensorId: "fire-b", untilMs: Date.now() + 3_600_000, reason: "maintenance by the county bureau" });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ mute: { sensorId: "fire-b", actor: "dispatcher-wang" } });
    expect((await call("anji", "POST", "/alerts/mutes", { sensorId: "fire-b", untilMs: Date.now() + 3_600_000, reason: "not mine" })).statusCode).toBe(403);
    const muteId = res.json<{ mute: { muteId: string } }>().mute.muteId;
    const lifted = await call("mogan", "DELETE", `/alerts/mutes/${muteId}`);
    expect(lifted.json()).toMatchObject({ mute: { liftedBy: "dispatcher-wang" } });
  });

  it("reports response times per jurisdiction", async () => {
    await call("mogan", "POST", `/alerts/incidents/${incidentId}/transitions`, { action: "false_alarm" });
    await call("mogan", "POST", `/alerts/incidents/${incidentId}/transitions`, { action: "resolve", disposition: "nuisance" });
    const res = await call("mogan", "GET", "/alerts/metrics");
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ jurisdictions: [{ jurisdictionId: "xiantan", incidents: 1, falseAlarms: 1 }], sensors: [{ sensorId: "fire-a", falseAlarms: 1 }] });
  });
});

describe("the SSE stream", () => {
  it("pushes a new incident to a connected command-room client", async () => {
    const { client, status, contentType } = await SseClient.open(baseUrl, "mogan");
    try {
      expect(status).toBe(200);
      expect(contentType).toMatch(/^text\/event-stream/);
      await eventually(() => client.comments.length > 0, 5000, "connected comment");
      raise("fire-b");
      const event = await eventually(() => client.events.find((e) => e.event === "incident.opened"), 5000, "incident.opened");
      expect(JSON.parse(event.data)).toMatchObject({ kind: "incident.opened", msgType: "Alert", incident: { sensorIds: ["fire-b"] } });
    } finally {
      client.close();
    }
  });

  it("replays exactly what a client missed when it reconnects with Last-Event-ID", async () => {
    const first = (await SseClient.open(baseUrl, "mogan")).client;
    await eventually(() => first.comments.length > 0, 5000, "connected");
    raise("fire-a");
    const seen = await eventually(() => first.events.at(-1), 5000, "an event");
    first.close();
    // Missed while disconnected:
    const open = (await call("mogan", "GET", "/alerts/incidents?open=true")).json<{ incidents: { incidentId: string }[] }>();
    await call("mogan", "POST", `/alerts/incidents/${open.incidents[0]?.incidentId ?? ""}/transitions`, { action: "acknowledge" });
    raise("fire-b", Date.now() + 1);
    const missed = alerts.lastStreamId() - Number(seen.id);
    const again = (await SseClient.open(baseUrl, "mogan", Number(seen.id))).client;
    try {
      await eventually(() => again.events.length >= missed, 5000, "replay");
      expect(again.events.map((e) => Number(e.id))).toEqual(Array.from({ length: missed }, (_, i) => Number(seen.id) + 1 + i));
    } finally {
      again.close();
    }
  });

  it("streams nothing of another jurisdiction, even on a full replay", async () => {
    const { client } = await SseClient.open(baseUrl, "anji", 0);
    try {
      await eventually(() => client.comments.length > 0, 5000, "connected");
      raise("fire-a", Date.now() + 2);
      // The admin's stream sees that alarm; the Anji stream, opened earlier, must not.
      const admin = (await SseClient.open(baseUrl, "admin", alerts.lastStreamId() - 1)).client;
      await eventually(() => admin.events.length > 0, 5000, "admin replay");
      admin.close();
      expect(client.events).toEqual([]);
    } finally {
      client.close();
    }
  });

  it("ends a dispatcher's open stream once their session no longer authenticates, before sending another incident", async () => {
    const { client } = await SseClient.open(baseUrl, "mogan");
    try {
      await eventually(() => client.comments.length > 0, 5000, "connected");
      REVOKED_USERS.add("mogan");
      raise("fire-b", Date.now() + 3);
      await eventually(() => client.ended || undefined, 5000, "the stream to end");
      expect(client.events.filter((e) => e.event.startsWith("incident."))).toEqual([]);
    } finally {
      REVOKED_USERS.delete("mogan");
      client.close();
    }
  });

  it("ends a dispatcher's stream when re-authentication hangs, so the client reconnects instead of waiting forever", async () => {
    const { client } = await SseClient.open(baseUrl, "mogan");
    try {
      await eventually(() => client.comments.length > 0, 5000, "connected");
      HANGING_USERS.add("mogan");
      raise("fire-c", Date.now() + 4);
      // The harness gives re-authentication 500 ms; the stream ends rather than holding the incident indefinitely.
      await eventually(() => client.ended || undefined, 5000, "the stream to end");
      expect(client.events.filter((e) => e.event.startsWith("incident."))).toEqual([]);
    } finally {
      HANGING_USERS.delete("mogan");
      client.close();
    }
  });

  it("refuses the stream to a farmer", async () => {
    const { client, status } = await SseClient.open(baseUrl, "farmer");
    client.close();
    expect(status).toBe(403);
  });
});

describe("the incident list under a limit", () => {
  // A service of its own: the list's page must hold only what this test put there.
  let busy: AlertService;
  let busyApp: FastifyInstance;
  // Each alarm a second after the last on the server's clock: the newest-first order is the order raised.
  let clock = Date.now() - 60_000;

  beforeAll(async () => {
    busy = createAlertService({ path: join(dir, "busy.db"), log: pino({ level: "silent" }), escalationCheckMs: 0, now: () => (clock += 1000) });
    busy.upsertJurisdiction({ jurisdictionId: "mogan", parentId: null, tier: "township", name: "Moganshan", ackTimeoutMs: 120_000, onSceneTimeoutMs: 1_200_000 });
    busy.upsertJurisdiction({ jurisdictionId: "xiantan", parentId: "mogan", tier: "village", name: "Xiantan", ackTimeoutMs: 60_000, onSceneTimeoutMs: 600_000 });
    busy.upsertJurisdiction({ jurisdictionId: "anji", parentId: null, tier: "county", name: "Anji", ackTimeoutMs: 300_000, onSceneTimeoutMs: 1_800_000 });
    busy.upsertSensor({ sensorId: "fire-a", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.5851, lon: 119.8723, name: "ridge east", mode: "normal" });
    busy.upsertSensor({ sensorId: "fire-closed", gatewayId: GW, jurisdictionId: "xiantan", lat: 30.7, lon: 119.8723, name: "north slope", mode: "normal" });
    // Anji's sensors 10 km apart: each alarm is an incident of its own.
    for (let k = 0; k < 5; k++) busy.upsertSensor({ sensorId: `anji-${k}`, gatewayId: "gw-anji", jurisdictionId: "anji", lat: 30.6 + k * 0.1, lon: 119.6, name: `anji ${k}`, mode: "normal" });
    const t = clock;
    const at = (ms: number): string => new Date(ms).toISOString();
    const alarm = (gatewayId: string, deviceId: string, atMs: number): AlarmMessage => ({ v: 1, gatewayId, seq: ++seq, sentAt: at(atMs), event: { type: "alarm.raised", deviceId, cause: "device_flag", at: at(atMs), alarmId: `${deviceId}-${atMs}` } });
    busy.onAlarm(alarm(GW, "fire-closed", t), GW);
    const [closed] = busy.listIncidents({ sinceMs: 0, limit: 10, openOnly: true });
    if (closed === undefined) throw new Error("no incident");
    busy.transition(closed.incidentId, { action: "false_alarm" }, "dispatcher-wang");
    busy.transition(closed.incidentId, { action: "resolve", disposition: "nuisance" }, "dispatcher-wang");
    busy.onAlarm(alarm(GW, "fire-a", t + 1000), GW);
    // Newer, and more of them than the page holds: they come first in the list before the scope is applied.
    for (let k = 0; k < 5; k++) busy.onAlarm(alarm("gw-anji", `anji-${k}`, t + 2000 + k), "gw-anji");
    ({ app: busyApp } = await startAlertsApp(busy));
  });

  afterAll(async () => {
    await busyApp?.close();
    busy?.stop();
  });

  const list = async (query: string) => {
    const res = await busyApp.inject({ method: "GET", url: `/alerts/incidents?${query}`, headers: { [TEST_USER_HEADER]: "mogan" } });
    expect(res.statusCode).toBe(200);
    return res.json<{ incidents: { sensorIds: string[]; state: string }[] }>().incidents;
  };

  it("still lists a dispatcher's own open incident when more incidents elsewhere than the limit are newer", async () => {
    expect((await list("open=true&limit=3")).map((i) => i.sensorIds)).toEqual([["fire-a"]]);
  });

  it("still lists a dispatcher's own closed incident after its open ones when the limit is filled elsewhere", async () => {
    expect((await list("limit=3")).map((i) => [i.sensorIds[0], i.state])).toEqual([
      ["fire-a", "new"],
      ["fire-closed", "resolved"],
    ]);
  });

  it("stops at the limit within the dispatcher's own incidents", async () => {
    expect((await list("limit=1")).map((i) => i.sensorIds[0])).toEqual(["fire-a"]);
  });

  it("answers the other county's dispatcher with its own incidents, up to the limit", async () => {
    const res = await busyApp.inject({ method: "GET", url: "/alerts/incidents?limit=3", headers: { [TEST_USER_HEADER]: "anji" } });
    expect(res.json<{ incidents: { sensorIds: string[] }[] }>().incidents.map((i) => i.sensorIds[0])).toEqual(["anji-4", "anji-3", "anji-2"]);
  });
});
