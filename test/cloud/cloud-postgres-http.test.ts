// The whole cloud as `agri-cloud serve` runs it with DATABASE_URL set: startCloud with its ledger on a throwaway
// PostgreSQL server and its HTTP API listening. Everything is provisioned through the API (village, gateway with its
// one-time secret, tariff, household, meter), a gateway logs in to the embedded broker with that secret and sends
// billing readings, an officer tops up over HTTP, and the money lands in PostgreSQL: charges, the credit grant
// published to the gateway, the statement of account over HTTP, and the meter's daily usage for the subsidy.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatTopic } from "../../protocols/mqtt/topics.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { startCloud, type RunningCloud } from "../../cloud/server.js";
import { eventuallyAsync } from "../harness/broker.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";

const PASSWORD = "correct horse battery staple";
let server: PostgresServer;
let databaseUrl: string;
let cloud: RunningCloud;
let dir: string;
let gateway: MqttClient | undefined;
let adminToken: string;
const commands: unknown[] = [];
/** Readings from ten minutes ago, so the top-up (recorded now) and the charges fit one statement. */
const BASE_MS = Date.now() - 10 * 60_000;

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${cloud.http?.url ?? ""}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, json: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

function billing(seq: number, registerWh: number): string {
  const at = new Date(BASE_MS + seq * 60_000).toISOString();
  return JSON.stringify({
    v: 1,
    gatewayId: "gw-pg",
    seq,
    sentAt: at,
    readings: [{ meterId: "pump-pg", pointId: "importEnergy", role: "import_energy", registerSeq: seq, at, raw: { words: [0, 0], value: registerWh / 1000 }, energyWh: registerWh, conversion: { exact: true, droppedWh: 0 } }],
  });
}

beforeAll(async () => {
  server = await startPostgres();
  databaseUrl = await server.createDatabase("cloud");
  dir = mkdtempSync(join(tmpdir(), "cloud-pg-"));
  cloud = await startCloud({ dataDir: dir, databaseUrl, mqtt: { host: "127.0.0.1", port: 0 }, http: { host: "127.0.0.1", port: 0 }, log: pino({ level: "silent" }), registryRefreshMs: 100, topUpPollMs: 100 });
  await cloud.http?.auth.createUser({ userId: "admin", name: "Admin", roles: ["admin"], password: PASSWORD }, { actor: "test" });
  const login = await fetch(`${cloud.http?.url ?? ""}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId: "admin", password: PASSWORD, mode: "token" }) });
  adminToken = ((await login.json()) as { token: string }).token;
}, 60_000);

afterAll(async () => {
  await gateway?.endAsync(true);
  await cloud?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("agri-cloud on PostgreSQL, provisioned and used over HTTP", () => {
  it("keeps its ledger in PostgreSQL", () => {
    expect(cloud.ledger.kind).toBe("postgres");
  });

  it("provisions a village, a gateway (secret shown once), a tariff, a household and a meter through the API", async () => {
    expect((await api("POST", "/villages", { villageId: "v-pg", name: "Postgres village" })).status).toBe(201);
    const gw = await api("POST", "/villages/v-pg/gateways", { gatewayId: "gw-pg" });
    expect(gw.status).toBe(201);
    expect(typeof gw.json.secret).toBe("string");
    expect((await api("POST", "/tariffs/flat/versions", { effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 }, reason: "county price list" })).status).toBe(201);
    expect((await api("POST", "/villages/v-pg/households", { householdId: "hh-pg", name: "陈德伯" })).status).toBe(201);
    expect((await api("POST", "/households/hh-pg/meters", { meterId: "pump-pg", gatewayId: "gw-pg", tariffId: "flat", initialWh: 100_000, reason: "pump commissioned" })).status).toBe(201);

    gateway = await mqtt.connectAsync(cloud.mqttUrl, { username: "gw-pg", password: String(gw.json.secret), clientId: "gw-pg", protocolVersion: 4, clean: true, reconnectPeriod: 0 });
    await gateway.subscribeAsync(formatTopic("command", { gatewayId: "gw-pg" }), { qos: 1 });
    gateway.on("message", (_topic, payload) => commands.push(JSON.parse(payload.toString()) as unknown));
  });

  it("refuses the gateway a wrong secret", async () => {
    await expect(mqtt.connectAsync(cloud.mqttUrl, { username: "gw-pg", password: "not-the-secret", clientId: "gw-pg-2", protocolVersion: 4, reconnectPeriod: 0 })).rejects.toThrow();
  });

  it("charges billing readings in PostgreSQL, grants credit after an HTTP top-up, and shows both in the statement", async () => {
    const topUp = await api("POST", "/households/hh-pg/top-ups", { amountFen: 10_000, receiptId: "R-1", idempotencyKey: "topup-R-1" });
    expect(topUp.status).toBe(201);
    await gateway?.publishAsync(formatTopic("billing", { gatewayId: "gw-pg" }), billing(1, 100_000), { qos: 1 });
    // 2 kWh at ¥0.5283 = 105.66 fen → 106 fen (round half up).
    await gateway?.publishAsync(formatTopic("billing", { gatewayId: "gw-pg" }), billing(2, 102_000), { qos: 1 });
    const balance = await eventuallyAsync(
      async () => {
        const b = await cloud.ledger.balance(householdAccountId("hh-pg"));
        return b === 10_000 - 106 ? b : undefined;
      },
      15_000,
      "the charge in PostgreSQL",
    );
    expect(balance).toBe(9_894);

    const grant = await eventuallyAsync(
      () => Promise.resolve(commands.map((c) => (c as { command?: { type?: string; limitWh?: number } }).command).find((c) => c?.type === "credit.grant" && (c.limitWh ?? 0) > 102_000)),
      15_000,
      "a credit grant above the register",
    );
    expect(grant.limitWh).toBeGreaterThan(102_000);

    const statement = await api("GET", `/households/hh-pg/statement?fromMs=${BASE_MS - 86_400_000}&toMs=${Date.now() + 86_400_000}`);
    expect(statement.status).toBe(200);
    expect(JSON.stringify(statement.json)).toMatch(/9894/);

    const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    try {
      const days = await pool.query<{ energy_wh: string; charged_fen: string }>("SELECT energy_wh, charged_fen FROM ledger_meter_days WHERE meter_id = 'pump-pg'");
      // One row per local day (two if the readings straddle midnight in Asia/Shanghai): together 2 kWh for 106 fen.
      const energyWh = days.rows.reduce((sum, r) => sum + Number(r.energy_wh), 0);
      const chargedFen = days.rows.reduce((sum, r) => sum + Number(r.charged_fen), 0);
      expect([energyWh, chargedFen]).toEqual([2_000, 106]);
    } finally {
      await pool.end();
    }
  });

  it("answers a malformed body with a problem document and changes nothing", async () => {
    const bad = await api("POST", "/households/hh-pg/top-ups", { amountFen: 1.5, receiptId: "R-2", idempotencyKey: "topup-R-2" });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe("API_INVALID_INPUT");
    expect(await cloud.ledger.balance(householdAccountId("hh-pg"))).toBe(9_894);
  });
});
