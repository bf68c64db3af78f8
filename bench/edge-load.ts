// Edge agent footprint on a Raspberry-Pi-class box: 64 devices (meters of every built-in meter profile, forest-fire
// nodes and smoke detectors) on 4 simulated Modbus TCP buses, each polled every second, uplinked to an aedes broker
// on loopback. The agent runs alone in a child process (edge-child.ts, bundled to plain JavaScript as in
// production), so its resident memory and CPU time are its own; the simulator, the broker and a subscriber playing
// the cloud live in this process. CPU is process.cpuUsage() in the child over the measured window (checked against
// /proc/<pid>/stat); memory is its RSS, sampled every second. A bare Node process with an IPC channel is the peer.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Field } from "../firmware-sim/field.js";
import { parseScenario, type ScenarioInput } from "../firmware-sim/scenario.js";
import { startTestBroker } from "../test/harness/broker.js";
import { connectCloud } from "./cloud-subscriber.js";
import { procCpuMs, startEdgeChild } from "./edge-child-process.js";
import type { ChildUsage } from "./edge-child.js";
import { DEVICE_MIX } from "./device-mix.js";
import { report } from "./report.js";

const BUSES = 4;
const POLL_MS = 1000;
const WARMUP_MS = 5000;
const MEASURE_MS = 20_000;
const TELEMETRY_MS = 10_000;
const GW = "gw-load-bench";

/** The shared 16-device mix. */
const MIX = DEVICE_MIX;

interface Placed {
  readonly id: string;
  readonly bus: string;
  readonly unit: number;
  readonly profile: string;
  readonly role: "meter" | "fire-sensor";
}

function placements(): Placed[] {
  const out: Placed[] = [];
  for (let b = 1; b <= BUSES; b++) {
    let unit = 1;
    for (const [profile, count, role] of MIX) {
      for (let i = 0; i < count; i++) out.push({ id: `b${b}-u${unit}-${profile.split("-")[0] ?? "dev"}`, bus: `bus-${b}`, unit: unit++, profile, role });
    }
  }
  return out;
}

const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

/** Anonymous (heaps, stacks) and file-backed (the node binary's and libraries' pages) parts of a process's RSS. */
function rssSplitMb(pid: number): { anon: number; file: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    return { anon: kb("RssAnon") / 1024, file: kb("RssFile") / 1024 };
  } catch {
    return undefined;
  }
}

/** RSS of a bare Node process with an IPC channel: what any Node program costs before it does anything. */
async function bareNode(): Promise<{ rss: number; split: { anon: number; file: number } | undefined }> {
  const child = spawn(process.execPath, ["-e", "process.on('message', () => process.send(process.memoryUsage().rss)); setInterval(() => {}, 1000);"], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const rss = await new Promise<number>((resolve) => {
      child.once("message", (m) => resolve(Number(m)));
      child.send("rss");
    });
    return { rss: rss / 1_048_576, split: child.pid === undefined ? undefined : rssSplitMb(child.pid) };
  } finally {
    child.kill("SIGKILL");
  }
}

