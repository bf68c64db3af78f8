#!/usr/bin/env node
// What `npm start` runs: the simulated village (firmware-sim preset), the cloud (startCloud: the authenticated broker
// on 127.0.0.1:1883, ingest, ledger, prepaid grants, fire alerts, subsidy settlement, the HTTP API and web console on
// 127.0.0.1:8080) and the edge agent configured by edge/examples/village.yaml. On first start the village is
// registered in the cloud: gateway hongmiao-gw-1 with the password from village.yaml (stored as an scrypt hash), the
// households, their plots and meters at ¥0.5283/kWh, a starting cash top-up so the pumps run, the forest sensors on
// the alert map with their jurisdictions, a grain-subsidy programme, and one demo user per role (DEMO_PASSWORD).
// Everything on loopback; data under ./.agri-data (or AGRI_DATA_DIR): cloud/ and the edge's outbox and state.

import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { pino, type Logger } from "pino";
import type { NewUserInput } from "../cloud/auth/user-schema.js";
import { hashSecret } from "../cloud/broker/secrets.js";
import { openHouseholdAccount } from "../cloud/prepaid/accounts.js";
import { startCloud, type RunningCloud } from "../cloud/server.js";
import { startControlServer } from "../firmware-sim/control.js";
import { Field } from "../firmware-sim/field.js";
import { villagePreset } from "../firmware-sim/presets/village.js";
import { parseScenario } from "../firmware-sim/scenario.js";
import { EdgeRunner } from "./agent/runner.js";
import { loadEdgeConfigFile, parseEdgeConfig } from "./config/load.js";

const log = pino({ level: process.env.LOG_LEVEL ?? "info", base: { app: "agri-demo" } });
const dataDir = resolve(process.env.AGRI_DATA_DIR ?? ".agri-data");
mkdirSync(dataDir, { recursive: true });

const VILLAGE = "hongmiao";
const TARIFF = "hongmiao-agri-flat";
/** ¥0.5283/kWh in centi-fen per kWh (protocols/units.ts). */
const PRICE_CENTI_FEN_PER_KWH = 5283;
const STARTING_TOP_UP_FEN = 5_000;
/** meterId (the edge's device id) → household. */
const HOUSEHOLDS = [
  { meterId: "pump-chen-grain", householdId: "hh-chen", name: "陈德伯", crop: "rice", areaMilliMu: 12_000 },
  { meterId: "pump-wang-grain", householdId: "hh-wang", name: "王秀英", crop: "wheat", areaMilliMu: 8_000 },
  { meterId: "pump-li-tea", householdId: "hh-li", name: "李建国", crop: "tea", areaMilliMu: 5_000 },
  { meterId: "nursery-zhao", householdId: "hh-zhao", name: "赵小红", crop: "seedlings", areaMilliMu: 2_000 },
  { meterId: "pump-sun-grain", householdId: "hh-sun", name: "孙福", crop: "rice", areaMilliMu: 3_500 },
] as const;
/** Every demo user's password (printed at start; a real village sets its own with `agri-cloud user add`). */
const DEMO_PASSWORD = process.env.AGRI_DEMO_PASSWORD ?? "hongmiao-demo-2026";
const DEMO_USERS: Omit<NewUserInput, "password">[] = [
  { userId: "admin", name: "县平台管理员", roles: ["admin"] },
  { userId: "officer-zhao", name: "赵会计", roles: ["village-officer"], villageIds: [VILLAGE] },
  { userId: "approver-chen", name: "陈书记", roles: ["village-approver"], villageIds: [VILLAGE] },
  { userId: "approver-wu", name: "吴主任", roles: ["village-approver"], villageIds: [VILLAGE] },
  { userId: "farmer-chen", name: "陈德伯", roles: ["farmer"], householdId: "hh-chen" },
  { userId: "police-moganshan", name: "莫干山派出所", roles: ["police-dispatcher"], jurisdictionIds: ["j-moganshan"] },
];

const example = loadEdgeConfigFile(new URL("./examples/village.yaml", import.meta.url).pathname);

