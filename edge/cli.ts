#!/usr/bin/env node
// agri-edge: the gateway agent. `run` polls the buses, guards credit and fire, and drains the outbox to the broker;
// `check` validates a configuration and the bus budget; `status` prints the local status page of a running agent.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { loadEdgeConfigFile, ConfigError, defaultProfiles } from "./config/load.js";
import { EdgeRunner } from "./agent/runner.js";
import { busBudget } from "./modbus/bus-budget.js";
import { planReads } from "./modbus/read-planner.js";
import { renderStatus } from "./status/status-server.js";

const HELP = `agri-edge — the gateway agent

Usage:
  agri-edge run --config <edge.yaml>        run the agent (also: agri-edge --config <file>)
  agri-edge check --config <edge.yaml>      validate the configuration and the RS-485 line budget, then exit
  agri-edge status [--url http://127.0.0.1:8600] [--json]
`;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version?: string };
    if (pkg.version) return pkg.version;
  } catch {
    // running from sources: package.json is one level up
  }
  try {
    return (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

function budgetReport(configPath: string): { ok: boolean; lines: string[] } {
  const config = loadEdgeConfigFile(configPath);
  const profiles = defaultProfiles();
  const lines: string[] = [];
  let ok = true;
  for (const bus of config.buses) {
    if (!bus.rtu) continue;
    const devices = config.devices
      .filter((d) => d.bus === bus.id)
      .map((d) => {
        const profile = profiles.get(d.profile);
        if (!profile) throw new Error(`unknown profile ${d.profile}`);
        const points = d.points ? profile.points.filter((p) => d.points?.includes(p.id)) : profile.points.filter((p) => p.poll);
        return { deviceId: d.id, requests: planReads(profile, points, { bridgeGaps: !d.noGapBridging }), pollIntervalMs: d.pollIntervalMs };
      });
    const b = busBudget({ baud: bus.rtu.baud, parity: bus.rtu.parity, stopBits: bus.rtu.stopBits, turnaroundMs: bus.rtu.turnaroundMs }, devices);
    lines.push(`bus ${bus.id}: line ${(b.utilisation * 100).toFixed(1)} % busy`);
    for (const w of b.warnings) lines.push(`  warning: ${w}`);
    if (!b.ok) {
      ok = false;
      lines.push(`  refused: ${b.refusal ?? "over capacity"}`);
    }
  }
  return { ok, lines };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      config: { type: "string", short: "c" },
      url: { type: "string", default: "http://127.0.0.1:8600" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: true,
  });
  const command = positionals[0] ?? (values.config ? "run" : "help");
  if (values.help || command === "help") {
    process.stdout.write(HELP);
    return;
  }
  if (command === "status") {
    const res = await fetch(new URL("/status", values.url));
    const body = (await res.json()) as Record<string, unknown>;
    process.stdout.write(values.json ? `${JSON.stringify(body, null, 2)}\n` : renderStatus(body));
    return;
  }
  if (!values.config) throw new ConfigError("no configuration given:", [{ path: "--config", message: "pass --config <edge.yaml>" }]);
  if (command === "check") {
    const { ok, lines } = budgetReport(values.config);
    process.stdout.write(`${lines.join("\n")}${lines.length ? "\n" : ""}configuration ${values.config} is ${ok ? "valid" : "valid, but the poll plan does not fit the line"}\n`);
    process.exitCode = ok ? 0 : 3;
    return;
  }
  if (command !== "run") throw new ConfigError(`unknown command "${command}":`, [{ path: "command", message: "run, check or status" }]);
  const config = loadEdgeConfigFile(values.config);
  const { ok, lines } = budgetReport(values.config);
  const log = pino({ level: process.env.LOG_LEVEL ?? "info", base: { app: "agri-edge" } });
  for (const l of lines) log[ok ? "info" : "error"](l);
  if (!ok) {
    process.exitCode = 3;
    return;
  }
  const runner = new EdgeRunner(config, { configPath: values.config, log, version: version() });
  await runner.start();
  log.info({ status: `http://${config.status.host}:${runner.statusPort ?? config.status.port}/status` }, "agri-edge running");
  const shutdown = (): void => {
    runner
      .stop()
      .then(() => process.exit(0))
      .catch(() => process.exit(1));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`agri-edge: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
