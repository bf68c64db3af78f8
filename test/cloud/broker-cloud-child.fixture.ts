// A one-box cloud (startCloud: embedded aedes, the embedded ingest, the prepaid service over the SQLite ledger) in
// a child process, so that broker-cloud-crash.test.ts can SIGKILL it. Driven over IPC: "start" (with the gateway,
// household and meter to register on the first start), then "kill-on-next-uplink": the process kills itself with
// SIGKILL as soon as the broker has handed the next gateway uplink to the ingest — after receiving it, before its
// batch can commit (the batch lingers ≥ 8 ms; this check runs on every event-loop turn).

import { pino } from "pino";
import { startCloud, type RunningCloud } from "../../cloud/server.js";

export interface CloudChildStart {
  readonly type: "start";
  readonly dataDir: string;
  readonly port: number;
  /** Registered on the first start only. */
  readonly setup?: { readonly gatewayId: string; readonly secretHash: string; readonly meterId: string; readonly initialWh: number; readonly priceCentiFenPerKwh: number; readonly topUpFen: number };
}
export type ToCloudChild = CloudChildStart | { readonly type: "kill-on-next-uplink" };
export type FromCloudChild = { readonly type: "ready" } | { readonly type: "armed" } | { readonly type: "error"; readonly message: string };

const send = (m: FromCloudChild): void => void process.send?.(m);
let cloud: RunningCloud | undefined;

async function start(m: CloudChildStart): Promise<void> {
  cloud = await startCloud({ dataDir: m.dataDir, mqtt: { host: "127.0.0.1", port: m.port }, log: pino({ level: process.env.CRASH_LOG ?? "silent" }), registryRefreshMs: 100, topUpPollMs: 60_000 });
  const s = m.setup;
  if (s !== undefined) {
    const { registry } = cloud;
    await registry.addVillage({ villageId: "v1", name: "Village 1" });
    await registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: s.priceCentiFenPerKwh } });
    await registry.addHousehold({ householdId: "hh-1", villageId: "v1", name: "Household 1", overdraftFen: 0 });
    await registry.addGateway({ gatewayId: s.gatewayId, villageId: "v1", secretHash: s.secretHash });
    await registry.addMeter({ meterId: s.meterId, gatewayId: s.gatewayId, householdId: "hh-1", tariffId: "flat", initialWh: s.initialWh });
    await cloud.refreshRegistry();
    await cloud.prepaid.topUp({ householdId: "hh-1", amountFen: s.topUpFen, officerId: "officer", receiptId: "r-1" });
  }
  send({ type: "ready" });
}

function killOnNextUplink(): void {
  const broker = cloud?.broker;
  if (broker === undefined) throw new Error("no embedded broker");
  const before = broker.counters.uplinksHandedOff;
  const check = (): void => {
    if (broker.counters.uplinksHandedOff > before) process.kill(process.pid, "SIGKILL");
    else setImmediate(check);
  };
  setImmediate(check);
  send({ type: "armed" });
}

process.on("message", (m: ToCloudChild) => {
  try {
    if (m.type === "start") start(m).catch((error: unknown) => send({ type: "error", message: String(error) }));
    else killOnNextUplink();
  } catch (error) {
    send({ type: "error", message: String(error) });
  }
});
