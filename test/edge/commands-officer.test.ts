// Downlink commands end to end, through the simulator, the edge runner and an aedes broker: an officer's relay
// orders (always obeyed, never undone by credit), a relay state restored after a reboot even when someone switched the
// meter by hand meanwhile (invariant 4), a command delivered twice executed once, remote configuration (applied,
// refused with reasons, rolled back), a ping, and a command addressed to another gateway (invariant 10).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { applyDeviceAction } from "../../firmware-sim/control.js";
import type { MeterModel } from "../../firmware-sim/models/meter.js";
import { EdgeRunner } from "../../edge/agent/runner.js";
import { loadEdgeConfigFile } from "../../edge/config/load.js";
import { startTestBroker, type TestBroker } from "../harness/broker.js";
import { startField, type RunningField } from "../harness/programs.js";
import { CloudRecorder, until, type RecordedMessage } from "./fixtures/cloud-recorder.js";

const GW = "cmd-gw-1";
const OTHER = "cmd-gw-2";
const CMD = `agri/v1/gw/${GW}/down/cmd`;

let dir: string;
let configPath: string;
let sim: RunningField;
let broker: TestBroker;
let cloud: CloudRecorder;
let runner: EdgeRunner;
let commandCount = 0;

type Json = Record<string, unknown>;
interface RelayEvent {
  type: string;
  deviceId: string;
  reason: string;
  verified: boolean;
  grantSeq?: number;
}

function configInput(change: (devices: Json[]) => void = () => undefined, extra: Json = {}): Json {
  const device = (id: string, unit: number): Json => ({ id, bus: "field", unit, profile: "hiking-dds238-2-zn", role: "meter", pollIntervalMs: 200, supply: { cut: { kind: "meter-relay" } } });
  const devices = [device("pump-a", 3), device("pump-b", 4)];
  change(devices);
  return {
    gateway: { id: GW, password: "pw" },
    broker: { url: broker.url, reconnectMinMs: 200, reconnectMaxMs: 1000 },
    buses: [{ id: "field", tcp: { host: "127.0.0.1", port: sim.tcpPort("field") }, timeoutMs: 300 }],
    devices,
    outbox: { path: join(dir, "outbox.db") },
    statePath: join(dir, "state.db"),
    telemetry: { intervalMs: 1000, billingIntervalMs: 1000 },
    status: { port: 0 },
    ...extra,
  };
}

function command(body: Json, commandId = `cmd-officer-${String(++commandCount).padStart(4, "0")}`): Json & { commandId: string } {
  const now = Date.now();
  return { v: 1, commandId, issuedAt: new Date(now).toISOString(), expiresAt: new Date(now + 60_000).toISOString(), command: body };
}

async function send(body: Json): Promise<string> {
  const cmd = command(body);
  await cloud.publish(CMD, cmd);
  return cmd.commandId;
}

const acksOf = (commandId: string): RecordedMessage[] => cloud.messages.filter((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === commandId);
const eventsOf = (m: RecordedMessage): RelayEvent[] => (m.topic.endsWith("/up/events") ? (m.json.events as RelayEvent[]) : []);
const meter = (id: string): MeterModel => sim.field.requireDevice(id) as MeterModel;

function waitForAck(commandId: string, status: string, timeoutMs = 10_000): Promise<RecordedMessage> {
  return cloud.waitFor((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === commandId && m.json.status === status, timeoutMs, `${status} ack of ${commandId}`);
}

function waitForRelayEvent(pred: (e: RelayEvent) => boolean, after: number, what: string): Promise<RecordedMessage> {
  return cloud.waitFor((m) => m.index > after && eventsOf(m).some(pred), 10_000, what);
}

function startRunner(): Promise<void> {
  runner = new EdgeRunner(loadEdgeConfigFile(configPath), { configPath, log: pino({ level: process.env.E2E_LOG ?? "silent" }), version: "0.1.0" });
  return runner.start();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "edge-commands-"));
  configPath = join(dir, "edge.yaml");
  sim = await startField(
    {
      name: "commands",
      clock: { speed: 60, tickMs: 50 },
      buses: [{ id: "field", tcp: { port: 0 } }],
      devices: [
        { id: "pump-a", bus: "field", unit: 3, profile: "hiking-dds238-2-zn", meter: { loads: [{ kind: "constant", watts: 3600 }], initialImportWh: 500_000, relayClosed: false } },
        { id: "pump-b", bus: "field", unit: 4, profile: "hiking-dds238-2-zn", meter: { loads: [{ kind: "constant", watts: 2200 }], initialImportWh: 800_000, relayClosed: false } },
      ],
    },
    { autoTick: true },
  );
  broker = await startTestBroker();
  cloud = await CloudRecorder.connect(broker.url, [`agri/v1/gw/${GW}/up/#`]);
  // The gateway's persistent broker session (clean: false) already holds a subscription to another gateway's
  // commands — left by a misconfigured earlier client with its id. Its uplink must not obey what arrives there.
  const stale = await mqtt.connectAsync(broker.url, { clientId: GW, clean: false, reconnectPeriod: 0 });
  await stale.subscribeAsync(`agri/v1/gw/${OTHER}/down/cmd`, { qos: 1 });
  await stale.endAsync();
  writeFileSync(configPath, toYaml(configInput()));
  await startRunner();
  await cloud.waitFor((m) => m.topic.endsWith("/up/status") && m.json.state === "online", 10_000, "online");
}, 30_000);

