// agri-cloud's commands with DATABASE_URL set, run as real processes against a throwaway PostgreSQL server: every
// command works on the database `serve` would use — migrate brings all four schemas up, provisioning and cash top-ups
// land in PostgreSQL (not in cloud.db, which stays without those tables), a user added there logs in to a cloud
// started on it, and backup refuses to pretend that copying cloud.db saves the money.

import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresAuditLog } from "../../cloud/audit/postgres-audit-log.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { startCloud } from "../../cloud/server.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";

const run = promisify(execFile);
let dir: string;
let server: PostgresServer;
let databaseUrl: string;

async function cli(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ["--import", "tsx", "cloud/cli.ts", ...args, "--data-dir", dir], { timeout: 30_000, env: { ...process.env, ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
const pgCli = (...args: string[]) => cli({ DATABASE_URL: databaseUrl }, ...args);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "agri-cloud-cli-pg-"));
  server = await startPostgres();
  databaseUrl = await server.createDatabase("cli");
}, 60_000);
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("agri-cloud command line on PostgreSQL", () => {
  it("migrates the ledger, registry, users and audit log in PostgreSQL, and says so", async () => {
    const first = await pgCli("migrate");
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/ledger \(postgres\): schema 0 → \d+/);
    expect(first.stdout).toMatch(/registry \(postgres\): schema 0 → \d+/);
    expect(first.stdout).toMatch(/users \(postgres\): schema 0 → \d+; audit log: schema 0 → \d+/);
    // The password never reaches the output.
    expect(first.stdout).not.toContain(new URL(databaseUrl).password || "\u0000");
    const again = await pgCli("migrate");
    expect(again.stdout).toMatch(/registry \(postgres\): schema (\d+) → \1/);
  });

  it("provisions and tops up in PostgreSQL, audited there; cloud.db holds none of it", async () => {
    expect((await pgCli("village", "add", "v1", "--name", "Hongmiao")).code).toBe(0);
    expect((await pgCli("household", "add", "h1", "--village", "v1", "--name", "陈德伯")).code).toBe(0);
    expect((await pgCli("gateway", "add", "gw-1", "--village", "v1")).code).toBe(0);
    expect((await pgCli("tariff", "add", "flat", "--version", "1", "--price", "0.5283", "--reason", "county price list")).code).toBe(0);
    expect((await pgCli("meter", "add", "pump-1", "--gateway", "gw-1", "--household", "h1", "--tariff", "flat")).code).toBe(0);
    expect((await pgCli("topup", "h1", "50", "--officer", "officer-1", "--receipt", "R-1")).stdout).toMatch(/recorded: ¥50\.00 for h1.*balance ¥50\.00/);
    expect((await pgCli("topup", "h1", "50", "--officer", "officer-1", "--receipt", "R-1")).stdout).toMatch(/already recorded/);
    expect((await pgCli("balance", "h1")).stdout).toMatch(/h1: ¥50\.00/);

    // The same commands without DATABASE_URL look in cloud.db, which has none of it.
    const local = await cli({ DATABASE_URL: "" }, "balance", "h1");
    expect(local.code).toBe(2);
    expect(local.stderr).toMatch(/no household h1/);

    const audit = await openPostgresAuditLog({ connectionString: databaseUrl, poolSize: 1 });
    try {
      const actions = (await audit.list({ limit: 100 })).map((e) => `${e.action} ${e.entityId}`);
      expect(actions).toEqual(expect.arrayContaining(["village.create v1", "household.create h1", "meter.create pump-1", "ledger.top-up h1"]));
      expect((await audit.list({ limit: 100 })).every((e) => e.actor.startsWith("cli"))).toBe(true);
    } finally {
      await audit.close();
    }
  });

  it("adds a user a cloud on the same database lets log in, and whose household it finds", async () => {
    const passwordFile = join(dir, "password");
    writeFileSync(passwordFile, "a long enough farmer passphrase\n", { mode: 0o600 });
    const added = await pgCli("user", "add", "farmer-chen", "--name", "陈德伯", "--role", "farmer", "--household", "h1", "--password-file", passwordFile);
    expect(added.stdout).toMatch(/user farmer-chen added \(farmer\)/);
    expect((await pgCli("user", "add", "farmer-x", "--name", "X", "--role", "farmer", "--household", "h-nowhere", "--password-file", passwordFile)).code).toBe(2);

    const cloud = await startCloud({ dataDir: join(dir, "serve"), databaseUrl, mqtt: { host: "127.0.0.1", port: 0 }, http: { host: "127.0.0.1", port: 0 }, log: pino({ level: "silent" }) });
    try {
      const login = await fetch(`${cloud.http?.url ?? ""}/auth/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId: "farmer-chen", password: "a long enough farmer passphrase", mode: "token" }) });
      expect(login.status).toBe(200);
      const { token } = (await login.json()) as { token: string };
      const balance = await fetch(`${cloud.http?.url ?? ""}/households/h1/balance`, { headers: { authorization: `Bearer ${token}` } });
      expect(await balance.json()).toMatchObject({ balanceFen: 5_000 });
      expect(await cloud.ledger.balance(householdAccountId("h1"))).toBe(5_000);
      expect((await cloud.registry.getMeter("pump-1"))?.gatewayId).toBe("gw-1");
    } finally {
      await cloud.stop();
    }
  });

  it("refuses to back up cloud.db as if it held the money, and names pg_dump", async () => {
    const target = join(dir, "backup.db");
    const refused = await pgCli("backup", target);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/pg_dump/);
    expect(existsSync(target)).toBe(false);
  });
});
