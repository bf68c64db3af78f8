// The broker with real mqtt.js clients and raw sockets on a free loopback port: logins, the ACL as the wire sees
// it (CONNACK codes, SUBACK 0x80, undelivered messages), the packet size guard and the connection-rate guard.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { downlinkTopicFor, formatTopic, subscriptionFilter } from "../../protocols/mqtt/topics.js";
import { startBroker, type BrokerLog, type BrokerOptions, type RunningBroker } from "./broker.js";
import type { RegistrySnapshot } from "./policy.js";
import { hashSecret } from "./secrets.js";

const SECRETS = {
  "gw-a": "secret-of-gw-a-7f3e",
  "gw-b": "secret-of-gw-b-91c0",
  "gw-off": "secret-of-gw-off-22aa",
  "cloud-ingest": "secret-of-ingest-5d10",
  "cloud-command": "secret-of-command-0b44",
} as const;
type User = keyof typeof SECRETS;

/** The filter the cloud's ingest client uses for every gateway's uplinks (ARCHITECTURE.md, protocols/README.md). */
const ALL_UPLINKS = "agri/v1/gw/+/up/#";

let provisioned: RegistrySnapshot;
let registry: RegistrySnapshot;

beforeAll(async () => {
  const hashes = Object.fromEntries(await Promise.all(Object.entries(SECRETS).map(async ([user, secret]) => [user, await hashSecret(secret)] as const))) as Record<User, string>;
  provisioned = {
    gateways: new Map([
      ["gw-a", { secretHash: hashes["gw-a"], enabled: true }],
      ["gw-b", { secretHash: hashes["gw-b"], enabled: true }],
      ["gw-off", { secretHash: hashes["gw-off"], enabled: false }],
    ]),
    cloudClients: new Map([
      ["cloud-ingest", { secretHash: hashes["cloud-ingest"], role: "ingest" as const }],
      ["cloud-command", { secretHash: hashes["cloud-command"], role: "command" as const }],
    ]),
  };
});

interface Harness {
  broker: RunningBroker;
  url: string;
  logLines: string[];
}

let harness: Harness | undefined;
const clients: MqttClient[] = [];
const sockets: net.Socket[] = [];

async function start(overrides: Partial<BrokerOptions> = {}, scheme = "mqtt"): Promise<Harness> {
  registry = provisioned;
  const logLines: string[] = [];
  const log: BrokerLog = pino({ level: "info" }, { write: (line: string) => void logLines.push(line) });
  const broker = await startBroker({
    host: "127.0.0.1",
    port: 0,
    registry: () => registry,
    maxPacketBytes: 4096,
    maxConnectionsPerIpPerMinute: 1000,
    log,
    ...overrides,
  });
  harness = { broker, url: `${scheme}://127.0.0.1:${broker.port}`, logLines };
  return harness;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.end(true);
  for (const socket of sockets.splice(0)) socket.destroy();
  await harness?.broker.close();
  harness = undefined;
});

function logged(h: Harness): { reason?: string; msg: string }[] {
  return h.logLines.map((line) => JSON.parse(line) as { reason?: string; msg: string });
}

/** Connects, resolving on CONNACK 0 and rejecting with the refusal (err.code = CONNACK return code) or on close. */
function connect(h: Harness, user: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(h.url, {
    username: user,
    password: (SECRETS as Record<string, string>)[user] ?? "no-secret",
    clientId: user,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...options,
  });
  clients.push(client);
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", reject);
    client.once("close", () => reject(new Error("closed before CONNACK")));
  });
}

function received(client: MqttClient): { topic: string; payload: string }[] {
  const messages: { topic: string; payload: string }[] = [];
  client.on("message", (topic, payload) => messages.push({ topic, payload: payload.toString("utf8") }));
  return messages;
}

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => (client.connected ? client.once("close", () => resolve()) : resolve()));
}

function refusalCode(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => "connected",
    (error: { code?: unknown }) => error.code,
  );
}

const telemetryOf = (gatewayId: string) => formatTopic("telemetry", { gatewayId });

