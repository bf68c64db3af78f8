#!/usr/bin/env node
// What `npm start` runs until the cloud (issue #4) lands: the simulated village, an embedded MQTT broker standing in
// for agri-cloud's (plain aedes on loopback, TCP_NODELAY, no authentication — the real one authenticates every
// gateway), and an edge agent configured by edge/examples/village.yaml. Everything on loopback, data under
// ./.agri-data (or AGRI_DATA_DIR).

import { mkdirSync } from "node:fs";
import net from "node:net";
import { join, resolve } from "node:path";
import { Aedes } from "aedes";
import { pino } from "pino";
import { startControlServer } from "../firmware-sim/control.js";
import { Field } from "../firmware-sim/field.js";
import { villagePreset } from "../firmware-sim/presets/village.js";
import { parseScenario } from "../firmware-sim/scenario.js";
import { EdgeRunner } from "./agent/runner.js";
import { loadEdgeConfigFile, parseEdgeConfig } from "./config/load.js";

const log = pino({ level: process.env.LOG_LEVEL ?? "info", base: { app: "agri-demo" } });
const dataDir = resolve(process.env.AGRI_DATA_DIR ?? ".agri-data");
mkdirSync(dataDir, { recursive: true });

const field = new Field(parseScenario(villagePreset()));
await field.start();
const control = await startControlServer(field, "127.0.0.1", 8502);

const broker = await Aedes.createBroker();
const mqttServer = net.createServer({ noDelay: true }, broker.handle);
await new Promise<void>((r) => mqttServer.listen(1883, "127.0.0.1", () => r()));

const example = loadEdgeConfigFile(new URL("./examples/village.yaml", import.meta.url).pathname);
const config = parseEdgeConfig({
  ...structuredClone(example),
  outbox: { ...example.outbox, path: join(dataDir, "edge-outbox.db") },
  statePath: join(dataDir, "edge-state.db"),
});
const runner = new EdgeRunner(config, { log, version: "0.1.0" });
await runner.start();

log.info(
  {
    simulator: "modbus tcp 127.0.0.1:15020 (pump houses), 127.0.0.1:15021 (forest ridge)",
    simulatorControl: `http://127.0.0.1:${control.port}/field`,
    broker: "mqtt://127.0.0.1:1883 (embedded stand-in until agri-cloud)",
    edgeStatus: `http://127.0.0.1:${runner.statusPort ?? 8600}/status`,
  },
  "agri-edge village demo running; try: curl -XPOST localhost:8502/devices/fire-ridge-2/actions -d '{\"action\":\"start-fire\"}'",
);

const shutdown = (): void => {
  log.info("stopping");
  Promise.all([runner.stop(), control.close(), field.stop()])
    .then(() => new Promise<void>((r) => mqttServer.close(() => broker.close(() => r()))))
    .then(() => process.exit(0))
    .catch(() => process.exit(1));
};
process.once("SIGINT", shutdown);
process.once("SIGTERM", shutdown);