afterAll(async () => {
  await runner?.stop();
  await cloud?.close();
  await broker?.close();
  await sim?.close();
});

describe("officer relay orders", () => {
  it("opens a meter that has credit on an officer's order, and keeps it open through later readings", async () => {
    const grant = await send({ type: "credit.grant", meterId: "pump-a", grantSeq: 1, limitWh: Math.floor(meter("pump-a").importRegisterWh) + 10_000_000, reconnect: "automatic" });
    await waitForAck(grant, "done");
    await until(() => meter("pump-a").relayClosed, 10_000, () => "pump-a closed by its grant");
    const mark = cloud.messages.length;
    const order = await send({ type: "relay.set", deviceId: "pump-a", state: "open", officerId: "officer-7", reason: "wiring inspection" });
    expect((await waitForAck(order, "done")).json.detail).toMatch(/relay open by officer officer-7/);
    const opened = await waitForRelayEvent((e) => e.deviceId === "pump-a" && e.type === "relay.opened", mark, "relay.opened");
    expect(eventsOf(opened).find((e) => e.type === "relay.opened")).toMatchObject({ reason: "officer_override", verified: true, grantSeq: 1 });
    expect(meter("pump-a").relayClosed).toBe(false);
    // Three billing readings later (credit left all the while) the relay is still open.
    await until(
      () => cloud.messages.filter((m) => m.index > opened.index && m.topic.endsWith("/up/billing") && (m.json.readings as Json[]).some((r) => r.meterId === "pump-a")).length >= 3,
      15_000,
      () => "three billing readings after the order",
    );
    expect(meter("pump-a").relayClosed).toBe(false);
    expect(cloud.messages.some((m) => m.index > opened.index && eventsOf(m).some((e) => e.deviceId === "pump-a" && e.type === "relay.closed"))).toBe(false);
    const status = (await (await fetch(`http://127.0.0.1:${runner.statusPort ?? 0}/status`)).json()) as { devices: Json[] };
    expect(status.devices.find((d) => d.id === "pump-a")).toMatchObject({ relay: "open", openReason: "officer_override" });
  });

  it("closes the meter again on an officer's close order", async () => {
    const mark = cloud.messages.length;
    const order = await send({ type: "relay.set", deviceId: "pump-a", state: "closed", officerId: "officer-7", reason: "inspection done" });
    await waitForAck(order, "done");
    const closed = await waitForRelayEvent((e) => e.deviceId === "pump-a" && e.type === "relay.closed", mark, "relay.closed");
    expect(eventsOf(closed).find((e) => e.type === "relay.closed")).toMatchObject({ reason: "officer_override", verified: true });
    await until(() => meter("pump-a").relayClosed, 5000, () => "pump-a closed");
  });
});