describe("logins", () => {
  it("lets a provisioned gateway connect and publish to its own uplink", async () => {
    const h = await start();
    const ingest = await connect(h, "cloud-ingest");
    await ingest.subscribeAsync(ALL_UPLINKS, { qos: 1 });
    const messages = received(ingest);
    const gwA = await connect(h, "gw-a");
    await gwA.publishAsync(telemetryOf("gw-a"), "reading-1", { qos: 1 });
    await vi.waitFor(() => expect(messages).toEqual([{ topic: telemetryOf("gw-a"), payload: "reading-1" }]));
    expect(h.broker.status()).toMatchObject({ connections: 2, connectedClients: 2, refusedAuth: 0 });
  });

  it("refuses a wrong password with CONNACK 4 and logs the reason, never the secret", async () => {
    const h = await start();
    expect(await refusalCode(connect(h, "gw-a", { password: "guessed-secret" }))).toBe(4);
    expect(h.broker.counters.refusedAuth).toBe(1);
    expect(logged(h).map((l) => l.reason)).toContain("BROKER_DENY_BAD_SECRET");
    expect(h.logLines.join("\n")).not.toContain("guessed-secret");
  });

  it("refuses an unknown user with CONNACK 4", async () => {
    const h = await start();
    expect(await refusalCode(connect(h, "gw-zz", { password: SECRETS["gw-a"] }))).toBe(4);
    expect(logged(h).map((l) => l.reason)).toContain("BROKER_DENY_UNKNOWN_USER");
  });

  it("refuses a disabled gateway with CONNACK 5, even with its right secret", async () => {
    const h = await start();
    expect(await refusalCode(connect(h, "gw-off"))).toBe(5);
    expect(logged(h).map((l) => l.reason)).toContain("BROKER_DENY_GATEWAY_DISABLED");
  });

  it("refuses a gateway presenting another client id with CONNACK 2, so it cannot take that session", async () => {
    const h = await start();
    expect(await refusalCode(connect(h, "gw-a", { clientId: "gw-b" }))).toBe(2);
    expect(logged(h).map((l) => l.reason)).toContain("BROKER_DENY_CLIENT_ID_MISMATCH");
  });
});

describe("the ACL on the wire", () => {
  it("does not deliver gateway A's publish on gateway B's topic, and disconnects A", async () => {
    const h = await start();
    const ingest = await connect(h, "cloud-ingest");
    await ingest.subscribeAsync(ALL_UPLINKS, { qos: 1 });
    const messages = received(ingest);
    const gwA = await connect(h, "gw-a");
    const gwB = await connect(h, "gw-b");
    gwA.publish(telemetryOf("gw-b"), "forged", { qos: 1 }, () => undefined);
    await closed(gwA);
    await gwB.publishAsync(telemetryOf("gw-b"), "genuine", { qos: 1 });
    await vi.waitFor(() => expect(messages.length).toBe(1));
    expect(messages).toEqual([{ topic: telemetryOf("gw-b"), payload: "genuine" }]);
    expect(h.broker.counters.deniedPublish).toBe(1);
    expect(logged(h).map((l) => l.reason)).toContain("BROKER_DENY_FOREIGN_TOPIC");
  });

  it("answers a subscription to another gateway's command topic with SUBACK 0x80 and delivers nothing on it", async () => {
    const h = await start();
    const gwA = await connect(h, "gw-a");
    const gwB = await connect(h, "gw-b");
    await gwB.subscribeAsync(downlinkTopicFor("gw-b"), { qos: 1 });
    const toA = received(gwA);
    const toB = received(gwB);
    // mqtt.js rejects a SUBACK failure with the SUBACK packet attached.
    const granted = await gwA.subscribeAsync(downlinkTopicFor("gw-b"), { qos: 1 }).then(
      () => "granted",
      (error: { packet?: { granted?: unknown } }) => error.packet?.granted,
    );
    expect(granted).toEqual([0x80]);
    const command = await connect(h, "cloud-command");
    await command.publishAsync(downlinkTopicFor("gw-b"), "grant-7", { qos: 1 });
    await vi.waitFor(() => expect(toB).toEqual([{ topic: downlinkTopicFor("gw-b"), payload: "grant-7" }]));
    expect(toA).toEqual([]);
    expect(gwA.connected).toBe(true);
    expect(h.broker.counters.deniedSubscribe).toBe(1);
  });

  it("delivers every gateway's uplinks to the ingest client through agri/v1/gw/+/up/#", async () => {
    const h = await start();
    const ingest = await connect(h, "cloud-ingest");
    await ingest.subscribeAsync(ALL_UPLINKS, { qos: 1 });
    const messages = received(ingest);
    const gwA = await connect(h, "gw-a");
    const gwB = await connect(h, "gw-b");
    await gwA.publishAsync(telemetryOf("gw-a"), "a-telemetry", { qos: 1 });
    await gwB.publishAsync(formatTopic("alarm", { gatewayId: "gw-b" }), "b-alarm", { qos: 1 });
    await gwB.publishAsync(formatTopic("billing", { gatewayId: "gw-b" }), "b-billing", { qos: 1 });
    await vi.waitFor(() => expect(messages.length).toBe(3));
    expect(messages).toEqual(
      expect.arrayContaining([
        { topic: telemetryOf("gw-a"), payload: "a-telemetry" },
        { topic: formatTopic("alarm", { gatewayId: "gw-b" }), payload: "b-alarm" },
        { topic: formatTopic("billing", { gatewayId: "gw-b" }), payload: "b-billing" },
      ]),
    );
  });

  it("publishes a gateway's retained last will on its own status topic when its connection drops", async () => {
    const h = await start();
    const ingest = await connect(h, "cloud-ingest");
    await ingest.subscribeAsync(subscriptionFilter("status"), { qos: 1 });
    const messages = received(ingest);
    const statusA = formatTopic("status", { gatewayId: "gw-a" });
    const gwA = await connect(h, "gw-a", { will: { topic: statusA, payload: Buffer.from("offline"), qos: 1, retain: true } });
    gwA.stream.destroy();
    await vi.waitFor(() => expect(messages).toEqual([{ topic: statusA, payload: "offline" }]));
    expect(h.broker.counters.deniedPublish).toBe(0);
  });

  it("withdraws a connected gateway's right to publish once the registry disables it", async () => {
    const h = await start();
    const gwA = await connect(h, "gw-a");
    registry = { ...provisioned, gateways: new Map([...provisioned.gateways, ["gw-a", { secretHash: "unused", enabled: false }]]) };
    gwA.publish(telemetryOf("gw-a"), "after-disable", { qos: 1 }, () => undefined);
    await closed(gwA);
    expect(logged(h).map((l) => l.reason)).toContain("BROKER_DENY_GATEWAY_DISABLED");
  });
});

