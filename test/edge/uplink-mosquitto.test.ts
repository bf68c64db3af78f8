// The edge agent against Debian's mosquitto instead of the embedded aedes (ARCHITECTURE.md §3: an external broker
// when one box is outgrown), with the broker doing what invariant 10 asks: each gateway logs in with its own
// password and may publish only under agri/v1/gw/<its id>/up/ and read only its own down/ topics; the cloud user
// reads every uplink and writes the command topics.

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MeterModel } from "../../firmware-sim/models/meter.js";
import { EdgeRunner } from "../../edge/agent/runner.js";
import { parseEdgeConfig } from "../../edge/config/load.js";
import { openSqliteOutbox, type SqliteOutbox } from "../../edge/outbox/sqlite-outbox.js";
import { Uplink } from "../../edge/uplink/uplink.js";
import { startField, type RunningField } from "../harness/programs.js";
import { CloudRecorder, until } from "./fixtures/cloud-recorder.js";
import { startMosquitto, type RunningMosquitto } from "./fixtures/mosquitto.js";

const GW = "mosq-gw-a";
const OTHER = "mosq-gw-b";
const PASSWORDS = { [GW]: "pw-a-3f9c", [OTHER]: "pw-b-77d1", cloud: "pw-cloud-0b2e" } as const;

let dir: string;
let sim: RunningField;
let broker: RunningMosquitto;
let cloud: CloudRecorder;
let runner: EdgeRunner;

const gatewayAcl = (id: string): string => [`user ${id}`, `topic write agri/v1/gw/${id}/up/#`, `topic read agri/v1/gw/${id}/down/#`, ""].join("\n");

function command(commandId: string, body: Record<string, unknown>): Record<string, unknown> {
  const now = Date.now();
  return { v: 1, commandId, issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 60_000).toISOString(), command: body };
}

async function connectAs(username: string, password: string, clientId: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(broker.url, { clientId, username, password, reconnectPeriod: 0, connectTimeout: 5000 });
  client.on("error", () => undefined);
  return client;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "edge-mosquitto-"));
  broker = await startMosquitto({
    dir,
    users: PASSWORDS,
    acl: [gatewayAcl(GW), gatewayAcl(OTHER), "user cloud", "topic read agri/v1/#", "topic write agri/v1/gw/+/down/#", ""].join("\n"),
  });
  sim = await startField(
    {
      name: "mosquitto",
      clock: { speed: 60, tickMs: 50 },
      buses: [{ id: "field", tcp: { port: 0 } }],
      devices: [{ id: "pump-m", bus: "field", unit: 4, profile: "hiking-dds238-2-zn", meter: { loads: [{ kind: "constant", watts: 2000 }], initialImportWh: 300_000, relayClosed: false } }],
    },
    { autoTick: true },
  );
  cloud = await CloudRecorder.connect(broker.url, ["agri/v1/gw/+/up/#"], { username: "cloud", password: PASSWORDS.cloud });
  const config = parseEdgeConfig({
    gateway: { id: GW, password: PASSWORDS[GW] },
    broker: { url: broker.url, reconnectMinMs: 200, reconnectMaxMs: 1000 },
    buses: [{ id: "field", tcp: { host: "127.0.0.1", port: sim.tcpPort("field") }, timeoutMs: 300 }],
    devices: [{ id: "pump-m", bus: "field", unit: 4, profile: "hiking-dds238-2-zn", role: "meter", pollIntervalMs: 200, supply: { cut: { kind: "meter-relay" } } }],
    outbox: { path: join(dir, "outbox.db") },
    statePath: join(dir, "state.db"),
    telemetry: { intervalMs: 1000, billingIntervalMs: 1000 },
    status: { port: 0 },
  });
  runner = new EdgeRunner(config, { log: pino({ level: process.env.E2E_LOG ?? "silent" }), version: "0.1.0" });
  await runner.start();
}, 30_000);

afterAll(async () => {
  await runner?.stop();
  await cloud?.close();
  await sim?.close();
  await broker?.close();
});

