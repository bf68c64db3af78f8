// Two whole clouds (`agri-cloud serve` twice, each with its own data directory and HTTP port) on one DATABASE_URL and
// one external broker (Debian mosquitto, MQTT 5 shared subscription), as a county runs several workers: the
// registry, users, sessions, the audit log and the ledger are in PostgreSQL, so what is provisioned through one worker
// is served by the other — the gateway's readings, split between the workers, are each charged once; an officer's
// top-up on either worker reaches the pump's gateway as a larger credit grant; a logout on A ends the session on B.
// Each worker's cloud.db holds none of those tables.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import mqtt, { type MqttClient } from "mqtt";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { cloudDbPath, startCloud, type RunningCloud } from "../../cloud/server.js";
import { formatTopic } from "../../protocols/mqtt/topics.js";
import { eventuallyAsync } from "../harness/broker.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { startMosquitto, type RunningMosquitto } from "../edge/fixtures/mosquitto.js";

const ADMIN_PASSWORD = "correct horse battery staple";
const OFFICER_PASSWORD = "a village officer's long passphrase";
/** Readings from ten minutes ago, so the top-up (recorded now) and the charges fit one statement. */
const BASE_MS = Date.now() - 10 * 60_000;

const MQTT_PASSWORDS = { "gw-w": "gateway-secret", "cloud-worker": "worker-secret" };

let server: PostgresServer;
let databaseUrl: string;
let brokerDir: string;
let broker: RunningMosquitto;
const workers: { cloud: RunningCloud; dir: string }[] = [];
let gateway: MqttClient | undefined;
let charged = 0;
const grants: { grantSeq: number; limitWh: number }[] = [];
const tokens = new Map<string, string>();

const a = (): RunningCloud => workers[0]!.cloud;
const b = (): RunningCloud => workers[1]!.cloud;

