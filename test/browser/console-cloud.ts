// A real cloud HTTP app for the browser tests: buildApp (auth, sessions) with the provisioning, prepaid, alerts and
// web console plugins over real SQLite files in a temporary directory, listening on a free port behind a cuttable
// TCP proxy (cuttable-proxy.ts). Seeded with one village of three households at three credit stages, a metered
// household charged through the real prepaid service from billing readings, users of each role, and a forest
// jurisdiction with fire sensors; alarms enter through the alert service's own ingest sink (onAlarm).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { alarmMessageSchema, billingReadingsSchema } from "../../protocols/mqtt/messages.js";
import { alertsRoutes } from "../../cloud/alerts/routes.js";
import { createAlertService, type AlertService } from "../../cloud/alerts/service.js";
import { buildApp } from "../../cloud/api/app.js";
import { prepaidRoutes } from "../../cloud/api/routes/prepaid.js";
import { provisioningRoutes } from "../../cloud/api/routes/provisioning.js";
import type { AuditLog } from "../../cloud/audit/audit-log.js";
import { openSqliteAuditLog } from "../../cloud/audit/sqlite-audit-log.js";
import type { AuthStore } from "../../cloud/auth/auth-store.js";
import { openSqliteAuthStore } from "../../cloud/auth/sqlite-auth-store.js";
import type { Role } from "../../cloud/auth/principal.js";
import { hashSecret } from "../../cloud/broker/secrets.js";
import { openSqliteLedger, type SqliteLedger } from "../../cloud/ledger/store/sqlite-ledger.js";
import { openPaymentsStore, type PaymentsStore } from "../../cloud/payments/orders-store.js";
import { createPrepaidService, type PrepaidService } from "../../cloud/prepaid/service.js";
import { openRegistry, type Registry } from "../../cloud/registry/registry.js";
import { openSqliteTelemetryStore, type SqliteTelemetryStore } from "../../cloud/telemetry/sqlite-store.js";
import { webRoutes } from "../../cloud/web/web-routes.js";
import { startCuttableProxy, type CuttableProxy } from "./cuttable-proxy.js";

export const PASSWORD = "correct horse battery staple";
export const VILLAGE = "hongmiao";
export const FOREST_GATEWAY = "gw-forest-1";

/** ¥0.5283 per kWh, in centi-fen per kWh. */
const PRICE = 5283;
const INITIAL_WH = 500_000;

interface TestUser {
  readonly userId: string;
  readonly name: string;
  readonly roles: Role[];
  readonly householdId?: string;
  readonly villageIds?: string[];
  readonly jurisdictionIds?: string[];
}

export const USERS = {
  farmerLi: { userId: "li.farmer", name: "李建国", roles: ["farmer"], householdId: "hh-li" },
  farmerWang: { userId: "wang.farmer", name: "王秀英", roles: ["farmer"], householdId: "hh-wang" },
  officer: { userId: "zhao.officer", name: "赵村长", roles: ["village-officer"], villageIds: [VILLAGE] },
  dispatcher: { userId: "police.mogan", name: "莫干山派出所", roles: ["police-dispatcher"], jurisdictionIds: ["j-deqing"] },
} satisfies Record<string, TestUser>;

/** Sensors more than the clustering radius (1.5 km) apart, so each alarm opens its own incident. */
export const SENSORS = [
  { sensorId: "s-xiantan-1", name: "仙潭村北坡", lat: 30.5655, lon: 119.879 },
  { sensorId: "s-jianshan-1", name: "剑山", lat: 30.5912, lon: 119.8541 },
  { sensorId: "s-tashan-1", name: "塔山", lat: 30.5401, lon: 119.9105 },
  { sensorId: "s-yucun-1", name: "庾村", lat: 30.6123, lon: 119.8899 },
  { sensorId: "s-houwu-1", name: "后坞", lat: 30.5205, lon: 119.8402 },
] as const;