describe("command handling", () => {
  it("executes a command delivered twice once, and acknowledges both deliveries with the same status", async () => {
    const grant = command({ type: "credit.grant", meterId: "pump-a", grantSeq: 2, limitWh: Math.floor(meter("pump-a").importRegisterWh) + 20_000_000, reconnect: "automatic" });
    await cloud.publish(CMD, grant);
    await cloud.publish(CMD, grant);
    await until(() => acksOf(grant.commandId).length >= 2, 10_000, () => `two acks of ${grant.commandId}`);
    const [first, second] = acksOf(grant.commandId);
    expect(first?.json.status).toBe("done");
    expect(second?.json.status).toBe("done");
    expect(second?.json.detail).toMatch(/^replay: /);
    // Acks and events share the outbox's event lane in seq order: any second execution would show up before this ping's ack.
    await waitForAck(await send({ type: "ping", nonce: "after-duplicate" }), "done");
    const grantEvents = cloud.messages.flatMap((m) => (m.topic.endsWith("/up/events") ? (m.json.events as { type: string; grantSeq?: number; meterId?: string }[]) : []));
    expect(grantEvents.filter((e) => e.type === "grant.applied" && e.meterId === "pump-a" && e.grantSeq === 2)).toHaveLength(1);
    expect(grantEvents.filter((e) => e.type === "grant.rejected" && e.grantSeq === 2)).toHaveLength(0);
  });

  it("answers a ping with pong and its nonce", async () => {
    const ack = await waitForAck(await send({ type: "ping", nonce: "n-4711" }), "done");
    expect(ack.json.detail).toBe("pong n-4711");
  });

  it("ignores a command on another gateway's topic, even one its broker session is subscribed to", async () => {
    const foreign = command({ type: "ping", nonce: "not-for-you" });
    await cloud.publish(`agri/v1/gw/${OTHER}/down/cmd`, foreign);
    // Delivered and handled in order: once the own ping is answered, the foreign one would have been.
    await waitForAck(await send({ type: "ping", nonce: "for-you" }), "done");
    expect(acksOf(foreign.commandId)).toEqual([]);
  });
});

