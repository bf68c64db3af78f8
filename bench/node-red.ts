// Node-RED with node-red-contrib-modbus, the integration many village electricians already know, against the edge
// agent on the same simulated meters: one Modbus TCP bus with 32 devices (twice edge-load's 16-device mix) polled
// every 100 ms, so the bus is busy (~900 requests/s offered). Node-RED reads exactly the edge's read plan: one
// modbus-read node per planned request (device × register block), same function code, address, quantity and unit
// id, at the same interval. Each contender runs alone in its own process against the simulator in this process,
// one after the other; transactions/s are counted by the simulator's bus, CPU from /proc/<pid>/stat utime+stime
// and RSS from /proc/<pid>/status, the same way for both.
//
// Node-RED is not a dependency of the project: node-red-install.ts installs pinned versions into a cache outside
// the repository on first use (and the benchmark skips, saying why, when that fails).

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { planReads, type ReadRequest } from "../edge/modbus/read-planner.js";
import { Field } from "../firmware-sim/field.js";
import { builtInProfileMap, parseScenario, type ScenarioInput } from "../firmware-sim/scenario.js";
import { startTestBroker } from "../test/harness/broker.js";
import { procCpuMs, startEdgeChild } from "./edge-child-process.js";
import { ensureNodeRed, type NodeRedInstall } from "./node-red-install.js";
import { DEVICE_MIX } from "./device-mix.js";
import { report } from "./report.js";

const DEVICES = 32;
const POLL_MS = 100;
const TIMEOUT_MS = 1000;
const WARMUP_MS = 5000;
const MEASURE_MS = 15_000;
const START_TIMEOUT_MS = 45_000;
const BUS = "bus-1";
const GW = "gw-node-red-bench";

/** The shared 16-device mix (repeated to fill DEVICES unit ids on one bus). */
const MIX = DEVICE_MIX;

interface Placed {
  readonly id: string;
  readonly unit: number;
  readonly profile: string;
  readonly role: "meter" | "fire-sensor";
  /** The edge's read plan for the device: every pollable point, gaps bridged (the agent's default). */
  readonly plan: readonly ReadRequest[];
}

const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

function placements(): Placed[] {
  const profiles = builtInProfileMap();
  const out: Placed[] = [];
  for (let unit = 1; out.length < DEVICES; ) {
    for (const [profileId, count, role] of MIX) {
      for (let i = 0; i < count && out.length < DEVICES; i++) {
        const profile = profiles.get(profileId);
        if (!profile) throw new Error(`no built-in profile ${profileId}`);
        out.push({ id: `u${unit}-${profileId.split("-")[0] ?? "dev"}`, unit: unit++, profile: profileId, role, plan: planReads(profile, profile.points.filter((p) => p.poll)) });
      }
    }
  }
  return out;
}

const DATA_TYPE = { 1: "Coil", 2: "Input", 3: "HoldingRegister", 4: "InputRegister" } as const;

/**
 * The flow: one modbus-client (TCP, the editor's defaults but for logging) and a modbus-read node per planned
 * request, outputs unwired. `parallel` is the client's "parallelUnitIdsAllowed" (default on: one request in
 * flight per unit id; off: one on the whole connection, like the edge's bus loop and any TCP-to-RS-485 gateway).
 */
function flow(devices: readonly Placed[], port: number, parallel: boolean): unknown[] {
  const client = {
    id: "agri0client00001",
    type: "modbus-client",
    name: "agri-sim",
    clienttype: "tcp",
    bufferCommands: true,
    stateLogEnabled: false,
    queueLogEnabled: false,
    failureLogEnabled: false,
    tcpHost: "127.0.0.1",
    tcpPort: String(port),
    tcpType: "DEFAULT",
    serialPort: "/dev/ttyUSB",
    serialType: "RTU-BUFFERD",
    serialBaudrate: "9600",
    serialDatabits: "8",
    serialStopbits: "1",
    serialParity: "none",
    serialConnectionDelay: "100",
    serialAsciiResponseStartDelimiter: "0x3A",
    unit_id: "1",
    commandDelay: "1",
    clientTimeout: String(TIMEOUT_MS),
    reconnectOnTimeout: true,
    reconnectTimeout: "2000",
    parallelUnitIdsAllowed: parallel,
    showErrors: false,
    showWarnings: false,
    showLogs: false,
  };
  let n = 0;
  const reads = devices.flatMap((d) =>
    d.plan.map((req) => {
      n++;
      return {
        id: `agri0read${String(n).padStart(7, "0")}`,
        type: "modbus-read",
        z: "agri0tab00000001",
        name: `${d.id} fc${req.fc}@${req.address}x${req.quantity}`,
        topic: d.id,
        showStatusActivities: false,
        logIOActivities: false,
        showErrors: false,
        showWarnings: false,
        unitid: String(d.unit),
        dataType: DATA_TYPE[req.fc],
        adr: String(req.address),
        quantity: String(req.quantity),
        rate: String(POLL_MS),
        rateUnit: "ms",
        delayOnStart: false,
        enableDeformedMessages: false,
        startDelayTime: "",
        server: client.id,
        useIOFile: false,
        ioFile: "",
        useIOForPayload: false,
        emptyMsgOnFail: false,
        x: 200,
        y: 40 * n,
        wires: [[], []],
      };
    }),
  );
  return [{ id: "agri0tab00000001", type: "tab", label: "agri-edge bench", disabled: false, info: "" }, client, ...reads];
}