describe("guards", () => {
  it("closes a client that sends an oversized PUBLISH, and the others keep working", async () => {
    const h = await start({ maxPacketBytes: 1024 });
    const ingest = await connect(h, "cloud-ingest");
    await ingest.subscribeAsync(ALL_UPLINKS, { qos: 1 });
    const messages = received(ingest);
    const gwA = await connect(h, "gw-a");
    const gwB = await connect(h, "gw-b");
    gwB.publish(telemetryOf("gw-b"), Buffer.alloc(4096, 0x61), { qos: 1 }, () => undefined);
    await closed(gwB);
    await gwA.publishAsync(telemetryOf("gw-a"), "still-flowing", { qos: 1 });
    await vi.waitFor(() => expect(messages).toEqual([{ topic: telemetryOf("gw-a"), payload: "still-flowing" }]));
    expect(ingest.connected && gwA.connected).toBe(true);
    expect(h.broker.counters.oversized).toBe(1);
    expect(logged(h).map((l) => l.reason)).toContain("BROKER_DENY_PACKET_TOO_LARGE");
  });

  it("closes a connection as soon as a fixed header declares an oversized packet, without waiting for its body", async () => {
    const h = await start({ maxPacketBytes: 1024 });
    const socket = await rawSocket(h.broker.port);
    // PUBLISH, Remaining Length 268,435,455 (MQTT 3.1.1 §2.2.3 maximum): the broker must not wait for 256 MB.
    socket.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]));
    expect(await closedWithin(socket, 2_000)).toBe(true);
    expect(h.broker.counters.oversized).toBe(1);
  });

  it("refuses connections beyond the per-address rate before any MQTT, while established clients keep working", async () => {
    const h = await start({ maxConnectionsPerIpPerMinute: 4 });
    const ingest = await connect(h, "cloud-ingest");
    await ingest.subscribeAsync(ALL_UPLINKS, { qos: 1 });
    const messages = received(ingest);
    const gwA = await connect(h, "gw-a");
    // Two more sockets fit in the window of four; the next six are destroyed on accept.
    const flood = await Promise.all(Array.from({ length: 8 }, () => rawSocket(h.broker.port)));
    const closedByBroker = await Promise.all(flood.map((socket) => closedWithin(socket, 1_000)));
    expect(closedByBroker.filter(Boolean).length).toBe(6);
    expect(await refusalCode(connect(h, "gw-b"))).not.toBe("connected");
    await gwA.publishAsync(telemetryOf("gw-a"), "during-flood", { qos: 1 });
    await vi.waitFor(() => expect(messages).toEqual([{ topic: telemetryOf("gw-a"), payload: "during-flood" }]));
    expect(h.broker.counters.floodRefused).toBe(7);
    expect(logged(h).filter((l) => l.reason === "BROKER_DENY_CONNECTION_RATE").length).toBe(1);
  });
});

describe("TLS", () => {
  let dir: string | undefined;

  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("serves MQTT over TLS when given a certificate and key", async () => {
    dir = mkdtempSync(join(tmpdir(), "agri-broker-tls-"));
    const certFile = join(dir, "cert.pem");
    const keyFile = join(dir, "key.pem");
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
    ], { stdio: "ignore" });
    const h = await start({ tls: { certFile, keyFile } }, "mqtts");
    const ca = readFileSync(certFile);
    const ingest = await connect(h, "cloud-ingest", { ca });
    await ingest.subscribeAsync(ALL_UPLINKS, { qos: 1 });
    const messages = received(ingest);
    const gwA = await connect(h, "gw-a", { ca });
    await gwA.publishAsync(telemetryOf("gw-a"), "over-tls", { qos: 1 });
    await vi.waitFor(() => expect(messages).toEqual([{ topic: telemetryOf("gw-a"), payload: "over-tls" }]));
    expect(await refusalCode(connect(h, "gw-b", { ca, password: "wrong" }))).toBe(4);
  });
});

function rawSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    sockets.push(socket);
    socket.on("error", () => undefined);
    socket.once("error", reject);
  });
}

/** True when the peer closes the socket within ms (we never close it ourselves before then). */
function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.closed) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
    // A half-closed socket (FIN from the broker) counts as closed by the broker.
    socket.once("end", () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.resume();
  });
}
