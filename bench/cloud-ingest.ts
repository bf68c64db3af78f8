// Cloud ingest throughput (issue #4): billing readings per second from 1,000 simulated gateways over loopback MQTT,
// through the real cloud (startCloud: embedded aedes with authentication and ACLs, the ingest's validation and
// dedupe, the prepaid service's charges in the SQLite ledger and its grant sizing), counted only once charged in the
// ledger and checked against the ledger at the end. The peer, measured in the same run: Debian's mosquitto relaying
// the same messages from the same 1,000 clients to one QoS 1 subscriber. Goal: ≥ 20,000 readings/s on this 2-core
// machine. The publishers run in a child process (cloud-ingest-publishers.ts) so they do not share the cloud's core.
// The embedded broker hands each uplink to the ingest and PUBACKs it only once its batch is committed
// (broker.ts handOffUplinks, ingest/embedded.ts), so a publisher's window is what keeps batches full: with 8 in
// flight per gateway, a commit takes up to ~1,000 messages.
//
// Each gateway has METERS meters (one household each: a household whose balance backs two pumps gives all of it to
// the first one granted, so the other one's register must not rise) and publishes messages of READINGS_PER_METER consecutive readings of each; one
// warm-up message per gateway commissions the meters and sends their first grants (a one-off fsync per grant) before
// the clock starts. Every household is topped up first, so the grants in force stay valid while it is charged (the
// steady state: a grant is re-sent only when the balance moves it).
//
// Then the same load with DATABASE_URL on a durable PostgreSQL started on this machine (fsync on): every registry and
// ledger read is a round trip there, so the figure is reported as a ratio to the SQLite run of the same process.
//
// CLOUD_INGEST_GATEWAYS, CLOUD_INGEST_MESSAGES (per gateway, measured) and CLOUD_INGEST_PROFILE=1 (write a CPU
// profile of the measured phase and print the top self-time functions) tune a run.