describe("uplink through mosquitto with per-gateway passwords and ACLs", () => {
  it("logs in with the gateway's own password and announces itself with a birth and a retained online status", async () => {
    const birth = await cloud.waitFor((m) => m.topic === `agri/v1/gw/${GW}/up/birth`, 10_000, "birth");
    expect(birth.json).toMatchObject({ v: 1, gatewayId: GW, version: "0.1.0" });
    const late = await CloudRecorder.connect(broker.url, [`agri/v1/gw/${GW}/up/status`], { username: "cloud", password: PASSWORDS.cloud });
    try {
      const status = await late.waitFor((m) => m.topic.endsWith("/up/status"), 5000, "retained status");
      expect(status.retain).toBe(true);
      expect(status.json).toEqual({ v: 1, gatewayId: GW, state: "online" });
    } finally {
      await late.close();
    }
  });

  it("delivers billing readings with their outbox seq", async () => {
    const billing = await cloud.waitFor((m) => m.topic === `agri/v1/gw/${GW}/up/billing`, 10_000, "billing");
    expect(typeof billing.seq).toBe("number");
    const reading = (billing.json.readings as Record<string, unknown>[]).find((r) => r.pointId === "importEnergy");
    expect(reading).toMatchObject({ meterId: "pump-m", role: "import_energy" });
  });

  it("executes a credit grant the cloud user publishes and acknowledges it", async () => {
    const meter = sim.field.requireDevice("pump-m") as MeterModel;
    const grant = command("cmd-mosq-grant-0001", { type: "credit.grant", meterId: "pump-m", grantSeq: 1, limitWh: Math.floor(meter.importRegisterWh) + 1_000_000, reconnect: "automatic" });
    await cloud.publish(`agri/v1/gw/${GW}/down/cmd`, grant);
    const ack = await cloud.waitFor((m) => m.topic === `agri/v1/gw/${GW}/up/cmd-ack` && m.json.commandId === grant.commandId, 10_000, "grant ack");
    expect(ack.json.status).toBe("done");
    const closed = await cloud.waitFor(
      (m) => m.topic.endsWith("/up/events") && (m.json.events as { type: string; grantSeq?: number }[]).some((e) => e.type === "relay.closed" && e.grantSeq === 1),
      10_000,
      "relay.closed",
    );
    expect((closed.json.events as Record<string, unknown>[])[0]).toMatchObject({ reason: "credit_granted", verified: true });
    expect(meter.relayClosed).toBe(true);
  });

  it("refuses a gateway with a wrong password: its uplink stays disconnected and says why", async () => {
    const outbox: SqliteOutbox = openSqliteOutbox({ path: join(dir, "wrong-password-outbox.db"), maxBytes: 1 << 20, maxCount: 1000 });
    const events: string[] = [];
    const uplink = new Uplink(
      { gatewayId: OTHER, password: "not-the-password", url: broker.url, keepaliveS: 30, reconnectMinMs: 100, reconnectMaxMs: 400, inflight: 4 },
      outbox,
      { onCommand: () => undefined, onConnected: () => events.push("connected"), onDisconnected: (reason) => events.push(`disconnected: ${reason}`) },
    );
    try {
      uplink.start();
      await until(() => uplink.stats.lastError, 10_000, () => "a refused login");
      expect(uplink.stats.lastError).toMatch(/not authorized|bad user ?name or password/i);
      // Still refused after retrying with back-off: never connected, nothing published as that gateway.
      const firstError = Date.now();
      await until(() => Date.now() - firstError > 1000, 5000, () => "time for retries");
      expect(uplink.stats.connected).toBe(false);
      expect(uplink.stats.connects).toBe(0);
      expect(events).not.toContain("connected");
      expect(cloud.messages.some((m) => m.topic.startsWith(`agri/v1/gw/${OTHER}/`))).toBe(false);
    } finally {
      await uplink.stop(false);
      outbox.close();
    }
  });

  it("drops a publish by one gateway's credentials under another gateway's topics", async () => {
    const raw = await connectAs(GW, PASSWORDS[GW], `${GW}-raw`);
    try {
      // QoS 1, so each publish has been processed by mosquitto when its PUBACK comes back (MQTT 3.1.1: a publish the
      // ACL denies is still acknowledged, and silently dropped).
      await raw.publishAsync(`agri/v1/gw/${OTHER}/up/billing`, JSON.stringify({ probe: "forged" }), { qos: 1 });
      await raw.publishAsync(`agri/v1/gw/${OTHER}/down/cmd`, JSON.stringify({ probe: "forged-command" }), { qos: 1 });
      // A control message on its own topic, sent after: mosquitto forwards one client's messages in order, so once the
      // control has arrived, the forged ones would have arrived before it.
      await raw.publishAsync(`agri/v1/gw/${GW}/up/events`, JSON.stringify({ probe: "control" }), { qos: 1 });
      await cloud.waitFor((m) => m.json.probe === "control", 5000, "control message");
      expect(cloud.messages.filter((m) => m.json.probe === "forged")).toEqual([]);
      expect(cloud.messages.filter((m) => m.topic.startsWith(`agri/v1/gw/${OTHER}/`))).toEqual([]);
    } finally {
      await raw.endAsync(true);
    }
  });

  it("never delivers another gateway's commands to one gateway's credentials", async () => {
    const raw = await connectAs(GW, PASSWORDS[GW], `${GW}-raw-sub`);
    const got: string[] = [];
    raw.on("message", (topic) => got.push(topic));
    try {
      // mosquitto 2.0 grants the SUBACK (its ACL is checked per message at delivery), so what counts is delivery.
      await raw.subscribeAsync(`agri/v1/gw/${OTHER}/down/cmd`, { qos: 1 });
      await raw.subscribeAsync(`agri/v1/gw/${GW}/down/cmd`, { qos: 1 });
      await cloud.publish(`agri/v1/gw/${OTHER}/down/cmd`, command("cmd-mosq-other-001", { type: "ping", nonce: "other" }));
      await cloud.publish(`agri/v1/gw/${GW}/down/cmd`, command("cmd-mosq-own-0001", { type: "ping", nonce: "own" }));
      // The broker forwards the cloud's publishes in order: once the second is here, the first would have been.
      await until(() => got.includes(`agri/v1/gw/${GW}/down/cmd`), 5000, () => `the own command (got ${JSON.stringify(got)})`);
      expect(got).not.toContain(`agri/v1/gw/${OTHER}/down/cmd`);
    } finally {
      await raw.endAsync(true);
    }
  });
});