/** Registers the village once; a later start finds it there and changes nothing. */
async function provision(cloud: RunningCloud, demoLog: Logger): Promise<void> {
  const { registry, ledger } = cloud;
  const gatewayId = example.gateway.id;
  if (await registry.getMeter(HOUSEHOLDS[0].meterId) !== undefined) return;
  const password = example.gateway.password;
  if (password === undefined) throw new Error("edge/examples/village.yaml: the demo needs gateway.password");
  await registry.addVillage({ villageId: VILLAGE, name: "Hongmiao village" });
  await registry.addGateway({ gatewayId, villageId: VILLAGE, secretHash: await hashSecret(password) });
  await registry.addTariff({ tariffId: TARIFF, version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: PRICE_CENTI_FEN_PER_KWH } });
  for (const h of HOUSEHOLDS) {
    await registry.addHousehold({ householdId: h.householdId, villageId: VILLAGE, name: h.name, overdraftFen: 200 });
    await openHouseholdAccount(ledger, VILLAGE, h.householdId);
    // Where the meter sits on the bus and how its supply is cut, as the simulated village wires it.
    const device = villagePreset().devices.find((d) => d.id === h.meterId);
    const contactor = device?.meter?.contactor;
    await registry.addMeter({
      meterId: h.meterId,
      gatewayId,
      householdId: h.householdId,
      tariffId: TARIFF,
      ...(device === undefined ? {} : { unitId: device.unit, profileId: device.profile }),
      relay: contactor === undefined ? { kind: "meter-relay" } : { kind: "contactor", deviceId: contactor.device, channel: contactor.channel },
    });
    await cloud.prepaid.topUp({ householdId: h.householdId, amountFen: STARTING_TOP_UP_FEN, officerId: "demo", receiptId: "demo-start" });
  }
  for (const h of HOUSEHOLDS) {
    const plotId = `plot-${h.householdId.slice(3)}`;
    await registry.addPlot({ plotId, householdId: h.householdId, name: `${h.name}的地`, areaMilliMu: h.areaMilliMu, crop: h.crop, recordedBy: "demo" });
    await registry.bindMeterToPlot(h.meterId, plotId);
  }
  await cloud.refreshRegistry();
  provisionAlerts(cloud);
  if (cloud.http !== undefined) {
    for (const u of DEMO_USERS) await cloud.http.auth.createUser({ ...u, password: DEMO_PASSWORD }, { actor: "demo", reason: "demo village" });
    await cloud.http.subsidy.addPolicy(
      {
        villageId: VILLAGE,
        programmeId: "grain-2026",
        version: 1,
        policy: {
          name: "2026年粮食作物灌溉电费补贴",
          grainCrops: ["rice", "wheat", "maize"],
          refund: { kind: "share", shareBp: 5_000 },
          seasons: [{ seasonId: "summer-2026", name: "2026夏季", fromDay: "2026-05-01", toDay: "2026-10-31" }],
          capWhPerMu: 150_000,
          noticeDays: 7,
        },
      },
      "demo",
    );
  }
  demoLog.info({ gatewayId, households: HOUSEHOLDS.length, topUpYuan: STARTING_TOP_UP_FEN / 100 }, "demo: village registered in the cloud");
}

/** The forest sensors of the preset on the command room's map, in a village → township → county chain. */
function provisionAlerts(cloud: RunningCloud): void {
  const minutes = (n: number): number => n * 60_000;
  cloud.alerts.upsertJurisdiction({ jurisdictionId: "j-deqing", parentId: null, tier: "county", name: "德清县公安局指挥中心", ackTimeoutMs: minutes(10), onSceneTimeoutMs: minutes(60) });
  cloud.alerts.upsertJurisdiction({ jurisdictionId: "j-moganshan", parentId: "j-deqing", tier: "township", name: "莫干山镇", ackTimeoutMs: minutes(5), onSceneTimeoutMs: minutes(30) });
  cloud.alerts.upsertJurisdiction({ jurisdictionId: "j-hongmiao", parentId: "j-moganshan", tier: "village", name: "红庙村护林员", ackTimeoutMs: minutes(2), onSceneTimeoutMs: minutes(15) });
  for (const device of villagePreset().devices) {
    if (device.profile !== "agri-fire-node" && device.profile !== "calectro-ug-3-o-mb-r") continue;
    const location = "location" in device && device.location !== undefined ? device.location : { lat: 30.5489, lon: 119.8702 };
    cloud.alerts.upsertSensor({ sensorId: device.id, gatewayId: example.gateway.id, jurisdictionId: "j-hongmiao", lat: location.lat, lon: location.lon, name: device.description ?? device.id, mode: "normal" });
  }
}

const field = new Field(parseScenario(villagePreset()));
await field.start();
const control = await startControlServer(field, "127.0.0.1", 8502);

const cloud = await startCloud({
  dataDir: join(dataDir, "cloud"),
  mqtt: { host: "127.0.0.1", port: 1883 },
  http: { host: "127.0.0.1", port: Number(process.env.AGRI_HTTP_PORT ?? 8080) },
  log: log.child({ component: "agri-cloud" }),
});
await provision(cloud, log);

const config = parseEdgeConfig({
  ...structuredClone(example),
  outbox: { ...example.outbox, path: join(dataDir, "edge-outbox.db") },
  statePath: join(dataDir, "edge-state.db"),
});
const runner = new EdgeRunner(config, { log: log.child({ component: "agri-edge" }), version: "0.1.0" });
await runner.start();

log.info(
  {
    simulator: "modbus tcp 127.0.0.1:15020 (pump houses), 127.0.0.1:15021 (forest ridge)",
    simulatorControl: `http://127.0.0.1:${control.port}/field`,
    broker: `${cloud.mqttUrl} (agri-cloud, authenticated)`,
    console: `${cloud.http?.url ?? ""}/console/  (users: ${DEMO_USERS.map((u) => u.userId).join(", ")}; password ${DEMO_PASSWORD})`,
    api: `${cloud.http?.url ?? ""}/docs`,
    edgeStatus: `http://127.0.0.1:${runner.statusPort ?? 8600}/status`,
    cloudData: join(dataDir, "cloud"),
  },
  `agri village demo running; try: npx tsx cloud/cli.ts balance hh-li --data-dir ${join(dataDir, "cloud")}`,
);

const shutdown = (): void => {
  log.info("stopping");
  Promise.all([runner.stop(), control.close(), field.stop()])
    .then(() => cloud.stop())
    .then(() => process.exit(0))
    .catch(() => process.exit(1));
};
process.once("SIGINT", shutdown);
process.once("SIGTERM", shutdown);
