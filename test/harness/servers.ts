// Test harness for the time-series servers the telemetry stores talk to: influxd (Debian `influxdb`, 1.x HTTP API)
// and VictoriaMetrics (Debian `victoria-metrics`, which accepts the InfluxDB 2.x /api/v2/write). Each starts as a
// plain child process on a free loopback port with all its state in a temporary directory, waits for its health
// endpoint, and can be stopped and started again on the same port and data (the outage tests need that). A missing
// program fails the test with the Debian package to install; it never skips (ARCHITECTURE.md §6).

import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireProgram } from "./programs.js";

/** The Debian package that provides each server program, for the failure message and the CI image. */
export const SERVER_PACKAGES = {
  influxd: "influxdb",
  "victoria-metrics": "victoria-metrics",
} as const;

export interface RunningServer {
  readonly name: string;
  /** http://127.0.0.1:<port>, stable across stop()/start(). */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  readonly running: boolean;
  /** Stop the process (SIGTERM, SIGKILL after 5 s), keeping its data directory and port. */
  stop(): Promise<void>;
  /** Start it again on the same port and data; resolves once it answers its health check. */
  start(): Promise<void>;
  /** Stop and remove the temporary directory. */
  dispose(): Promise<void>;
  /** The last few KiB the process wrote, for failure messages. */
  output(): string;
}

/** A port the kernel just handed out on loopback. Another process could take it before the server binds; rare. */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface ServerSpec {
  readonly name: string;
  readonly program: string;
  readonly args: readonly string[];
  readonly port: number;
  readonly dataDir: string;
  /** A GET that answers 2xx once the server can take writes. */
  readonly healthPath: string;
  readonly readyTimeoutMs: number;
}

const OUTPUT_KEEP_CHARS = 8192;

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

function launch(spec: ServerSpec): RunningServer {
  const url = `http://127.0.0.1:${spec.port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-OUTPUT_KEEP_CHARS);
  };

  const start = async (): Promise<void> => {
    if (child) return;
    const proc = spawn(spec.program, [...spec.args], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    let exitNote: string | undefined;
    exited = new Promise<void>((resolve) => {
      proc.once("exit", (code, signal) => {
        exitNote = `exited with ${String(code ?? signal)}`;
        if (child === proc) child = undefined;
        resolve();
      });
      proc.once("error", (err) => {
        exitNote = `could not start: ${err.message}`;
        if (child === proc) child = undefined;
        resolve();
      });
    });
    const deadline = Date.now() + spec.readyTimeoutMs;
    for (;;) {
      if (exitNote !== undefined) throw new Error(`${spec.name} ${exitNote} before it was ready; output:\n${output}`);
      if (await healthy(`${url}${spec.healthPath}`)) return;
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`${spec.name} did not answer ${spec.healthPath} on port ${spec.port} within ${spec.readyTimeoutMs} ms; output:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc) return;
    const done = exited;
    proc.kill("SIGTERM");
    const killTimer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    try {
      await done;
    } finally {
      clearTimeout(killTimer);
    }
  };

  return {
    name: spec.name,
    url,
    port: spec.port,
    dataDir: spec.dataDir,
    get running() {
      return child !== undefined;
    },
    start,
    stop,
    dispose: async () => {
      await stop();
      rmSync(spec.dataDir, { recursive: true, force: true });
    },
    output: () => output,
  };
}

async function startSpec(spec: ServerSpec): Promise<RunningServer> {
  const server = launch(spec);
  try {
    await server.start();
  } catch (err) {
    await server.dispose();
    throw err;
  }
  return server;
}

/**
 * The influxd config for a test: state under `dir`, HTTP and the RPC (backup) service on free loopback ports,
 * usage reporting, the _internal monitor database and the request logs off. Sections it does not name keep
 * influxd's defaults, in which graphite, collectd, opentsdb and udp are all disabled (`influxd config` shows them).
 */
export function influxdConfig(dir: string, httpPort: number, rpcPort: number): string {
  return [
    "reporting-enabled = false",
    `bind-address = "127.0.0.1:${rpcPort}"`,
    "[meta]",
    `  dir = "${join(dir, "meta")}"`,
    "  logging-enabled = false",
    "[data]",
    `  dir = "${join(dir, "data")}"`,
    `  wal-dir = "${join(dir, "wal")}"`,
    "  query-log-enabled = false",
    "[monitor]",
    "  store-enabled = false",
    "[http]",
    "  enabled = true",
    `  bind-address = "127.0.0.1:${httpPort}"`,
    "  log-enabled = false",
    "  unix-socket-enabled = false",
    "  pprof-enabled = false",
    "[continuous_queries]",
    "  log-enabled = false",
    "[logging]",
    '  level = "warn"',
    "  suppress-logo = true",
    "",
  ].join("\n");
}

/** influxd 1.x (Debian `influxdb`) on a free port, all state in a temporary directory. */
export async function startInfluxd(opts: { readonly readyTimeoutMs?: number } = {}): Promise<RunningServer> {
  const program = requireProgram("influxd", ["version"], SERVER_PACKAGES.influxd);
  const dataDir = mkdtempSync(join(tmpdir(), "agri-influxd-"));
  const [port, rpcPort] = [await freePort(), await freePort()];
  const configPath = join(dataDir, "influxdb.conf");
  writeFileSync(configPath, influxdConfig(dataDir, port, rpcPort));
  return startSpec({ name: "influxd", program, args: ["run", "-config", configPath], port, dataDir, healthPath: "/ping", readyTimeoutMs: opts.readyTimeoutMs ?? 20_000 });
}

/**
 * VictoriaMetrics (Debian `victoria-metrics`) on a free port. `-dedup.minScrapeInterval=1ms` keeps one sample per
 * series and millisecond, which is what makes a replayed batch overwrite instead of adding a duplicate (InfluxDB does
 * that by itself); `-search.latencyOffset=0s` makes fresh samples visible to queries at once.
 */
export async function startVictoriaMetrics(opts: { readonly readyTimeoutMs?: number } = {}): Promise<RunningServer> {
  const program = requireProgram("victoria-metrics", ["-version"], SERVER_PACKAGES["victoria-metrics"]);
  const dataDir = mkdtempSync(join(tmpdir(), "agri-vm-"));
  const storage = join(dataDir, "storage");
  mkdirSync(storage);
  const port = await freePort();
  const args = [
    `-storageDataPath=${storage}`,
    `-httpListenAddr=127.0.0.1:${port}`,
    "-dedup.minScrapeInterval=1ms",
    "-search.latencyOffset=0s",
    "-retentionPeriod=100y",
    "-loggerLevel=ERROR",
  ];
  return startSpec({ name: "victoria-metrics", program, args, port, dataDir, healthPath: "/health", readyTimeoutMs: opts.readyTimeoutMs ?? 20_000 });
}