function settingsJs(userDir: string, flowFile: string): string {
  const settings = {
    flowFile,
    userDir,
    flowFilePretty: false,
    credentialSecret: false,
    uiHost: "127.0.0.1",
    uiPort: 0,
    // No editor, no admin API, no HTTP nodes: Node-RED then starts no HTTP server at all ("headless").
    httpAdminRoot: false,
    httpNodeRoot: false,
    disableEditor: true,
    verbose: false,
    logging: { console: { level: "warn", metrics: false, audit: false } },
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false }, modules: { allowInstall: false } },
    functionExternalModules: false,
  };
  return `module.exports = ${JSON.stringify(settings, null, 2)};\n`;
}

/** RSS, anonymous and file-backed resident memory of a process, in MB. */
function rssMb(pid: number): { rss: number; anon: number; file: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    return { rss: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024, file: kb("RssFile") / 1024 };
  } catch {
    return undefined;
  }
}

interface Measured {
  readonly txnPerS: number;
  readonly txn: number;
  readonly wallMs: number;
  readonly cpuPct: number;
  readonly usPerTxn: number;
  readonly rssEnd: number;
  readonly rssFirst: number;
  readonly rssMax: number;
  readonly anonEnd: number;
  readonly exceptions: number;
  readonly silent: number;
  /** What `probe` (the contender's own transaction count) moved over the window. */
  readonly probed: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wait for the bus to see traffic, warm up, then count the window's transactions, CPU and memory of `pid`. */
async function measure(field: Field, pid: number, alive: () => boolean, probe: () => Promise<number> = () => Promise.resolve(0)): Promise<Measured> {
  const counters = field.requireBus(BUS).bus.counters;
  const startBy = performance.now() + START_TIMEOUT_MS;
  const before = counters.requests;
  while (counters.requests - before < DEVICES) {
    if (!alive()) throw new Error("exited before polling");
    if (performance.now() > startBy) throw new Error(`no Modbus traffic within ${START_TIMEOUT_MS / 1000} s`);
    await sleep(100);
  }
  await sleep(WARMUP_MS);
  const probe0 = await probe();
  const cpu0 = procCpuMs(pid);
  const t0 = performance.now();
  const req0 = counters.requests;
  const exc0 = counters.exceptions;
  const silent0 = counters.silent;
  const first = rssMb(pid);
  const samples = first ? [first.rss] : [];
  const end = t0 + MEASURE_MS;
  while (performance.now() < end) {
    await sleep(Math.min(1000, Math.max(0, end - performance.now())));
    const s = rssMb(pid);
    if (s) samples.push(s.rss);
  }
  const cpu1 = procCpuMs(pid);
  const wallMs = performance.now() - t0;
  const txn = counters.requests - req0;
  const last = rssMb(pid);
  const probed = (await probe()) - probe0;
  if (!alive() || cpu0 === undefined || cpu1 === undefined || !first || !last) throw new Error("exited during the measurement");
  return {
    txn,
    wallMs,
    txnPerS: (txn / wallMs) * 1000,
    cpuPct: ((cpu1 - cpu0) / wallMs) * 100,
    usPerTxn: ((cpu1 - cpu0) * 1000) / Math.max(1, txn),
    rssEnd: last.rss,
    rssFirst: first.rss,
    rssMax: Math.max(...samples),
    anonEnd: last.anon,
    exceptions: counters.exceptions - exc0,
    silent: counters.silent - silent0,
    probed,
  };
}

/** Children to kill if this process exits with one still running (an exception, process.exit elsewhere). */
const live = new Set<ChildProcess>();
function killLive(): void {
  for (const c of live) c.kill("SIGKILL");
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    return;
  }
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
  live.delete(child);
}