import { fork, spawn, type ChildProcess } from "node:child_process";
import { randomBytes, scryptSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import mqtt from "mqtt";
import pg from "pg";
import { pino } from "pino";
import { cloudDbPath, startCloud } from "../cloud/server.js";
import { BASE_AT_MS, meterIdOf, type FromPublishers, type PublisherSpec, type ToPublishers } from "./cloud-ingest-publishers.js";
import { report } from "./report.js";
import { startPostgres } from "../test/harness/postgres.js";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const GATEWAYS = Number(process.env.CLOUD_INGEST_GATEWAYS ?? 1000);
const MESSAGES = Number(process.env.CLOUD_INGEST_MESSAGES ?? 30);
const METERS = 2;
const READINGS_PER_METER = 5;
const INITIAL_WH = 1_000_000;
const WH_PER_READING = 1000;
const PRICE_CENTI_FEN_PER_KWH = 5283;
const TOP_UP_FEN = 500_000;
const GATEWAY_PASSWORD = "bench-gateway-secret";
const GOAL_READINGS_PER_S = 20_000;

const readingsPerMessage = METERS * READINGS_PER_METER;

/** A cheap (N = 2^10, the least policy.ts accepts) scrypt hash, so 1,000 logins do not dominate the setup. */
function cheapHash(secret: string): string {
  const salt = randomBytes(16);
  const key = scryptSync(secret, salt, 32, { N: 1024, r: 8, p: 1 });
  return ["scrypt", 1024, 8, 1, salt.toString("base64"), key.toString("base64")].join("$");
}

const gatewayIds = Array.from({ length: GATEWAYS }, (_, i) => `gw-${String(i + 1).padStart(4, "0")}`);

class Publishers {
  private readonly waiters: ((m: FromPublishers) => void)[] = [];
  private constructor(private readonly child: ChildProcess) {
    child.on("message", (m: FromPublishers) => {
      if (m.type === "error") process.stderr.write(`publishers: ${m.message}\n`);
      this.waiters.shift()?.(m);
    });
  }

  static start(): Publishers {
    const child = fork(join(BENCH_DIR, "cloud-ingest-publishers.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    return new Publishers(child);
  }

  private ask(message: ToPublishers): Promise<FromPublishers> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.child.send(message);
    });
  }

  async connect(spec: PublisherSpec): Promise<void> {
    const answer = await this.ask({ type: "connect", spec });
    if (answer.type !== "connected") throw new Error(`publishers did not connect: ${JSON.stringify(answer)}`);
  }

  async publish(fromSeq: number, toSeq: number): Promise<Extract<FromPublishers, { type: "published" }>> {
    const answer = await this.ask({ type: "publish", fromSeq, toSeq });
    if (answer.type !== "published") throw new Error(`publishers failed: ${JSON.stringify(answer)}`);
    return answer;
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.send({ type: "close" });
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`cloud-ingest: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const mb = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;

function rssSampler(): { startMb: number; peakMb(): number; stop(): void } {
  const start = process.memoryUsage.rss();
  let peak = start;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 50);
  return { startMb: mb(start), peakMb: () => mb(Math.max(peak, process.memoryUsage.rss())), stop: () => clearInterval(timer) };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Top self-time functions of a V8 CPU profile, in percent of the samples. */
function topSelfTime(profile: { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples?: number[] | undefined }, n: number): string[] {
  const counts = new Map<number, number>();
  for (const id of profile.samples ?? []) counts.set(id, (counts.get(id) ?? 0) + 1);
  const total = profile.samples?.length ?? 1;
  const byName = new Map<string, number>();
  for (const node of profile.nodes) {
    const c = counts.get(node.id) ?? 0;
    if (c === 0) continue;
    const where = node.callFrame.url.replace(/^.*\/(node_modules\/[^/]+|work\/main)\//, "$1/");
    const key = `${node.callFrame.functionName || "(anonymous)"} ${where}:${node.callFrame.lineNumber + 1}`;
    byName.set(key, (byName.get(key) ?? 0) + c);
  }
  return [...byName].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, c]) => `${((100 * c) / total).toFixed(1)}% ${k}`);
}

interface CloudRun {
  readonly readingsPerS: number;
  readonly peakRssMb: number;
  readonly startRssMb: number;
  readonly batches: number;
}

/** The charge postings the ledger holds: in cloud.db, or in PostgreSQL when the cloud ran on `databaseUrl`. */
async function chargePostings(dir: string, databaseUrl: string | undefined): Promise<number> {
  const sql = "SELECT COUNT(*) AS n FROM ledger_postings WHERE kind = 'charge'";
  if (databaseUrl === undefined) {
    const db = new Database(cloudDbPath(join(dir, "cloud")), { readonly: true });
    try {
      return db.prepare<[], { n: number }>(sql).get()?.n ?? 0;
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return Number((await client.query<{ n: string }>(sql)).rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

async function runCloud(dir: string, databaseUrl?: string): Promise<CloudRun> {
  const log = pino({ level: process.env.CLOUD_INGEST_LOG ?? "silent" });
  const cloud = await startCloud({ dataDir: join(dir, "cloud"), databaseUrl, mqtt: { host: "127.0.0.1", port: 0, maxConnectionsPerIpPerMinute: 1_000_000 }, log, topUpPollMs: 60_000 });
  const publishers = Publishers.start();
  try {
    const { registry, prepaid } = cloud;
    const hash = cheapHash(GATEWAY_PASSWORD);
    await registry.addTariff({ tariffId: "agri-flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: PRICE_CENTI_FEN_PER_KWH } });
    for (let v = 0; v < 10; v++) await registry.addVillage({ villageId: `v${v}`, name: `Village ${v}` });
    const households: string[] = [];
    for (const [i, gatewayId] of gatewayIds.entries()) {
      const villageId = `v${i % 10}`;
      await registry.addGateway({ gatewayId, villageId, secretHash: hash });
      for (let k = 0; k < METERS; k++) {
        const householdId = `hh-${meterIdOf(gatewayId, k)}`;
        await registry.addHousehold({ householdId, villageId, name: `Household ${i}/${k}`, overdraftFen: 0 });
        await registry.addMeter({ meterId: meterIdOf(gatewayId, k), gatewayId, householdId, tariffId: "agri-flat", initialWh: INITIAL_WH });
        households.push(householdId);
      }
    }
    await cloud.refreshRegistry();
    for (const householdId of households) await prepaid.topUp({ householdId, amountFen: TOP_UP_FEN, officerId: "bench", receiptId: "r-1", atMs: BASE_AT_MS });

    await publishers.connect({
      url: cloud.mqttUrl,
      gateways: gatewayIds,
      password: GATEWAY_PASSWORD,
      metersPerGateway: METERS,
      readingsPerMeter: READINGS_PER_METER,
      initialWh: INITIAL_WH,
      whPerReading: WH_PER_READING,
      inflight: 8,
    });
    const warmUpReadings = GATEWAYS * readingsPerMessage;
    await publishers.publish(1, 1);
    await until(() => prepaid.counters.readingsCharged >= warmUpReadings, 300_000, "the warm-up readings to be charged");

    const measured = GATEWAYS * MESSAGES * readingsPerMessage;
    const session = process.env.CLOUD_INGEST_PROFILE === "1" ? new Session() : undefined;
    if (session !== undefined) {
      session.connect();
      await session.post("Profiler.enable");
      await session.post("Profiler.start");
    }
    const batchesBefore = cloud.ingest.counters.batches;
    const rss = rssSampler();
    const t0 = Date.now();
    const published = publishers.publish(2, MESSAGES + 1);
    await until(() => prepaid.counters.readingsCharged >= warmUpReadings + measured, 600_000, "every measured reading to be charged");
    const elapsedMs = Date.now() - t0;
    rss.stop();
    await published;
    if (session !== undefined) {
      const { profile } = await session.post("Profiler.stop");
      const file = join(BENCH_DIR, "results", "cloud-ingest.cpuprofile");
      writeFileSync(file, JSON.stringify(profile));
      process.stderr.write(`cloud-ingest: CPU profile of the measured phase in ${file}; top self time:\n  ${topSelfTime(profile, 25).join("\n  ")}\n`);
      session.disconnect();
    }
    await prepaid.idle();

    // The check: every reading is a charge posting in the ledger, and every meter's charged register is the last one.
    const charges = await chargePostings(dir, databaseUrl);
    const expectedCharges = warmUpReadings + measured;
    if (charges !== expectedCharges) throw new Error(`cloud-ingest: the ledger holds ${charges} charge postings, expected ${expectedCharges}`);
    const lastRegisterWh = INITIAL_WH + (MESSAGES + 1) * READINGS_PER_METER * WH_PER_READING;
    for (const gatewayId of gatewayIds) {
      for (let k = 0; k < METERS; k++) {
        const state = await cloud.ledger.loadChargeState(meterIdOf(gatewayId, k));
        if (state?.state.lastRegisterWh !== lastRegisterWh) throw new Error(`cloud-ingest: ${meterIdOf(gatewayId, k)} charged to ${state?.state.lastRegisterWh}, expected ${lastRegisterWh}`);
      }
    }
    const { counters } = cloud.ingest;
    if (counters.sinkErrors !== 0 || counters.duplicates !== 0) throw new Error(`cloud-ingest: ingest counters ${JSON.stringify(counters)}`);
    process.stderr.write(`cloud-ingest: ingest ${JSON.stringify(counters)}; prepaid ${JSON.stringify(prepaid.counters)}\n`);
    return { readingsPerS: Math.round((measured * 1000) / elapsedMs), peakRssMb: rss.peakMb(), startRssMb: rss.startMb, batches: counters.batches - batchesBefore };
  } finally {
    await publishers.close();
    await cloud.stop();
  }
}

async function runMosquitto(dir: string): Promise<number> {
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "set_tcp_nodelay true",
      "persistence false",
      // No queue limit (the default 1000 would drop QoS 1 messages for a subscriber that falls behind).
      "max_queued_messages 0",
      "log_dest stderr",
      "log_type error",
      ...(process.getuid?.() === 0 ? ["user root"] : []),
      "",
    ].join("\n"),
  );
  const broker = spawn("/usr/sbin/mosquitto", ["-c", conf], { stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise<void>((resolve) => broker.once("exit", () => resolve()));
  const publishers = Publishers.start();
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
        s.once("error", () => resolve(false));
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error("mosquitto did not listen");
      await new Promise((r) => setTimeout(r, 50));
    }
    const subscriber = new mqtt.MqttClient(
      () => {
        const socket = net.connect({ host: "127.0.0.1", port });
        socket.setNoDelay(true);
        return socket;
      },
      { clientId: "bench-subscriber", protocolVersion: 4, clean: true, reconnectPeriod: 0 },
    );
    await new Promise<void>((resolve, reject) => {
      subscriber.once("connect", () => resolve());
      subscriber.once("error", reject);
    });
    await subscriber.subscribeAsync("agri/v1/gw/+/up/#", { qos: 1 });
    let received = 0;
    subscriber.on("message", () => {
      received++;
    });
    await publishers.connect({ url: `mqtt://127.0.0.1:${port}`, gateways: gatewayIds, metersPerGateway: METERS, readingsPerMeter: READINGS_PER_METER, initialWh: INITIAL_WH, whPerReading: WH_PER_READING, inflight: 8 });
    await publishers.publish(1, 1);
    await until(() => received >= GATEWAYS, 60_000, "mosquitto warm-up");
    const t0 = Date.now();
    const published = publishers.publish(2, MESSAGES + 1);
    await until(() => received >= GATEWAYS * (MESSAGES + 1), 600_000, "every message relayed by mosquitto");
    const elapsedMs = Date.now() - t0;
    await published;
    await subscriber.endAsync(true);
    return Math.round((GATEWAYS * MESSAGES * readingsPerMessage * 1000) / elapsedMs);
  } finally {
    await publishers.close();
    broker.kill("SIGTERM");
    await exited;
  }
}

