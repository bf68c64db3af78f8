// Node-RED and node-red-contrib-modbus for the node-red benchmark, installed on demand into a cache directory
// outside the repository (the project does not depend on them): <tmpdir>/agri-bench-node-red. Versions are pinned
// so every run compares against the same code.
//
// node-red-contrib-modbus 5.4x depends on "@openp4nr/modbus-serial", a fork of modbus-serial published only as a
// tarball on dl.cloudsmith.io, not on the npm registry. An npm override swaps in upstream modbus-serial (the
// library the fork tracks, and the one this project uses), so the install needs nothing but the npm registry. The
// fork's additions (the "deformed message" reads, UDP) are off in the benchmark's flow.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** node-red 5 and node-red-contrib-modbus 5.5x need Node ≥ 22; these run on the project's Node ≥ 20.19. */
export const NODE_RED_VERSION = "4.1.15";
export const CONTRIB_MODBUS_VERSION = "5.45.2";
const MODBUS_SERIAL_OVERRIDE = "npm:modbus-serial@8.0.25";
const INSTALL_TIMEOUT_MS = 300_000;

export const NODE_RED_CACHE = join(tmpdir(), "agri-bench-node-red");

const MANIFEST = {
  name: "agri-bench-node-red",
  private: true,
  description: "Node-RED for agri-edge's bench/node-red.ts; safe to delete.",
  dependencies: { "node-red": NODE_RED_VERSION, "node-red-contrib-modbus": CONTRIB_MODBUS_VERSION },
  overrides: { "@openp4nr/modbus-serial": MODBUS_SERIAL_OVERRIDE },
};
/** Written after a successful install: a cache whose marker does not match is installed again. */
const MARKER = ".agri-bench-installed.json";

export interface NodeRedInstall {
  readonly redJs: string;
  readonly nodeRed: string;
  readonly contribModbus: string;
  readonly modbusSerial: string;
  /** True when this run installed it (the first run takes a minute or so). */
  readonly fresh: boolean;
}

function versionOf(dir: string): string {
  try {
    return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version?: string }).version ?? "?";
  } catch {
    return "?";
  }
}

function found(fresh: boolean): NodeRedInstall | undefined {
  const modules = join(NODE_RED_CACHE, "node_modules");
  const redJs = join(modules, "node-red", "red.js");
  const contrib = join(modules, "node-red-contrib-modbus", "modbus", "modbus-read.js");
  if (!existsSync(redJs) || !existsSync(contrib)) return undefined;
  return {
    redJs,
    nodeRed: versionOf(join(modules, "node-red")),
    contribModbus: versionOf(join(modules, "node-red-contrib-modbus")),
    modbusSerial: versionOf(join(modules, "@openp4nr", "modbus-serial")),
    fresh,
  };
}

function cached(): NodeRedInstall | undefined {
  try {
    if (readFileSync(join(NODE_RED_CACHE, MARKER), "utf8") !== JSON.stringify(MANIFEST)) return undefined;
  } catch {
    return undefined;
  }
  return found(false);
}

/** The most telling line of npm's stderr (its first error that is not the pointer to the debug log). */
function npmReason(stderr: string, fallback: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
  const errors = lines
    .filter((l) => /^npm (error|ERR!)/.test(l) && !/complete log of this run|^npm (error|ERR!)\s+at |^npm (error|ERR!)\s*$/.test(l))
    .map((l) => l.replace(/^npm (error|ERR!)\s*/, ""));
  const code = errors.find((l) => l.startsWith("code "))?.slice(5);
  const why = errors.find((l) => /reason:|failed|not found|notarget|ERESOLVE|no space|permission denied|took longer/i.test(l)) ?? errors.find((l) => !/^(code|syscall|errno) /.test(l));
  const text = [code, why].filter((x) => x !== undefined).join(": ") || (lines.at(-1) ?? fallback);
  return text.replace(/\s+/g, " ").slice(0, 300);
}

/**
 * Node-RED from the cache, installing it first when missing (`npm install --prefix <cache>` with the pinned
 * manifest). Resolves with the reason instead when it cannot be had.
 */
export async function ensureNodeRed(): Promise<{ ok: NodeRedInstall } | { reason: string }> {
  const hit = cached();
  if (hit) return { ok: hit };
  mkdirSync(NODE_RED_CACHE, { recursive: true });
  writeFileSync(join(NODE_RED_CACHE, "package.json"), `${JSON.stringify(MANIFEST, null, 2)}\n`);
  process.stderr.write(`node-red: installing node-red@${NODE_RED_VERSION} and node-red-contrib-modbus@${CONTRIB_MODBUS_VERSION} into ${NODE_RED_CACHE} (once; cached after)\n`);
  const args = ["install", "--prefix", NODE_RED_CACHE, "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"];
  const result = await new Promise<{ code: number | null; stderr: string; error?: Error }>((resolve) => {
    let stderr = "";
    let settled = false;
    const child = spawn("npm", args, { cwd: NODE_RED_CACHE, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, npm_config_update_notifier: "false" } });
    const timer = setTimeout(() => {
      stderr += `\nnpm error install took longer than ${INSTALL_TIMEOUT_MS / 1000} s`;
      child.kill("SIGKILL");
    }, INSTALL_TIMEOUT_MS);
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-20_000);
    });
    const done = (r: { code: number | null; stderr: string; error?: Error }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    child.once("error", (error) => done({ code: null, stderr, error }));
    child.once("close", (code) => done({ code, stderr }));
  });
  if (result.error) return { reason: `cannot run npm (${result.error.message})` };
  if (result.code !== 0) return { reason: `npm install failed: ${npmReason(result.stderr, `exit code ${result.code}`)}` };
  const ok = found(true);
  if (!ok) return { reason: `npm install finished but ${NODE_RED_CACHE}/node_modules lacks node-red/red.js or node-red-contrib-modbus` };
  writeFileSync(join(NODE_RED_CACHE, MARKER), JSON.stringify(MANIFEST));
  return { ok };
}
