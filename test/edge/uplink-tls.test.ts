// The uplink over mqtts:// with the gateway's own client certificate: a real TLS listener (Node's tls server in
// front of aedes) that requires a client certificate signed by the village CA, certificates made by openssl.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { Aedes } from "aedes";
import mqtt from "mqtt";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgeRunner } from "../../edge/agent/runner.js";
import { parseEdgeConfig } from "../../edge/config/load.js";
import { requireProgram } from "../harness/programs.js";
import { startField, type RunningField } from "../harness/programs.js";

const GW = "tls-gw-1";
let dir: string;
let sim: RunningField;
let aedes: Aedes;
let server: tls.Server;
let port: number;
let runner: EdgeRunner | undefined;

function openssl(args: string[]): void {
  execFileSync(requireProgram("openssl", ["version"], "openssl"), args, { cwd: dir, stdio: "pipe" });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "edge-tls-"));
  writeFileSync(join(dir, "san.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=village-ca"]);
  for (const name of ["server", "client"]) {
    openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name === "server" ? "localhost" : GW}`]);
    openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", ...(name === "server" ? ["-extfile", "san.cnf"] : [])]);
  }
  // A certificate from another CA: must be refused.
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2", "-subj", `/CN=${GW}`]);
  aedes = await Aedes.createBroker();
  server = tls.createServer(
    { key: readFileSync(join(dir, "server.key")), cert: readFileSync(join(dir, "server.pem")), ca: readFileSync(join(dir, "ca.pem")), requestCert: true, rejectUnauthorized: true },
    (socket) => {
      socket.setNoDelay(true);
      aedes.handle(socket);
    },
  );
  server.on("tlsClientError", () => undefined);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  port = (server.address() as AddressInfo).port;
  sim = await startField({ name: "tls", buses: [{ id: "f", tcp: { port: 0 } }], devices: [{ id: "m1", bus: "f", unit: 1, profile: "eastron-sdm120", meter: { loads: [] } }] }, { autoTick: true });
}, 60_000);

afterAll(async () => {
  await runner?.stop();
  await sim?.close();
  await new Promise<void>((r) => server.close(() => aedes.close(() => r())));
  rmSync(dir, { recursive: true, force: true });
});

function config(cert: string, key: string) {
  return parseEdgeConfig({
    gateway: { id: GW, password: "pw" },
    broker: { url: `mqtts://localhost:${port}`, caFile: join(dir, "ca.pem"), certFile: join(dir, cert), keyFile: join(dir, key), reconnectMinMs: 200, reconnectMaxMs: 1000 },
    buses: [{ id: "f", tcp: { host: "127.0.0.1", port: sim.tcpPort("f") } }],
    devices: [{ id: "m1", bus: "f", unit: 1, profile: "eastron-sdm120", role: "meter", pollIntervalMs: 500 }],
    outbox: { path: join(dir, `${cert}-outbox.db`) },
    statePath: join(dir, `${cert}-state.db`),
    status: { port: 0 },
  });
}

describe("uplink over TLS", () => {
  it("connects with the gateway's client certificate, verifies the broker against the village CA and publishes", async () => {
    const cloud = await mqtt.connectAsync(`mqtts://localhost:${port}`, { ca: readFileSync(join(dir, "ca.pem")), cert: readFileSync(join(dir, "client.pem")), key: readFileSync(join(dir, "client.key")) });
    const births: string[] = [];
    cloud.on("message", (topic) => births.push(topic));
    await cloud.subscribeAsync(`agri/v1/gw/${GW}/up/birth`, { qos: 1 });
    runner = new EdgeRunner(config("client.pem", "client.key"), { log: pino({ level: "silent" }), version: "0.1.0" });
    await runner.start();
    const deadline = Date.now() + 10_000;
    while (births.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(births[0]).toBe(`agri/v1/gw/${GW}/up/birth`);
    await cloud.endAsync();
    await runner.stop();
    runner = undefined;
  });

  it("is refused with a certificate from another CA, and keeps everything in its outbox", async () => {
    runner = new EdgeRunner(config("rogue.pem", "rogue.key"), { log: pino({ level: "silent" }), version: "0.1.0" });
    await runner.start();
    await new Promise((r) => setTimeout(r, 1500));
    const status = (await (await fetch(`http://127.0.0.1:${runner.statusPort ?? 0}/status`)).json()) as { outbox: { count: number }; uplink: { connected: boolean; connects: number } };
    expect(status.uplink).toMatchObject({ connected: false, connects: 0 });
    expect(status.outbox.count).toBeGreaterThan(0);
    await runner.stop();
    runner = undefined;
  });
});