export interface ConsoleCloud {
  /** The console's base URL, through the proxy. */
  readonly consoleUrl: string;
  readonly proxy: CuttableProxy;
  readonly app: FastifyInstance;
  readonly alerts: AlertService;
  readonly ledger: SqliteLedger;
  readonly registry: Registry;
  /** An alarm from a registered fire sensor, through the alert service's ingest sink; returns the incident id. */
  raiseAlarm(sensorId: string): string;
  close(): Promise<void>;
}

export async function startConsoleCloud(): Promise<ConsoleCloud> {
  const dir = mkdtempSync(join(tmpdir(), "console-browser-"));
  const log = pino({ level: process.env.BROWSER_TEST_LOG ?? "silent" });
  const now = (): number => Date.now();
  const cloudDb = join(dir, "cloud.db");
  const closers: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const close = async (): Promise<void> => {
    for (const step of closers.splice(0).reverse()) await step();
  };
  try {
    const ledger: SqliteLedger = openSqliteLedger({ path: cloudDb, now });
    closers.push(() => ledger.close());
    const registry: Registry = openRegistry({ path: cloudDb, now });
    closers.push(async () => await registry.close());
    const telemetry: SqliteTelemetryStore = openSqliteTelemetryStore({ path: join(dir, "telemetry.db"), now });
    closers.push(() => telemetry.close());
    const auth: AuthStore = openSqliteAuthStore({ path: cloudDb, now, villageOfHousehold: async (id) => (await registry.getHousehold(id))?.villageId });
    closers.push(() => auth.close());
    const audit: AuditLog = openSqliteAuditLog(cloudDb, { now });
    closers.push(async () => await audit.close());
    const payments: PaymentsStore = openPaymentsStore({ path: cloudDb, now });
    closers.push(() => payments.close());
    // No broker here: grants are stored and their publication recorded; nothing in the console depends on them.
    const published: unknown[] = [];
    const prepaid: PrepaidService = createPrepaidService({ ledger, registry, log, now, publishCommand: (gatewayId, command) => {
      published.push({ gatewayId, command });
      return Promise.resolve();
    } });
    const alerts = createAlertService({ path: join(dir, "alerts.db"), log, now, escalationCheckMs: 0 });
    closers.push(() => alerts.stop());

    await seedMoney(registry, prepaid);
    await seedUsers(auth);
    seedForest(alerts);

    const app = await buildApp({
      registry,
      ledger,
      prepaid,
      telemetry,
      auth,
      audit,
      log,
      now,
      routes: [
        (scope) => provisioningRoutes(scope, { registry, ledger, audit, now, prepaid }),
        (scope) => prepaidRoutes(scope, { registry, ledger, audit, prepaid, requests: payments, telemetry, now }),
        (scope) => alertsRoutes(scope, { alerts, sseHeartbeatMs: 5_000, sseRetryMs: 300 }),
        (scope) => webRoutes(scope),
      ],
    });
    closers.push(() => app.close());
    await app.listen({ host: "127.0.0.1", port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === "string") throw new Error("cloud app has no TCP address");
    const proxy = await startCuttableProxy(address.port);
    closers.push(() => proxy.close());

    let seq = 0;
    return {
      consoleUrl: `http://127.0.0.1:${proxy.port}/console/`,
      proxy,
      app,
      alerts,
      ledger,
      registry,
      raiseAlarm(sensorId) {
        seq++;
        const before = new Set(alerts.listIncidents({ sinceMs: 0, limit: 1000, openOnly: false }).map((i) => i.incidentId));
        const at = new Date(now()).toISOString();
        const message = alarmMessageSchema.parse({
          v: 1,
          gatewayId: FOREST_GATEWAY,
          seq,
          sentAt: at,
          event: { type: "alarm.raised", deviceId: sensorId, cause: "smoke_density", value: 0.21, threshold: 0.1, at, alarmId: `a-${seq}` },
        });
        alerts.onAlarm(message, FOREST_GATEWAY);
        const opened = alerts.listIncidents({ sinceMs: 0, limit: 1000, openOnly: false }).find((i) => !before.has(i.incidentId));
        if (opened === undefined) throw new Error(`alarm from ${sensorId} opened no incident (clustered into another?)`);
        return opened.incidentId;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** hh-li: ¥123.45 topped up, then 2 kWh at ¥0.5283 charged from real billing readings; hh-wang and hh-chen low. */
async function seedMoney(registry: Registry, prepaid: PrepaidService): Promise<void> {
  await registry.addVillage({ villageId: VILLAGE, name: "红庙村" });
  await registry.addHousehold({ householdId: "hh-li", villageId: VILLAGE, name: "李建国", overdraftFen: 0 });
  await registry.addHousehold({ householdId: "hh-wang", villageId: VILLAGE, name: "王秀英", overdraftFen: 0 });
  await registry.addHousehold({ householdId: "hh-chen", villageId: VILLAGE, name: "陈阿伯", overdraftFen: 0 });
  await registry.addGateway({ gatewayId: "gw-hm-1", villageId: VILLAGE, secretHash: await hashSecret("gateway-secret-hm-1") });
  await registry.addTariff({ tariffId: "agri-flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: PRICE } });
  await registry.addMeter({ meterId: "pump-li", gatewayId: "gw-hm-1", householdId: "hh-li", tariffId: "agri-flat", initialWh: INITIAL_WH });

  // Paid two hours ago; pumped for a minute an hour ago (charges post at the reading's time).
  const paidAtMs = Date.now() - 2 * 3_600_000;
  await prepaid.topUp({ householdId: "hh-li", amountFen: 12_345, officerId: "zhao.officer", receiptId: "seed-li-1", atMs: paidAtMs });
  await prepaid.topUp({ householdId: "hh-wang", amountFen: 1_500, officerId: "zhao.officer", receiptId: "seed-wang-1", atMs: paidAtMs });
  await prepaid.topUp({ householdId: "hh-chen", amountFen: 300, officerId: "zhao.officer", receiptId: "seed-chen-1", atMs: paidAtMs });

  const atMs = Date.now() - 3_600_000;
  const reading = (registerSeq: number, energyWh: number, at: number) => ({
    meterId: "pump-li",
    pointId: "import",
    role: "import_energy",
    registerSeq,
    at: new Date(at).toISOString(),
    raw: { words: [Math.floor(energyWh / 10) >>> 16, Math.floor(energyWh / 10) & 0xffff], value: energyWh / 1000 },
    energyWh,
    conversion: { exact: true, droppedWh: 0 },
  });
  const billing = billingReadingsSchema.parse({
    v: 1,
    gatewayId: "gw-hm-1",
    seq: 1,
    sentAt: new Date(atMs + 120_000).toISOString(),
    readings: [reading(1, INITIAL_WH, atMs), reading(2, INITIAL_WH + 2_000, atMs + 60_000)],
  });
  await prepaid.onBilling(billing, "gw-hm-1");
}

async function seedUsers(auth: AuthStore): Promise<void> {
  for (const user of Object.values(USERS)) await auth.createUser({ ...user, password: PASSWORD }, { actor: "test-setup" });
}

function seedForest(alerts: AlertService): void {
  alerts.upsertJurisdiction({ jurisdictionId: "j-deqing", parentId: null, tier: "county", name: "德清县", ackTimeoutMs: 600_000, onSceneTimeoutMs: 1_800_000 });
  alerts.upsertJurisdiction({ jurisdictionId: "j-mogan", parentId: "j-deqing", tier: "township", name: "莫干山镇", ackTimeoutMs: 300_000, onSceneTimeoutMs: 1_800_000 });
  for (const s of SENSORS) alerts.upsertSensor({ ...s, gatewayId: FOREST_GATEWAY, jurisdictionId: "j-mogan", mode: "normal" });
}
