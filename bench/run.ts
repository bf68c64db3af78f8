// npm run bench [-- NAME ...]: run every benchmark (or the named ones), print one JSON line per figure and write
// bench/results/latest.json.

import { alarmLatency } from "./alarm-latency.js";
import { alertsBench } from "./alerts.js";
import { cloudIngest } from "./cloud-ingest.js";
import { codecDecode } from "./codec-decode.js";
import { edgeLoad } from "./edge-load.js";
import { ledgerPostingsBench } from "./ledger-postings.js";
import { nodeRedBench } from "./node-red.js";
import { outboxBench } from "./outbox.js";
import { writeResults } from "./report.js";
import { plannerBench } from "./planner.js";
import { rtuBus } from "./rtu-bus.js";
import { simTcp } from "./sim-tcp.js";
import { subsidyBench } from "./subsidy.js";

const BENCHES: Record<string, () => void | Promise<void>> = {
  "codec-decode": codecDecode,
  "sim-tcp": simTcp,
  outbox: outboxBench,
  "rtu-bus": rtuBus,
  planner: plannerBench,
  "edge-load": edgeLoad,
  "alarm-latency": alarmLatency,
  "node-red": nodeRedBench,
  alerts: alertsBench,
  "cloud-ingest": cloudIngest,
  "ledger-postings": ledgerPostingsBench,
  subsidy: subsidyBench,
};

const wanted = process.argv.slice(2).filter((a) => a !== "--");
const unknown = wanted.filter((w) => !(w in BENCHES));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(", ")}; known: ${Object.keys(BENCHES).join(", ")}\n`);
  process.exit(2);
}
for (const name of wanted.length ? wanted : Object.keys(BENCHES)) await BENCHES[name]?.();
process.stderr.write(`results written to ${writeResults()}\n`);
