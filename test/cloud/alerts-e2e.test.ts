// Fire alerts end to end through real parts: the simulator's fire nodes over Modbus TCP → the edge agent's fire
// guard → the cloud's authenticated broker and ingest (startCloud) → the alert service → an SSE client of the
// command room over a real socket, and a webhook receiver over real HTTP. One smoke alarm becomes an incident the
// client receives; a second sensor joins it; a receiver that was down gets it later; the cloud restarted mid-incident
// keeps its state; a silent sensor becomes a monitoring gap; a Test alarm is never dispatched; a low battery becomes
// a low-battery incident of its own.

import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyWebhook } from "../../cloud/alerts/webhooks.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { startCloud, type CloudOptions, type RunningCloud } from "../../cloud/server.js";
import { EdgeRunner } from "../../edge/agent/runner.js";
import { parseEdgeConfig } from "../../edge/config/load.js";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import { eventually } from "../harness/broker.js";
import { settleWithin, startField, type RunningField } from "../harness/programs.js";
import { freePort } from "../harness/servers.js";
import { incidentOf, SseClient, startAlertsApp, TEST_USER_HEADER } from "./alerts-harness.js";

const GW = "fire-gw-xiantan";
const SECRET = "s3cret-hmac-key-for-119";
const SENSORS = [
  { id: "fire-1", unit: 7, lat: 30.5851, lon: 119.8723, mode: "normal" },
  { id: "fire-2", unit: 8, lat: 30.5878, lon: 119.8723, mode: "normal" },
  { id: "fire-test", unit: 9, lat: 30.6301, lon: 119.9001, mode: "test" },
  { id: "fire-quiet", unit: 10, lat: 30.6601, lon: 119.9301, mode: "normal" },
] as const;

let dir: string;
let sim: RunningField;
let cloud: RunningCloud;
let cloudOptions: CloudOptions;
let runner: EdgeRunner;
let room: { app: FastifyInstance; url: string };
let stream: SseClient;
let receiverPort: number;
let receiver: Server | undefined;
const received: { eventId: number; valid: boolean; kind: string }[] = [];
let fireIncidentId = "";

