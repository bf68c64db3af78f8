import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";

const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ["--import", "tsx", "edge/cli.ts", ...args], { timeout: 20_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function writeConfig(config: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), "edge-cli-")), "edge.yaml");
  writeFileSync(file, stringify(config));
  return file;
}

const base = {
  gateway: { id: "gw-cli", password: "x" },
  broker: { url: "mqtt://127.0.0.1:1883" },
  outbox: { path: "/tmp/o.db" },
  statePath: "/tmp/s.db",
};

describe("agri-edge command line", () => {
  it("validates the example village configuration", async () => {
    const r = await cli(["check", "--config", "edge/examples/village.yaml"]);
    expect(r.stdout).toMatch(/is valid/);
    expect(r.code).toBe(0);
  });

  it("refuses a bad configuration with every error and its path, exit code 2", async () => {
    const file = writeConfig({ ...base, gateway: { id: "GW!" }, buses: [], devices: [{ id: "x", bus: "b", unit: 0, profile: "p", role: "meter" }] });
    const r = await cli(["check", "--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/gateway\.id/);
    expect(r.stderr).toMatch(/buses/);
    expect(r.stderr).toMatch(/devices\[0\]\.unit/);
  });

  it("refuses a poll plan the RS-485 line cannot carry, exit code 3", async () => {
    const devices = Array.from({ length: 12 }, (_, i) => ({ id: `m${i}`, bus: "slow", unit: i + 1, profile: "eastron-sdm630-v2", role: "meter", pollIntervalMs: 1000 }));
    const file = writeConfig({ ...base, buses: [{ id: "slow", rtu: { path: "/dev/ttyUSB0", baud: 2400 } }], devices });
    const r = await cli(["check", "--config", file]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/bus slow: line \d+(\.\d)? % busy/);
    expect(r.stdout).toMatch(/refused/);
  });

  it("prints its usage", async () => {
    const r = await cli(["--help"]);
    expect(r.stdout).toMatch(/agri-edge run --config/);
  });
});
