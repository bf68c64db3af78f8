// The InfluxDB 2.x-API TelemetryStore against a real VictoriaMetrics (Debian `victoria-metrics`, which accepts
// /api/v2/write; Debian's influxd 1.6.7 does not) started on a free port in a temporary directory: the shared
// contract, including the outage cases (the victoria-metrics process stopped and started again).

import { afterAll, beforeAll } from "vitest";
import { startVictoriaMetrics, type RunningServer } from "../../test/harness/servers.js";
import { openInfluxV2TelemetryStore } from "./influx-v2-store.js";
import { runTelemetryStoreContract } from "./store.contract.js";

let vm: RunningServer | undefined;
beforeAll(async () => {
  vm = await startVictoriaMetrics();
});
afterAll(async () => {
  await vm?.dispose();
});

function server(): RunningServer {
  if (!vm) throw new Error("victoria-metrics did not start");
  return vm;
}

runTelemetryStoreContract("InfluxDB 2.x API (VictoriaMetrics)", () => ({
  open: (options) => Promise.resolve(openInfluxV2TelemetryStore({ ...options, url: server().url, requestTimeoutMs: 2000 })),
  // VictoriaMetrics makes rows searchable after an in-memory buffer flush (about a second); force it for the test.
  settle: async () => {
    const res = await fetch(`${server().url}/internal/force_flush`);
    await res.arrayBuffer();
  },
  server: { stop: () => server().stop(), start: () => server().start() },
}));
