// Start edge-child.ts as a plain Node process, the way the gateway runs in production (compiled JavaScript, no
// TypeScript loader thread in the process): esbuild bundles it with every package left external into a temporary
// directory that links to the project's node_modules, and the bundle is forked with an IPC channel. Without
// esbuild the child runs through tsx instead, whose loader thread then counts in its memory (said in `loader`).

import { fork, type ChildProcess } from "node:child_process";
import { readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type * as Esbuild from "esbuild";
import type { ChildUsage, FromChild, ToChild } from "./edge-child.js";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH_DIR);

export interface EdgeChild {
  readonly pid: number;
  readonly loader: "bundle" | "tsx";
  usage(): Promise<ChildUsage>;
  outbox(): Promise<Extract<FromChild, { type: "outbox" }>>;
  /** Stop the runner cleanly (kill after 10 s) and wait for the process to exit. */
  stop(): Promise<void>;
}

async function bundle(workDir: string): Promise<string | undefined> {
  let esbuild: typeof Esbuild;
  try {
    esbuild = await import("esbuild");
  } catch {
    return undefined;
  }
  const outfile = join(workDir, "edge-child.mjs");
  await esbuild.build({ entryPoints: [join(BENCH_DIR, "edge-child.ts")], bundle: true, platform: "node", format: "esm", target: "node20", packages: "external", outfile, logLevel: "silent" });
  symlinkSync(join(ROOT, "node_modules"), join(workDir, "node_modules"), "dir");
  return outfile;
}

/** /proc/<pid>/stat utime + stime in milliseconds (clock ticks of 10 ms), as a check on the child's own report. */
export function procCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

export interface EdgeChildOptions {
  /** Sample the child's event-loop delay (a 5 ms timer in the child: leave off when measuring its footprint). */
  readonly loopDelay?: boolean;
}

export async function startEdgeChild(configInput: unknown, workDir: string, opts: EdgeChildOptions = {}): Promise<EdgeChild> {
  const configPath = join(workDir, "edge-config.json");
  writeFileSync(configPath, JSON.stringify(configInput));
  const bundled = await bundle(workDir);
  const args = [configPath, ...(opts.loopDelay ? ["--loop-delay"] : [])];
  const child: ChildProcess = bundled
    ? fork(bundled, args, { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"] })
    : fork(join(BENCH_DIR, "edge-child.ts"), args, { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiters: { type: FromChild["type"]; resolve: (m: FromChild) => void; reject: (e: Error) => void }[] = [];
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once("exit", () => {
    exited = true;
    for (const w of waiters.splice(0)) w.reject(new Error("edge child exited"));
    resolve();
  }));
  child.on("message", (raw) => {
    const msg = raw as FromChild;
    if (msg.type === "error") {
      for (const w of waiters.splice(0)) w.reject(new Error(`edge child: ${msg.message}`));
      return;
    }
    const i = waiters.findIndex((w) => w.type === msg.type);
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(msg);
  });
  const next = <T extends FromChild["type"]>(type: T, request?: ToChild, timeoutMs = 30_000): Promise<Extract<FromChild, { type: T }>> =>
    new Promise((resolve, reject) => {
      if (exited) {
        reject(new Error("edge child exited"));
        return;
      }
      const timer = setTimeout(() => reject(new Error(`edge child did not answer ${type} within ${timeoutMs} ms`)), timeoutMs);
      waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as Extract<FromChild, { type: T }>);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      if (request) child.send(request);
    });
  try {
    await next("ready", undefined, 60_000);
  } catch (err) {
    child.kill("SIGKILL");
    await exit;
    throw err;
  }
  return {
    pid: child.pid ?? -1,
    loader: bundled ? "bundle" : "tsx",
    usage: () => next("usage", { type: "usage" }),
    outbox: () => next("outbox", { type: "outbox" }),
    stop: async () => {
      if (exited) return;
      const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await next("stopped", { type: "stop" }, 15_000).catch(() => undefined);
      await exit;
      clearTimeout(kill);
    },
  };
}