const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
  const res = await fetch(`${room.url}${path}`, { method, headers: { [TEST_USER_HEADER]: "mogan", ...(body === undefined ? {} : { "content-type": "application/json" }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

async function openRoom(): Promise<void> {
  room = await startAlertsApp(cloud.alerts);
  stream = (await SseClient.open(room.url, "mogan")).client;
  await eventually(() => stream.comments.length > 0, 5000, "SSE connected");
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "alerts-e2e-"));
  sim = await startField(
    {
      name: "alerts-e2e",
      clock: { speed: 60, tickMs: 50 },
      buses: [{ id: "ridge", tcp: { port: 0 } }],
      devices: SENSORS.map((s) => ({ id: s.id, bus: "ridge", unit: s.unit, profile: "agri-fire-node", fire: { smokeNoiseDbPerM: 0.001 } })),
    },
    { autoTick: true },
  );
  const log = pino({ level: process.env.E2E_LOG ?? "silent" });
  cloudOptions = { dataDir: join(dir, "cloud"), mqtt: { host: "127.0.0.1", port: 0 }, log };
  cloud = await startCloud(cloudOptions);
  // The restarted cloud must come back on the same port, where the gateway reconnects.
  cloudOptions = { ...cloudOptions, mqtt: { host: "127.0.0.1", port: cloud.mqttPort } };
  await cloud.registry.addVillage({ villageId: "xiantan", name: "Xiantan" });
  await cloud.registry.addGateway({ gatewayId: GW, villageId: "xiantan", secretHash: await hashSecret("gw-secret-fire") });
  await cloud.refreshRegistry();
  const { alerts } = cloud;
  alerts.upsertJurisdiction({ jurisdictionId: "deqing", parentId: null, tier: "county", name: "Deqing", ackTimeoutMs: 600_000, onSceneTimeoutMs: 1_800_000 });
  alerts.upsertJurisdiction({ jurisdictionId: "mogan", parentId: "deqing", tier: "township", name: "Moganshan", ackTimeoutMs: 600_000, onSceneTimeoutMs: 1_200_000 });
  alerts.upsertJurisdiction({ jurisdictionId: "xiantan", parentId: "mogan", tier: "village", name: "Xiantan", ackTimeoutMs: 600_000, onSceneTimeoutMs: 600_000 });
  for (const s of SENSORS) alerts.upsertSensor({ sensorId: s.id, gatewayId: GW, jurisdictionId: "xiantan", lat: s.lat, lon: s.lon, name: s.id, mode: s.mode });
  // The county's 119 system, down for now: nothing listens on this port yet.
  receiverPort = await freePort();
  alerts.upsertReceiver({ receiverId: "county-119", url: `http://127.0.0.1:${receiverPort}/cap`, secret: SECRET, format: "json", jurisdictionId: null, enabled: true });
  await openRoom();

  const config = parseEdgeConfig({
    gateway: { id: GW, password: "gw-secret-fire" },
    broker: { url: cloud.mqttUrl, reconnectMinMs: 200, reconnectMaxMs: 1000 },
    buses: [{ id: "ridge", tcp: { host: "127.0.0.1", port: sim.tcpPort("ridge") }, timeoutMs: 300 }],
    devices: SENSORS.map((s) => ({ id: s.id, bus: "ridge", unit: s.unit, profile: "agri-fire-node", role: "fire-sensor", pollIntervalMs: 200, fire: { consecutiveK: 2, silentIntervals: 3 } })),
    outbox: { path: join(dir, "outbox.db") },
    statePath: join(dir, "state.db"),
    telemetry: { intervalMs: 1000, billingIntervalMs: 1000 },
    status: { port: 0 },
  });
  runner = new EdgeRunner(config, { log, version: "0.1.0" });
  await runner.start();
}, 30_000);

afterAll(async () => {
  stream?.close();
  await room?.app.close();
  await settleWithin(runner?.stop() ?? Promise.resolve(), 5_000, "EdgeRunner.stop()");
  await cloud?.stop();
  await sim?.close();
  if (receiver !== undefined) await new Promise((r) => receiver?.close(r));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("fire alerts end to end: simulator → edge → broker → cloud → command room", () => {
  it("shows the command room an incident when the simulator raises smoke", async () => {
    applyDeviceAction(sim.field, "fire-1", { action: "start-fire", smokeRiseDbPerMPerMin: 0.5 });
    const opened = await stream.next((e) => e.event === "incident.opened" && incidentOf(e).sensorIds.includes("fire-1"), 20_000, "incident for fire-1");
    const incident = incidentOf(opened);
    expect(incident).toMatchObject({ class: "fire", state: "new", certainty: "Possible" });
    fireIncidentId = incident.incidentId;
  });

  it("joins a second sensor's alarm to the same incident and raises its certainty", async () => {
    applyDeviceAction(sim.field, "fire-2", { action: "start-fire", smokeRiseDbPerMPerMin: 0.5 });
    const joined = await stream.next((e) => incidentOf(e).sensorIds.includes("fire-2"), 20_000, "fire-2 joins");
    expect(incidentOf(joined)).toMatchObject({ incidentId: fireIncidentId, certainty: "Likely", sensorIds: ["fire-1", "fire-2"] });
    const fires = cloud.alerts.listIncidents({ sinceMs: 0, limit: 100, openOnly: false }).filter((i) => i.class === "fire");
    expect(fires).toHaveLength(1);
  });

  it("delivers every alert to a webhook receiver that was down, once it comes back, in order and signed", async () => {
    await eventually(() => (cloud.alerts.deliveries(fireIncidentId)[0]?.attempts ?? 0) >= 1, 10_000, "a failed delivery attempt");
    receiver = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => {
        const h = (n: string): string => String(req.headers[n] ?? "");
        received.push({ eventId: Number(h("x-agri-event-id")), valid: verifyWebhook(SECRET, h("x-agri-timestamp"), body, h("x-agri-signature")), kind: (JSON.parse(body) as { kind: string }).kind });
        res.writeHead(200).end("ok");
      });
    });
    await new Promise<void>((resolve) => receiver?.listen(receiverPort, "127.0.0.1", resolve));
    const wanted = cloud.alerts.deliveries(fireIncidentId).length;
    await eventually(() => cloud.alerts.deliveries(fireIncidentId).every((d) => d.state === "delivered") && received.length >= wanted, 20_000, "all deliveries");
    expect(received[0]).toMatchObject({ kind: "incident.opened", valid: true });
    expect(received.every((r) => r.valid)).toBe(true);
    expect(received.map((r) => r.eventId)).toEqual([...received.map((r) => r.eventId)].sort((a, b) => a - b));
  });

  it("keeps the incident's state when the cloud restarts mid-incident, and carries on from there", async () => {
    expect((await api("POST", `/alerts/incidents/${fireIncidentId}/transitions`, { action: "verify", assignee: "grid-worker-chen" })).status).toBe(200);
    expect((await api("POST", `/alerts/incidents/${fireIncidentId}/transitions`, { action: "confirm" })).status).toBe(200);
    stream.close();
    await room.app.close();
    await cloud.stop();
    cloud = await startCloud(cloudOptions);
    await openRoom();
    const detail = await api("GET", `/alerts/incidents/${fireIncidentId}`);
    expect(detail.json.incident).toMatchObject({ state: "confirmed", certainty: "Observed", gridWorker: "grid-worker-chen", sensorIds: ["fire-1", "fire-2"] });
    const dispatched = await api("POST", `/alerts/incidents/${fireIncidentId}/transitions`, { action: "dispatch", assignee: "officer-lu" });
    expect(dispatched.json.incident).toMatchObject({ state: "dispatched", officer: "officer-lu" });
    await eventually(async () => (await cloud.registry.gatewayStatus(GW))?.state === "online", 15_000, "gateway back online");
  }, 40_000);

  it("never dispatches a Test alarm", async () => {
    applyDeviceAction(sim.field, "fire-test", { action: "start-fire", smokeRiseDbPerMPerMin: 0.5 });
    const opened = await stream.next((e) => e.event === "incident.opened" && incidentOf(e).sensorIds.includes("fire-test"), 20_000, "test incident");
    const { incidentId, class: cls } = incidentOf(opened);
    expect(cls).toBe("test");
    expect((await api("POST", `/alerts/incidents/${incidentId}/transitions`, { action: "confirm" })).status).toBe(200);
    const dispatch = await api("POST", `/alerts/incidents/${incidentId}/transitions`, { action: "dispatch", assignee: "officer-lu" });
    expect(dispatch.status).toBe(409);
    expect(dispatch.json).toMatchObject({ code: "ALERTS_NOT_DISPATCHABLE" });
    expect((await api("GET", "/alerts/metrics")).json.jurisdictions).toEqual([expect.objectContaining({ jurisdictionId: "xiantan", incidents: 1 })]);
  });

  it("turns a sensor that goes silent into a monitoring-gap alert, and closes it when the sensor answers again", async () => {
    const from = stream.events.length;
    applyDeviceAction(sim.field, "fire-quiet", { action: "kill" });
    const gap = await stream.next((e) => incidentOf(e).class === "monitoring_gap", 20_000, "monitoring gap", from);
    expect(incidentOf(gap)).toMatchObject({ state: "new", sensorIds: ["fire-quiet"] });
    applyDeviceAction(sim.field, "fire-quiet", { action: "revive" });
    const restored = await stream.next((e) => incidentOf(e).class === "monitoring_gap" && incidentOf(e).state === "resolved", 20_000, "gap restored", from);
    expect(incidentOf(restored).disposition).toBe("restored");
  });

  it("turns a fire node's low battery into a low-battery incident, apart from the fire, closed when a new cell is fitted", async () => {
    const from = stream.events.length;
    applyDeviceAction(sim.field, "fire-quiet", { action: "battery", mv: 3100 });
    const low = await stream.next((e) => incidentOf(e).class === "low_battery", 20_000, "low battery", from);
    expect(incidentOf(low)).toMatchObject({ state: "new", sensorIds: ["fire-quiet"], alarms: [{ cause: "low_battery", value: 3100 }] });
    applyDeviceAction(sim.field, "fire-quiet", { action: "battery", mv: 3900 });
    const restored = await stream.next((e) => incidentOf(e).class === "low_battery" && incidentOf(e).state === "resolved", 20_000, "battery restored", from);
    expect(incidentOf(restored).disposition).toBe("restored");
    // The fire statistics still count the one fire incident only.
    expect((await api("GET", "/alerts/metrics")).json.jurisdictions).toEqual([expect.objectContaining({ jurisdictionId: "xiantan", incidents: 1 })]);
  });
});
