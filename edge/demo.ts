#!/usr/bin/env node
// What `npm start` runs: the simulated village (firmware-sim preset), the cloud (startCloud: the authenticated broker
// on 127.0.0.1:1883, ingest, ledger, prepaid grants) and the edge agent configured by edge/examples/village.yaml.
// On first start the village is registered in the cloud: gateway hongmiao-gw-1 with the password from village.yaml
// (stored as an scrypt hash), the households and their meters at ¥0.5283/kWh, and a starting cash top-up so the pumps
// run. Everything on loopback; data under ./.agri-data (or AGRI_DATA_DIR): cloud/ and the edge's outbox and state.

import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { pino, type Logger } from "pino";
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
  { meterId: "pump-chen-grain", householdId: "hh-chen", name: "Chen" },
  { meterId: "pump-wang-grain", householdId: "hh-wang", name: "Wang" },
  { meterId: "pump-li-tea", householdId: "hh-li", name: "Li" },
  { meterId: "nursery-zhao", householdId: "hh-zhao", name: "Zhao" },
  { meterId: "pump-sun-grain", householdId: "hh-sun", name: "Sun" },
] as const;

const example = loadEdgeConfigFile(new URL("./examples/village.yaml", import.meta.url).pathname);

/** Registers the village once; a later start finds it there and changes nothing. */
async function provision(cloud: RunningCloud, demoLog: Logger): Promise<void> {
  const { registry, ledger } = cloud;
  const gatewayId = example.gateway.id;
  if (registry.getMeter(HOUSEHOLDS[0].meterId) !== undefined) return;
  const password = example.gateway.password;
  if (password === undefined) throw new Error("edge/examples/village.yaml: the demo needs gateway.password");
  registry.addVillage({ villageId: VILLAGE, name: "Hongmiao village" });
  registry.addGateway({ gatewayId, villageId: VILLAGE, secretHash: await hashSecret(password) });
  registry.addTariff({ tariffId: TARIFF, version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: PRICE_CENTI_FEN_PER_KWH } });
  for (const h of HOUSEHOLDS) {
    registry.addHousehold({ householdId: h.householdId, villageId: VILLAGE, name: h.name, overdraftFen: 200 });
    await openHouseholdAccount(ledger, VILLAGE, h.householdId);
    registry.addMeter({ meterId: h.meterId, gatewayId, householdId: h.householdId, tariffId: TARIFF });
    await cloud.prepaid.topUp({ householdId: h.householdId, amountFen: STARTING_TOP_UP_FEN, officerId: "demo", receiptId: "demo-start" });
  }
  cloud.refreshRegistry();
  demoLog.info({ gatewayId, households: HOUSEHOLDS.length, topUpYuan: STARTING_TOP_UP_FEN / 100 }, "demo: village registered in the cloud");
}

const field = new Field(parseScenario(villagePreset()));
await field.start();
const control = await startControlServer(field, "127.0.0.1", 8502);

const cloud = await startCloud({ dataDir: join(dataDir, "cloud"), mqtt: { host: "127.0.0.1", port: 1883 }, log: log.child({ component: "agri-cloud" }) });
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
