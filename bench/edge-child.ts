// Benchmark child: one edge gateway (EdgeRunner) alone in its process, so its resident memory and CPU time are the
// agent's own. Started by edge-child-process.ts with the configuration file as its argument; answers "usage" and
// "outbox" requests over the IPC channel and stops cleanly on "stop".

import { readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { getHeapSpaceStatistics } from "node:v8";
import { pino } from "pino";
import { EdgeRunner } from "../edge/agent/runner.js";
import { parseEdgeConfig } from "../edge/config/load.js";

export type ToChild = { readonly type: "usage" } | { readonly type: "outbox" } | { readonly type: "stop" };

export interface ChildUsage {
  readonly type: "usage";
  readonly cpuUserUs: number;
  readonly cpuSystemUs: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  /** V8 heap spaces by name: committed (physical) bytes. */
  readonly spaces: Record<string, number>;
  readonly maxRssKb: number;
  /** performance.timeOrigin + performance.now() in the child, for CPU per wall time. */
  readonly atMs: number;
  /** Event loop since the previous usage request: utilisation (0..1) and, with --loop-delay, delay percentiles (ms). */
  readonly loop: { readonly utilisation: number; readonly delayP50Ms: number; readonly delayP99Ms: number; readonly delayMaxMs: number };
}

export type FromChild =
  | { readonly type: "ready" }
  | ChildUsage
  | { readonly type: "outbox"; readonly count: number; readonly byTelemetry: number; readonly buses: readonly { id: string; transactions: number; errors: number }[] }
  | { readonly type: "stopped" }
  | { readonly type: "error"; readonly message: string };

function send(message: FromChild): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const configPath = process.argv[2];
  if (!configPath) throw new Error("usage: edge-child CONFIG.json [--loop-delay]");
  const config = parseEdgeConfig(JSON.parse(readFileSync(configPath, "utf8")) as unknown);
  const runner = new EdgeRunner(config, { log: pino({ level: "silent" }), version: "0.0.0-bench" });
  await runner.start();
  // The delay histogram samples on a 5 ms timer of its own: only when asked, so the footprint figures stay clean.
  const delay = process.argv.includes("--loop-delay") ? monitorEventLoopDelay({ resolution: 5 }) : undefined;
  delay?.enable();
  // The histogram records the time between its timer's callbacks, the 5 ms interval included: keep the lateness.
  const lateMs = (ns: number | undefined): number => (ns === undefined ? NaN : Math.max(0, ns / 1e6 - 5));
  let elu = performance.eventLoopUtilization();
  process.on("message", (raw: unknown) => {
    const msg = raw as ToChild;
    if (msg.type === "usage") {
      const cpu = process.cpuUsage();
      const mem = process.memoryUsage();
      const nextElu = performance.eventLoopUtilization();
      const loop = { utilisation: performance.eventLoopUtilization(nextElu, elu).utilization, delayP50Ms: lateMs(delay?.percentile(50)), delayP99Ms: lateMs(delay?.percentile(99)), delayMaxMs: lateMs(delay?.max) };
      elu = nextElu;
      delay?.reset();
      send({ type: "usage", cpuUserUs: cpu.user, cpuSystemUs: cpu.system, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, heapTotalBytes: mem.heapTotal, externalBytes: mem.external, spaces: Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size])), maxRssKb: process.resourceUsage().maxRSS, atMs: performance.timeOrigin + performance.now(), loop });
    } else if (msg.type === "outbox") {
      const status = runner.currentAgent?.status() as { outbox?: { count: number; byClass: { telemetry: { count: number } } }; buses?: { id: string; transactions: number; errors: number }[] } | undefined;
      send({
        type: "outbox",
        count: status?.outbox?.count ?? -1,
        byTelemetry: status?.outbox?.byClass.telemetry.count ?? -1,
        buses: (status?.buses ?? []).map((b) => ({ id: b.id, transactions: b.transactions, errors: b.errors })),
      });
    } else if (msg.type === "stop") {
      runner
        .stop()
        .then(() => {
          // Exit once the reply is out: a handle left open would otherwise keep the process alive.
          process.send?.({ type: "stopped" } satisfies FromChild, () => process.exit(0));
        })
        .catch((err: unknown) => {
          send({ type: "error", message: (err as Error).message });
          process.exit(1);
        });
    }
  });
  // An orphan must not keep polling: the parent gone (crashed, killed) means stop at once.
  process.on("disconnect", () => process.exit(0));
  send({ type: "ready" });
}

main().catch((err: unknown) => {
  send({ type: "error", message: (err as Error).stack ?? String(err) });
  process.exit(1);
});
