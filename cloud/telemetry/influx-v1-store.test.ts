// The InfluxDB 1.x TelemetryStore against a real influxd (Debian `influxdb`) started on a free port in a temporary
// directory: the shared contract, including the outage cases (the influxd process stopped and started again).

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll } from "vitest";
import { startInfluxd, type RunningServer } from "../../test/harness/servers.js";
import { openInfluxV1TelemetryStore } from "./influx-v1-store.js";
import { runTelemetryStoreContract } from "./store.contract.js";

let influxd: RunningServer | undefined;
beforeAll(async () => {
  influxd = await startInfluxd();
});
afterAll(async () => {
  await influxd?.dispose();
});

function server(): RunningServer {
  if (!influxd) throw new Error("influxd did not start");
  return influxd;
}

// One database for the file (created by the first write), so the contract also covers "created if missing".
const database = `agri_${randomUUID().slice(0, 8)}`;

runTelemetryStoreContract("InfluxDB 1.x (influxd)", () => ({
  open: (options) => Promise.resolve(openInfluxV1TelemetryStore({ ...options, url: server().url, database, requestTimeoutMs: 2000 })),
  server: { stop: () => server().stop(), start: () => server().start() },
}));