export async function edgeLoad(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "agri-edge-load-"));
  const devices = placements();
  const scenario: ScenarioInput = {
    name: "edge-load",
    seed: 7,
    clock: { speed: 1, tickMs: 100 },
    buses: Array.from({ length: BUSES }, (_, i) => ({ id: `bus-${i + 1}`, tcp: { port: 0 } })),
    devices: devices.map((d, i) => ({
      id: d.id,
      bus: d.bus,
      unit: d.unit,
      profile: d.profile,
      ...(d.role === "meter" ? { meter: { loads: [{ kind: "constant" as const, watts: 300 + ((i * 137) % 4000) }], initialImportWh: 100_000 + i * 1000 } } : { fire: {} }),
    })),
  };
  const field = new Field(parseScenario(scenario), undefined, { autoTick: true });
  await field.start();
  const broker = await startTestBroker();
  const cloud = await connectCloud(broker.port, [`agri/v1/gw/${GW}/up/#`]);
  let edge: Awaited<ReturnType<typeof startEdgeChild>> | undefined;
  try {
    const config = {
      gateway: { id: GW, password: "bench" },
      broker: { url: broker.url, reconnectMinMs: 200, reconnectMaxMs: 1000 },
      buses: Array.from({ length: BUSES }, (_, i) => ({ id: `bus-${i + 1}`, tcp: { host: "127.0.0.1", port: field.requireBus(`bus-${i + 1}`).tcp?.port ?? 0 }, timeoutMs: 500 })),
      devices: devices.map((d) => ({
        id: d.id,
        bus: d.bus,
        unit: d.unit,
        profile: d.profile,
        role: d.role,
        pollIntervalMs: POLL_MS,
        // The DDS238 switches its own supply: run its prepaid guard too (closed until the first grant).
        ...(d.profile === "hiking-dds238-2-zn" ? { supply: { cut: { kind: "meter-relay" }, noGrantPolicy: "closed" } } : {}),
      })),
      outbox: { path: join(dir, "outbox.db") },
      statePath: join(dir, "state.db"),
      telemetry: { intervalMs: TELEMETRY_MS, billingIntervalMs: 60_000 },
      status: { port: 0 },
    };
    const bare = await bareNode();
    edge = await startEdgeChild(config, dir);
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    const first = await edge.usage();
    const proc0 = procCpuMs(edge.pid);
    const counters0 = await edge.outbox();
    const messages0 = cloud.received();
    const samples: ChildUsage[] = [first];
    const end = performance.now() + MEASURE_MS;
    while (performance.now() < end) {
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, end - performance.now()))));
      samples.push(await edge.usage());
    }
    const last = samples.at(-1) as ChildUsage;
    const split = rssSplitMb(edge.pid);
    const proc1 = procCpuMs(edge.pid);
    const counters1 = await edge.outbox();
    const messages = cloud.received() - messages0;
    const wallMs = last.atMs - first.atMs;
    const cpuMs = (last.cpuUserUs + last.cpuSystemUs - first.cpuUserUs - first.cpuSystemUs) / 1000;
    const cpuPct = (cpuMs / wallMs) * 100;
    const procPct = proc0 !== undefined && proc1 !== undefined ? ((proc1 - proc0) / wallMs) * 100 : undefined;
    const rssMb = samples.map((s) => s.rssBytes / 1_048_576);
    const rssMean = rssMb.reduce((a, b) => a + b, 0) / rssMb.length;
    const txn = counters1.buses.reduce((s, b) => s + b.transactions, 0) - counters0.buses.reduce((s, b) => s + b.transactions, 0);
    const errors = counters1.buses.reduce((s, b) => s + b.errors, 0) - counters0.buses.reduce((s, b) => s + b.errors, 0);
    const what = `${devices.length} devices on ${BUSES} TCP buses polled every ${POLL_MS} ms (${round((txn / wallMs) * 1000, 0)} Modbus txn/s, ${errors} errors), telemetry every ${TELEMETRY_MS / 1000} s, ${messages} MQTT messages to the cloud in ${round(wallMs / 1000)} s; ${edge.loader === "bundle" ? "bundled JavaScript" : "tsx loader (adds a thread)"}`;
    report({ bench: "edge-load-rss", value: round(last.rssBytes / 1_048_576), unit: "MB", goal: 80, better: "lower", note: `at the end of the window; mean ${round(rssMean)}, max ${round(Math.max(...rssMb))}, heap used ${round(last.heapUsedBytes / 1_048_576)} of ${round(last.heapTotalBytes / 1_048_576)} MB (new space ${round((last.spaces.new_space ?? 0) / 1_048_576)} MB), external ${round(last.externalBytes / 1_048_576)} MB, peak maxRSS ${round(last.maxRssKb / 1024)} MB${split ? `; anonymous ${round(split.anon)} MB, file-backed ${round(split.file)} MB (mostly the node binary's own pages)` : ""}; ${what}` });
    if (split) report({ bench: "edge-load-rss-anonymous", value: round(split.anon), unit: "MB", better: "lower", note: `RssAnon of the agent: heaps and stacks, without the node binary's file pages (${round(split.file)} MB)${bare.split ? `; a bare Node process: ${round(bare.split.anon)} MB anonymous, ${round(bare.split.file)} MB file-backed` : ""}` });
    report({ bench: "edge-load-rss-over-bare-node", value: round(last.rssBytes / 1_048_576 - bare.rss), unit: "MB", better: "lower", note: `peer: a bare Node ${process.version} process with an IPC channel holds ${round(bare.rss)} MB` });
    report({ bench: "edge-load-cpu", value: round(cpuPct, 2), unit: "% of one core", goal: 10, better: "lower", note: `process.cpuUsage over ${round(wallMs / 1000)} s after a ${WARMUP_MS / 1000} s warm-up, event loop ${round((samples.slice(1).reduce((a, x) => a + x.loop.utilisation, 0) / Math.max(1, samples.length - 1)) * 100, 1)} % busy${procPct !== undefined ? `; /proc/${edge.pid}/stat says ${round(procPct, 2)} %` : ""}; ${what}` });
    report({ bench: "edge-load-cpu-per-transaction", value: round((cpuMs * 1000) / Math.max(1, txn), 0), unit: "µs/txn", better: "lower", note: "agent CPU time per Modbus transaction, everything included (decode, guards, outbox, MQTT)" });
  } finally {
    await edge?.stop();
    await cloud.close();
    await broker.close();
    await field.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