async function api(cloud: RunningCloud, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${cloud.http?.url ?? ""}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

/** A session, its token sent as a bearer credential (mode "token"). */
async function login(cloud: RunningCloud, userId: string, password: string): Promise<string> {
  const response = await fetch(`${cloud.http?.url ?? ""}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId, password, mode: "token" }) });
  expect(response.status).toBe(200);
  return ((await response.json()) as { token: string }).token;
}

const admin = (cloud: RunningCloud, method: string, path: string, body?: unknown) => api(cloud, tokens.get("admin") ?? "", method, path, body);

function billing(seq: number, registerWh: number): string {
  const at = new Date(BASE_MS + seq * 60_000).toISOString();
  return JSON.stringify({
    v: 1,
    gatewayId: "gw-w",
    seq,
    sentAt: at,
    readings: [{ meterId: "pump-w", pointId: "importEnergy", role: "import_energy", registerSeq: seq, at, raw: { words: [0, 0], value: registerWh / 1000 }, energyWh: registerWh, conversion: { exact: true, droppedWh: 0 } }],
  });
}

beforeAll(async () => {
  server = await startPostgres();
  databaseUrl = await server.createDatabase("workers");
  brokerDir = mkdtempSync(join(tmpdir(), "cloud-workers-mosquitto-"));
  broker = await startMosquitto({
    dir: brokerDir,
    users: MQTT_PASSWORDS,
    acl: ["user gw-w", "topic write agri/v1/gw/gw-w/up/#", "topic read agri/v1/gw/gw-w/down/#", "user cloud-worker", "topic read agri/v1/gw/+/up/#", "topic write agri/v1/gw/+/down/#", ""].join("\n"),
  });
  for (const name of ["a", "b"]) {
    const dir = mkdtempSync(join(tmpdir(), `cloud-worker-${name}-`));
    const cloud = await startCloud({
      dataDir: dir,
      databaseUrl,
      mqtt: { host: "127.0.0.1", port: 0, external: { url: broker.url, username: "cloud-worker", password: MQTT_PASSWORDS["cloud-worker"], sharedGroup: "county", workerId: `worker-${name}` } },
      http: { host: "127.0.0.1", port: 0 },
      log: pino({ level: "silent" }),
      registryRefreshMs: 100,
      topUpPollMs: 100,
    });
    workers.push({ cloud, dir });
  }
  // The first admin is made once, on A (as `agri-cloud user add` would), and logs in on B.
  await a().http?.auth.createUser({ userId: "admin", name: "Admin", roles: ["admin"], password: ADMIN_PASSWORD }, { actor: "test" });
  tokens.set("admin", await login(b(), "admin", ADMIN_PASSWORD));
}, 90_000);

afterAll(async () => {
  await gateway?.endAsync(true);
  for (const { cloud, dir } of workers) {
    await cloud.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  await broker?.close();
  rmSync(brokerDir, { recursive: true, force: true });
  await server?.stop();
});

describe("two cloud workers on one PostgreSQL", () => {
  it("keep the ledger, registry, users, audit log and payments in PostgreSQL, not in their own cloud.db", () => {
    for (const { cloud, dir } of workers) {
      expect([cloud.ledger.kind, cloud.registry.kind]).toEqual(["postgres", "postgres"]);
      const db = new Database(cloudDbPath(dir), { readonly: true });
      try {
        const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name);
        expect(tables.filter((t) => /^(registry_|auth_|audit_log|ledger_|payment_|household_money_requests)/.test(t))).toEqual([]);
      } finally {
        db.close();
      }
    }
  });

  it("serve on B what was provisioned on A", async () => {
    expect((await admin(a(), "POST", "/villages", { villageId: "v-w", name: "两站村" })).status).toBe(201);
    expect((await admin(a(), "POST", "/villages/v-w/gateways", { gatewayId: "gw-w" })).status).toBe(201);
    expect((await admin(a(), "POST", "/tariffs/flat/versions", { effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 }, reason: "county price list" })).status).toBe(201);
    expect((await admin(a(), "POST", "/villages/v-w/households", { householdId: "hh-w", name: "陈德伯" })).status).toBe(201);
    expect((await admin(a(), "POST", "/households/hh-w/meters", { meterId: "pump-w", gatewayId: "gw-w", tariffId: "flat", initialWh: 100_000, reason: "pump commissioned" })).status).toBe(201);

    const meter = await admin(b(), "GET", "/meters/pump-w");
    expect(meter.status).toBe(200);
    expect(meter.json).toMatchObject({ meterId: "pump-w", gatewayId: "gw-w", householdId: "hh-w", tariffId: "flat", initialWh: 100_000 });
    expect((await b().registry.snapshot()).gateways.has("gw-w")).toBe(true);

    // The gateway logs in to mosquitto: with an external broker, its password is the broker's business.
    gateway = await mqtt.connectAsync(broker.url, { username: "gw-w", password: MQTT_PASSWORDS["gw-w"], clientId: "gw-w", protocolVersion: 4, clean: true, reconnectPeriod: 0 });
    await gateway.subscribeAsync(formatTopic("command", { gatewayId: "gw-w" }), { qos: 1 });
    gateway.on("message", (_topic, payload) => {
      const command = (JSON.parse(payload.toString()) as { command?: { type?: string; grantSeq?: number; limitWh?: number } }).command;
      if (command?.type === "credit.grant") grants.push({ grantSeq: command.grantSeq ?? -1, limitWh: command.limitWh ?? -1 });
    });
  });

  it("charge the readings the workers share out once each, and show the same balance through both", async () => {
    // 1 kWh per message at ¥0.5283; the last message is sent twice (a resend after a lost PUBACK), and the copies
    // may reach different workers: 20 kWh charged once, within a fen of 20 × 52.83 = 1,056.6 fen (invariant 2).
    for (let seq = 1; seq <= 21; seq++) await gateway?.publishAsync(formatTopic("billing", { gatewayId: "gw-w" }), billing(seq, 100_000 + (seq - 1) * 1_000), { qos: 1 });
    await gateway?.publishAsync(formatTopic("billing", { gatewayId: "gw-w" }), billing(21, 120_000), { qos: 1 });
    charged = await eventuallyAsync(
      async () => {
        const state = await a().ledger.loadChargeState("pump-w");
        return state?.state.lastRegisterWh === 120_000 ? -(await a().ledger.balance(householdAccountId("hh-w"))) : undefined;
      },
      10_000,
      "the charges",
    );
    expect(Math.abs(charged - 1_056.6)).toBeLessThanOrEqual(1);
    // mosquitto shares the subscription out: both workers took billing messages (22 in all, with the resend).
    await eventuallyAsync(() => Promise.resolve(a().ingest.counters.received + b().ingest.counters.received >= 22 || undefined), 10_000, "every message received");
    expect([a().ingest.counters.received, b().ingest.counters.received].every((n) => n > 0)).toBe(true);
    expect(-(await a().ledger.balance(householdAccountId("hh-w")))).toBe(charged);
    for (const cloud of [a(), b()]) expect((await admin(cloud, "GET", "/households/hh-w/balance")).json).toMatchObject({ balanceFen: -charged });
  });

  it("send the gateway on B a larger credit grant after an officer tops up on A", async () => {
    const before = Math.max(0, ...grants.map((g) => g.limitWh));
    const topUp = await admin(a(), "POST", "/households/hh-w/top-ups", { amountFen: 10_000, receiptId: "R-W-1", idempotencyKey: "topup-R-W-1" });
    expect(topUp.status).toBe(201);
    const grant = await eventuallyAsync(() => Promise.resolve(grants.find((g) => g.limitWh > before + 100_000)), 10_000, "a grant sized from the top-up");
    // About ¥89 left at ¥0.5283/kWh is about 168 kWh above the 120 kWh register.
    expect(grant.limitWh).toBeGreaterThan(120_000 + 160_000);
    // Grant sequence numbers come from one registry: never reused across the workers.
    const seqs = grants.map((g) => g.grantSeq);
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it("refuse the same cash receipt entered again on the other worker, and post nothing", async () => {
    const again = await admin(b(), "POST", "/households/hh-w/top-ups", { amountFen: 10_000, receiptId: "R-W-1", idempotencyKey: "topup-R-W-1-again" });
    expect(again.status).toBe(409);
    expect((await admin(b(), "GET", "/households/hh-w/balance")).json).toMatchObject({ balanceFen: 10_000 - charged });
  });

  it("let a user created on B log in on A, and end that session on both after a logout on A", async () => {
    const created = await admin(b(), "POST", "/users", { userId: "officer-w", name: "王干事", roles: ["village-officer"], villageIds: ["v-w"], password: OFFICER_PASSWORD });
    expect(created.json).toMatchObject({ userId: "officer-w" });
    const session = await login(a(), "officer-w", OFFICER_PASSWORD);
    expect((await api(b(), session, "GET", "/households/hh-w/balance")).status).toBe(200);
    expect((await api(a(), session, "POST", "/auth/logout")).json).toEqual({ loggedOut: true });
    expect((await api(b(), session, "GET", "/households/hh-w/balance")).status).toBe(401);
  });

  it("keep one audit log: A's provisioning and B's user change are listed by either worker", async () => {
    for (const cloud of [a(), b()]) {
      const { entries } = (await admin(cloud, "GET", "/audit?limit=200")).json as unknown as { entries: { action: string; entityId: string }[] };
      const seen = entries.map((e) => `${e.action} ${e.entityId}`);
      expect(seen).toEqual(expect.arrayContaining(["village.create v-w", "meter.create pump-w", "ledger.top-up hh-w", "user.create officer-w"]));
    }
  });
});
