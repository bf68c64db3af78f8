#!/usr/bin/env node
// agri-sim: serve one simulated Modbus device, a scenario file or the village preset, with an optional HTTP
// control surface on loopback. A thin shell over Field; every option is validated before anything listens.

import { parseArgs } from "node:util";
import { stringify as toYaml } from "yaml";
import { BUILT_IN_PROFILES } from "../protocols/profiles/index.js";
import { startControlServer } from "./control.js";
import { Field } from "./field.js";
import { villagePreset } from "./presets/village.js";
import { builtInProfileMap, loadProfileFile, parseScenario, readStructuredFile, ScenarioError } from "./scenario.js";

const HELP = `agri-sim — a simulated field that speaks real Modbus

Usage:
  agri-sim --device <profile-id> --unit <id> --tcp <host:port> [--speed N]
  agri-sim --device <profile-id> --unit <id> --rtu <pty-path> [--baud 9600] [--parity none|even|odd] [--stop-bits 1|2] [--line-timing]
  agri-sim --scenario <file.yaml|json> [--profile-file <file>]...
  agri-sim --preset village [--port-base 15020] [--rtu <pty-path>]
  agri-sim --list-profiles | --print-preset village | --check --scenario <file>

Options:
  --control <host:port>   serve the HTTP control surface (loopback only; see README "Simulator control")
  --speed <N>             simulated seconds per real second (default 1; 86400 = a day per second)
  --profile-file <file>   add a device profile from a YAML/JSON file (repeatable)
  --check                 validate the scenario and exit
`;

function fail(message: string): never {
  process.stderr.write(`agri-sim: ${message}\n`);
  process.exit(2);
}

function hostPort(text: string, what: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) fail(`${what} must be host:port, got "${text}"`);
  return { host: m[1] as string, port };
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      device: { type: "string" },
      unit: { type: "string", default: "1" },
      tcp: { type: "string" },
      rtu: { type: "string" },
      baud: { type: "string", default: "9600" },
      parity: { type: "string", default: "none" },
      "stop-bits": { type: "string", default: "1" },
      "line-timing": { type: "boolean", default: false },
      scenario: { type: "string" },
      preset: { type: "string" },
      "port-base": { type: "string" },
      "profile-file": { type: "string", multiple: true, default: [] },
      control: { type: "string" },
      speed: { type: "string" },
      "list-profiles": { type: "boolean", default: false },
      "print-preset": { type: "string" },
      check: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values["list-profiles"]) {
    for (const p of BUILT_IN_PROFILES) process.stdout.write(`${p.id.padEnd(24)} ${p.kind.padEnd(15)} ${p.manufacturer} ${p.model}\n`);
    return;
  }
  const extraProfiles = (values["profile-file"] ?? []).map((f) => loadProfileFile(f));
  const profiles = builtInProfileMap(extraProfiles);
  const speed = values.speed !== undefined ? Number(values.speed) : undefined;
  if (speed !== undefined && !(speed >= 0)) fail(`--speed must be a number ≥ 0, got "${values.speed}"`);

  let input: unknown;
  if (values["print-preset"] !== undefined) {
    if (values["print-preset"] !== "village") fail(`unknown preset "${values["print-preset"]}" (known: village)`);
    process.stdout.write(toYaml(villagePreset()));
    return;
  }
  const modes = [values.device, values.scenario, values.preset].filter((v) => v !== undefined).length;
  if (modes !== 1) fail("give exactly one of --device, --scenario or --preset (see --help)");
  if (values.preset !== undefined) {
    if (values.preset !== "village") fail(`unknown preset "${values.preset}" (known: village)`);
    input = villagePreset({ basePort: values["port-base"] !== undefined ? Number(values["port-base"]) : 15020, rtuPath: values.rtu, ...(speed !== undefined ? { speed } : {}) });
  } else if (values.scenario !== undefined) {
    input = readStructuredFile(values.scenario);
    if (speed !== undefined && typeof input === "object" && input !== null) {
      const s = input as { clock?: Record<string, unknown> };
      s.clock = { ...(s.clock ?? {}), speed };
    }
  } else {
    const profile = profiles.get(values.device as string);
    if (!profile) fail(`unknown profile "${values.device}"; --list-profiles shows the known ones`);
    if ((values.tcp === undefined) === (values.rtu === undefined)) fail("--device needs exactly one of --tcp host:port or --rtu <pty-path>");
    const bus = values.tcp !== undefined
      ? { id: "bus", tcp: hostPort(values.tcp, "--tcp") }
      : { id: "bus", rtu: { path: values.rtu as string, baud: Number(values.baud), parity: values.parity, stopBits: Number(values["stop-bits"]), lineTiming: values["line-timing"] } };
    const kindSection =
      profile.kind === "meter" ? { meter: { loads: [{ kind: "constant", watts: 1000 }] } } : profile.kind === "relay-module" ? { relayModule: {} } : { fire: {} };
    input = {
      name: `single ${profile.id}`,
      clock: { speed: speed ?? 1 },
      buses: [bus],
      devices: [{ id: "device", bus: "bus", unit: Number(values.unit), profile: profile.id, ...kindSection }],
    };
  }
  const scenario = parseScenario(input, profiles);
  if (values.check) {
    process.stdout.write(`scenario "${scenario.name}" is valid: ${scenario.buses.length} buses, ${scenario.devices.length} devices\n`);
    return;
  }
  const field = new Field(scenario, profiles);
  await field.start();
  let control: Awaited<ReturnType<typeof startControlServer>> | undefined;
  if (values.control !== undefined) {
    const { host, port } = hostPort(values.control, "--control");
    if (!isLoopback(host)) fail("--control listens on loopback only (it can start fires and cut power)");
    control = await startControlServer(field, host, port);
  }
  const summary = {
    msg: "agri-sim running",
    scenario: scenario.name,
    buses: [...field.buses.values()].map((r) => (r.tcp ? `${r.spec.id} tcp ${r.tcp.host}:${r.tcp.port}` : `${r.spec.id} rtu ${r.spec.rtu?.path ?? ""}`)),
    devices: scenario.devices.length,
    ...(control ? { control: `http://${control.host}:${control.port}` } : {}),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  const shutdown = (): void => {
    Promise.all([field.stop(), control?.close()])
      .then(() => process.exit(0))
      .catch(() => process.exit(1));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

// `agri-sim --list-profiles | head` closes our stdout early; that is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

main().catch((err: unknown) => {
  if (err instanceof ScenarioError) {
    process.stderr.write(`agri-sim: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`agri-sim: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