async function runNodeRed(install: NodeRedInstall, field: Field, devices: readonly Placed[], parallel: boolean): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), "agri-node-red-run-"));
  const flowFile = join(dir, "flows.json");
  const settingsFile = join(dir, "settings.js");
  writeFileSync(flowFile, JSON.stringify(flow(devices, field.requireBus(BUS).tcp?.port ?? 0, parallel)));
  writeFileSync(settingsFile, settingsJs(dir, flowFile));
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [install.redJs, "--settings", settingsFile, "--userDir", dir], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let log = "";
  const keep = (d: Buffer): void => {
    log = (log + d.toString("utf8")).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  try {
    if (child.pid === undefined) throw new Error("could not start node");
    return await measure(field, child.pid, () => child.exitCode === null && child.signalCode === null);
  } catch (err) {
    const tail = log.trim().split("\n").slice(-3).join(" | ");
    throw new Error(`Node-RED ${(err as Error).message}${tail ? `; its last output: ${tail}` : ""}`);
  } finally {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runEdge(field: Field, devices: readonly Placed[]): Promise<Measured & { loader: string }> {
  const dir = mkdtempSync(join(tmpdir(), "agri-node-red-edge-"));
  const broker = await startTestBroker();
  let edge: Awaited<ReturnType<typeof startEdgeChild>> | undefined;
  try {
    const config = {
      gateway: { id: GW, password: "bench" },
      broker: { url: broker.url, reconnectMinMs: 200, reconnectMaxMs: 1000 },
      buses: [{ id: BUS, tcp: { host: "127.0.0.1", port: field.requireBus(BUS).tcp?.port ?? 0 }, timeoutMs: TIMEOUT_MS }],
      devices: devices.map((d) => ({ id: d.id, bus: BUS, unit: d.unit, profile: d.profile, role: d.role, pollIntervalMs: POLL_MS })),
      outbox: { path: join(dir, "outbox.db") },
      statePath: join(dir, "state.db"),
      telemetry: { intervalMs: 60_000, billingIntervalMs: 60_000 },
      status: { port: 0 },
    };
    edge = await startEdgeChild(config, dir);
    const started = edge;
    // The agent's own count of its transactions (errors included), as a check on the simulator's.
    const probe = async (): Promise<number> => (await started.outbox()).buses.reduce((s, b) => s + b.transactions, 0);
    const m = await measure(field, started.pid, () => procCpuMs(started.pid) !== undefined, probe);
    return { ...m, loader: started.loader };
  } finally {
    await edge?.stop();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function nodeRedBench(): Promise<void> {
  const got = await ensureNodeRed();
  if ("reason" in got) {
    process.stderr.write(`node-red: skipped, ${got.reason}\n`);
    return;
  }
  const install = got.ok;
  const devices = placements();
  const requestsPerCycle = devices.reduce((s, d) => s + d.plan.length, 0);
  const offered = (requestsPerCycle * 1000) / POLL_MS;
  const scenario: ScenarioInput = {
    name: "node-red-bench",
    seed: 11,
    clock: { speed: 1, tickMs: 100 },
    buses: [{ id: BUS, tcp: { port: 0 } }],
    devices: devices.map((d, i) => ({
      id: d.id,
      bus: BUS,
      unit: d.unit,
      profile: d.profile,
      ...(d.role === "meter" ? { meter: { loads: [{ kind: "constant" as const, watts: 300 + ((i * 137) % 4000) }], initialImportWh: 100_000 + i * 1000 } } : { fire: {} }),
    })),
  };
  const field = new Field(parseScenario(scenario), undefined, { autoTick: true });
  process.once("exit", killLive);
  await field.start();
  try {
    let nodeRed: Measured;
    let sequential: Measured;
    try {
      nodeRed = await runNodeRed(install, field, devices, true);
      sequential = await runNodeRed(install, field, devices, false);
    } catch (err) {
      process.stderr.write(`node-red: skipped, ${(err as Error).message.replace(/\s+/g, " ")}\n`);
      return;
    }
    const edge = await runEdge(field, devices);

    const sizes = [...new Set(devices.flatMap((d) => d.plan.map((r) => r.quantity)))].sort((a, b) => a - b);
    const setup = `${DEVICES} devices (unit ids 1-${DEVICES}: ${MIX.map(([p, c]) => `${c * (DEVICES / 16)}× ${p}`).join(", ")}) on one simulated Modbus TCP bus, each polled every ${POLL_MS} ms by its edge read plan: ${requestsPerCycle} reads per cycle (FC 01-04, ${sizes[0]}-${sizes.at(-1)} registers/bits each), ${round(offered, 0)} requests/s offered; ${round(MEASURE_MS / 1000)} s window after ${WARMUP_MS / 1000} s warm-up`;
    const versions = `node-red ${install.nodeRed}, node-red-contrib-modbus ${install.contribModbus} on modbus-serial ${install.modbusSerial}`;
    const side = (m: Measured): string => `${round(m.txnPerS, 0)} txn/s (${round((m.txnPerS / offered) * 100, 0)} % of offered), CPU ${round(m.cpuPct, 1)} % of one core = ${round(m.usPerTxn, 0)} µs/txn, RSS ${round(m.rssEnd)} MB (${round(m.rssFirst)} at the window's start, max ${round(m.rssMax)}; anonymous ${round(m.anonEnd)}), ${m.exceptions} exceptions, ${m.silent} unanswered`;

    report({ bench: "node-red-transactions", value: round(nodeRed.txnPerS, 0), unit: "txn/s", better: "higher", note: `Node-RED with one modbus-read node per planned read, client defaults (parallelUnitIdsAllowed: one request in flight per unit id, commandDelay 1 ms, timeout ${TIMEOUT_MS} ms): ${side(nodeRed)}; ${versions}; ${setup}` });
    report({ bench: "node-red-sequential-transactions", value: round(sequential.txnPerS, 0), unit: "txn/s", better: "higher", note: `the same flow with parallelUnitIdsAllowed off (one request in flight on the connection, as on a half-duplex bus): ${side(sequential)}` });
    report({ bench: "edge-transactions", value: round(edge.txnPerS, 0), unit: "txn/s", better: "higher", note: `edge agent (EdgeRunner in a child process, ${edge.loader === "bundle" ? "bundled JavaScript" : "tsx loader"}, MQTT uplink to a loopback broker, telemetry every 60 s) on the same devices and interval: ${side(edge)}; ${edge.probed} transactions in the window by its own bus counters, ${edge.txn} by the simulator's` });
    report({ bench: "edge-vs-node-red-transactions", value: round(edge.txnPerS / nodeRed.txnPerS, 2), unit: "ratio", better: "higher", note: `edge txn/s over Node-RED's (default client); over Node-RED sequential: ${round(edge.txnPerS / sequential.txnPerS, 2)}` });
    report({ bench: "node-red-vs-edge-cpu-per-transaction", value: round(nodeRed.usPerTxn / edge.usPerTxn, 2), unit: "ratio", better: "higher", note: `Node-RED ${round(nodeRed.usPerTxn, 0)} µs/txn (sequential ${round(sequential.usPerTxn, 0)}) over the edge's ${round(edge.usPerTxn, 0)} µs/txn, /proc/<pid>/stat utime+stime over the window; the edge decodes every point, runs its guards and keeps an outbox, the flow's outputs go nowhere` });
    report({ bench: "node-red-cpu", value: round(nodeRed.cpuPct, 1), unit: "% of one core", better: "lower", note: `sequential client: ${round(sequential.cpuPct, 1)} %` });
    report({ bench: "edge-cpu", value: round(edge.cpuPct, 1), unit: "% of one core", better: "lower" });
    report({ bench: "node-red-rss", value: round(nodeRed.rssEnd), unit: "MB", better: "lower", note: `VmRSS at the window's end; max ${round(nodeRed.rssMax)}, anonymous ${round(nodeRed.anonEnd)}; sequential client ${round(sequential.rssEnd)} MB (max ${round(sequential.rssMax)})` });
    report({ bench: "edge-rss", value: round(edge.rssEnd), unit: "MB", better: "lower", note: `VmRSS at the window's end; max ${round(edge.rssMax)}, anonymous ${round(edge.anonEnd)}; node-red/edge ${round(nodeRed.rssEnd / edge.rssEnd, 2)}` });
  } finally {
    killLive();
    process.removeListener("exit", killLive);
    await field.stop();
  }
}
