import { execFile, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { RawModbusTcpClient } from "../harness/modbus-tcp-client.js";

const run = promisify(execFile);
const CLI = ["--import", "tsx", "firmware-sim/cli.ts"];

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [...CLI, ...args], { timeout: 20_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("agri-sim command line", () => {
  it("lists the built-in profiles", async () => {
    const r = await cli(["--list-profiles"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/eastron-sdm630-v2\s+meter/);
    expect(r.stdout).toMatch(/agri-fire-node\s+fire-sensor/);
  });

  it("refuses a bad scenario file with every error and its path, exit code 2", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agri-cli-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(file, ["name: bad", "buses:", "  - id: a", "    tcp: { port: 99999 }", "devices:", "  - { id: m, bus: b, unit: 0, profile: nope }", ""].join("\n"));
    const r = await cli(["--check", "--scenario", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/buses\[0\]\.tcp\.port/);
    expect(r.stderr).toMatch(/devices\[0\]\.unit/);
  });

  it("validates the village preset printed as YAML", async () => {
    const printed = await cli(["--print-preset", "village"]);
    expect(printed.code).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), "agri-cli-"));
    const file = join(dir, "village.yaml");
    writeFileSync(file, printed.stdout);
    const r = await cli(["--check", "--scenario", file]);
    expect(r.stdout).toMatch(/is valid: 2 buses, 11 devices/);
  });

  it("refuses an unknown profile and a control address off loopback", async () => {
    expect((await cli(["--device", "nope", "--tcp", "127.0.0.1:0"])).stderr).toMatch(/unknown profile "nope"/);
    const r = await cli(["--device", "eastron-sdm120", "--tcp", "127.0.0.1:0", "--control", "0.0.0.0:0"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/loopback only/);
  });

  it("serves one device over TCP and stops cleanly on SIGTERM", async () => {
    const child = spawn(process.execPath, [...CLI, "--device", "eastron-sdm120", "--unit", "7", "--tcp", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("\n")) resolve(out);
      });
      child.once("exit", (code) => reject(new Error(`exited ${String(code)}`)));
    });
    const summary = JSON.parse(line) as { buses: string[] };
    const port = Number(/:(\d+)$/.exec(summary.buses[0] ?? "")?.[1]);
    const c = await RawModbusTcpClient.connect(port);
    await expect(c.request(7, { fc: 4, address: 0, quantity: 2 })).resolves.toMatchObject({ fc: 4 });
    c.close();
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