describe("config.update", () => {
  const births = (): number => cloud.messages.filter((m) => m.topic.endsWith("/up/birth")).length;

  it("applies a valid configuration: acknowledged accepted then done, written to the config file, and polled under", async () => {
    const birthsBefore = births();
    const id = await send({ type: "config.update", configVersion: 2, config: configInput((d) => ((d[0] as Json).pollIntervalMs = 300)) });
    await waitForAck(id, "done");
    expect(acksOf(id).map((a) => a.json.status)).toEqual(["accepted", "done"]);
    expect(((parseYaml(readFileSync(configPath, "utf8")) as { devices: Json[] }).devices[0] as Json).pollIntervalMs).toBe(300);
    expect(runner.currentAgent?.config.devices[0]?.pollIntervalMs).toBe(300);
    // The new agent announces itself and keeps sending billing readings.
    const done = acksOf(id)[1] as RecordedMessage;
    await cloud.waitFor((m) => m.index > done.index && m.topic.endsWith("/up/billing"), 10_000, "billing after the swap");
    expect(births()).toBe(birthsBefore + 1);
  });

  it("rejects an invalid configuration with the path of every issue and keeps the one in force", async () => {
    const agent = runner.currentAgent;
    const id = await send({
      type: "config.update",
      configVersion: 3,
      config: configInput((d) => {
        (d[0] as Json).pollIntervalMs = 5;
        (d[1] as Json).bus = "no-such-bus";
      }),
    });
    const ack = await cloud.waitFor((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === id && m.json.status !== "accepted", 10_000, "final ack");
    expect(acksOf(id).map((a) => a.json.status)).toEqual(["rejected"]);
    expect(ack.json.reason).toMatch(/devices\[0\]\.pollIntervalMs/);
    expect(ack.json.reason).toMatch(/devices\[1\]\.bus/);
    expect(runner.currentAgent).toBe(agent);
    expect(((parseYaml(readFileSync(configPath, "utf8")) as { devices: Json[] }).devices[0] as Json).pollIntervalMs).toBe(300);
  });

  it("refuses to move the gateway to another broker remotely (only on site) and keeps polling", async () => {
    const agent = runner.currentAgent;
    const id = await send({ type: "config.update", configVersion: 4, config: { ...configInput(), broker: { url: "mqtt://203.0.113.9:1883" } } });
    const ack = await cloud.waitFor((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === id && m.json.status !== "accepted", 10_000, "final ack");
    expect(acksOf(id).map((a) => a.json.status)).toEqual(["rejected"]);
    expect(ack.json.reason).toMatch(/only be changed on site/);
    expect(runner.currentAgent).toBe(agent);
    await cloud.waitFor((m) => m.index > ack.index && m.topic.endsWith("/up/billing"), 10_000, "billing after the refusal");
  });

  it("answers failed when it cannot put a configuration in place, and keeps the old agent polling", async () => {
    const agent = runner.currentAgent;
    const before = readFileSync(configPath, "utf8");
    // The swap writes the new file beside the old one first; a directory in that place makes the write fail.
    mkdirSync(`${configPath}.new`);
    try {
      const id = await send({ type: "config.update", configVersion: 5, config: configInput((d) => ((d[1] as Json).pollIntervalMs = 400)) });
      const ack = await cloud.waitFor((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === id && m.json.status !== "accepted", 10_000, "final ack");
      expect(acksOf(id).map((a) => a.json.status)).toEqual(["accepted", "failed"]);
      expect(ack.json.reason).toBeTruthy();
      expect(runner.currentAgent).toBe(agent);
      expect(readFileSync(configPath, "utf8")).toBe(before);
      await cloud.waitFor((m) => m.index > ack.index && m.topic.endsWith("/up/billing"), 10_000, "billing after the rollback");
    } finally {
      rmSync(`${configPath}.new`, { recursive: true, force: true });
    }
  });

  it("rolls back a configuration under which no device answers, and keeps polling under the old one", async () => {
    const before = readFileSync(configPath, "utf8");
    const oldConfig = runner.currentAgent?.config;
    // A typo in the port: the new agent starts, but nothing answers on its bus.
    const id = await send({ type: "config.update", configVersion: 8, config: { ...configInput(), buses: [{ id: "field", tcp: { host: "127.0.0.1", port: 9 }, timeoutMs: 300 }] } });
    const ack = await cloud.waitFor((m) => m.topic.endsWith("/up/cmd-ack") && m.json.commandId === id && m.json.status !== "accepted", 20_000, "final ack");
    expect(acksOf(id).map((a) => a.json.status)).toEqual(["accepted", "failed"]);
    expect(ack.json.reason).toMatch(/rolled back: no device answered on bus field/);
    expect(readFileSync(configPath, "utf8")).toBe(before);
    expect(runner.currentAgent?.config).toEqual(oldConfig);
    await cloud.waitFor((m) => m.index > ack.index && m.topic.endsWith("/up/billing"), 10_000, "billing after the rollback");
  }, 30_000);

  it("applies two updates sent back to back one after the other, leaving exactly one agent polling", async () => {
    const birthsBefore = births();
    const first = command({ type: "config.update", configVersion: 6, config: configInput((d) => ((d[0] as Json).pollIntervalMs = 250)) });
    const second = command({ type: "config.update", configVersion: 7, config: configInput((d) => ((d[0] as Json).pollIntervalMs = 350)) });
    await Promise.all([cloud.publish(CMD, first), cloud.publish(CMD, second)]);
    await waitForAck(first.commandId, "done");
    const done = await waitForAck(second.commandId, "done");
    expect(runner.currentAgent?.config.devices[0]?.pollIntervalMs).toBe(350);
    expect(((parseYaml(readFileSync(configPath, "utf8")) as { devices: Json[] }).devices[0] as Json).pollIntervalMs).toBe(350);
    // One agent flushes a meter's billing once per billing interval (1 s); a second agent left running would
    // interleave its own flushes between them.
    await until(() => cloud.messages.filter((m) => m.index > done.index && m.topic.endsWith("/up/billing")).length >= 8, 15_000, () => "billing after both swaps");
    const sentAt = cloud.messages
      .filter((m) => m.index > done.index && m.topic.endsWith("/up/billing") && (m.json.readings as Json[]).some((r) => r.meterId === "pump-b"))
      .map((m) => Date.parse(m.json.sentAt as string))
      .sort((a, b) => a - b);
    const gaps = sentAt.slice(1).map((t, i) => t - (sentAt[i] as number));
    expect(gaps.length).toBeGreaterThanOrEqual(2);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(600);
    expect(births()).toBe(birthsBefore + 2);
  });
});

describe("reboot", () => {
  it("re-asserts a relay opened for lack of credit after a restart, even when it was closed by hand meanwhile", async () => {
    // pump-b never had a grant: the guard keeps it open (noGrantPolicy "open").
    await until(() => !meter("pump-b").relayClosed && cloud.messages.some((m) => eventsOf(m).some((e) => e.deviceId === "pump-b" && e.type === "relay.opened" && e.verified)), 10_000, () => "pump-b open");
    await runner.stop();
    applyDeviceAction(sim.field, "pump-b", { action: "set-relay", closed: true });
    expect(meter("pump-b").relayClosed).toBe(true);
    const mark = cloud.messages.length;
    await startRunner();
    const restored = await waitForRelayEvent((e) => e.deviceId === "pump-b" && e.type === "relay.opened" && e.reason === "restored_after_reboot", mark, "restored_after_reboot");
    expect(eventsOf(restored).find((e) => e.deviceId === "pump-b")).toMatchObject({ verified: true });
    expect(meter("pump-b").relayClosed).toBe(false);
  });
});