export async function cloudIngest(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bench-cloud-ingest-"));
  try {
    const note = `${GATEWAYS} gateways × ${MESSAGES} messages × ${readingsPerMessage} readings (${METERS} meters × ${READINGS_PER_METER}), QoS 1, loopback`;
    const cloud = await runCloud(dir);
    const mosquitto = await runMosquitto(dir);
    report({ bench: "cloud-ingest-readings-per-s", value: cloud.readingsPerS, unit: "readings/s", goal: GOAL_READINGS_PER_S, better: "higher", note: `${note}; charged in the SQLite ledger and checked; ${cloud.batches} group commits` });
    report({ bench: "cloud-ingest-mosquitto-relay-readings-per-s", value: mosquitto, unit: "readings/s", better: "higher", note: `the same messages through Debian mosquitto to one QoS 1 subscriber` });
    report({ bench: "cloud-ingest-vs-mosquitto", value: Math.round((cloud.readingsPerS / mosquitto) * 1000) / 1000, unit: "ratio", better: "higher", note: "cloud readings/s ÷ mosquitto relay readings/s" });
    report({ bench: "cloud-ingest-peak-rss", value: cloud.peakRssMb, unit: "MB", better: "lower", note: `the cloud process (broker with 1,000 connections, ingest, ledger, telemetry) during the measured phase; ${cloud.startRssMb} MB when it began` });

    // The same load with DATABASE_URL: ledger, registry, grants and top-up notices in a durable PostgreSQL on this
    // machine (fsync on), sharing its 2 cores with the cloud and the publishers.
    const server = await startPostgres({ durable: true });
    try {
      const onPostgres = await runCloud(join(dir, "pg"), await server.createDatabase("ingest"));
      report({ bench: "cloud-ingest-postgres-readings-per-s", value: onPostgres.readingsPerS, unit: "readings/s", better: "higher", note: `${note}; DATABASE_URL: ledger, registry and grants in a durable local PostgreSQL, checked there; ${onPostgres.batches} group commits` });
      report({ bench: "cloud-ingest-postgres-vs-sqlite", value: Math.round((onPostgres.readingsPerS / cloud.readingsPerS) * 1000) / 1000, unit: "ratio", better: "higher", note: "readings/s with everything on PostgreSQL ÷ readings/s on the embedded SQLite defaults, same run" });
      report({ bench: "cloud-ingest-postgres-peak-rss", value: onPostgres.peakRssMb, unit: "MB", better: "lower", note: `the same process during the PostgreSQL run (after the SQLite run, so an upper bound); ${onPostgres.startRssMb} MB when it began` });
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
