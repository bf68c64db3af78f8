// agri-cloud's provisioning commands, run as a real process on a real SQLite file: what they print, their exit
// codes (0 ok, 2 bad input), the ledger they leave behind and the audit entry each change writes.

import { execFile } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSqliteAuditLog } from "../../cloud/audit/sqlite-audit-log.js";
import { openSqliteAuthStore } from "../../cloud/auth/sqlite-auth-store.js";

const run = promisify(execFile);
let dir: string;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ["--import", "tsx", "cloud/cli.ts", ...args, "--data-dir", dir], { timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "agri-cloud-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("agri-cloud command line", () => {
  it("provisions a village, household, gateway, tariff and meter, each audited as the CLI's OS user", async () => {
    expect((await cli("migrate")).code).toBe(0);
    expect((await cli("village", "add", "v1", "--name", "Hongmiao")).stdout).toMatch(/village v1 added/);
    expect((await cli("household", "add", "h1", "--village", "v1", "--name", "陈德伯", "--overdraft", "5")).stdout).toMatch(/overdraft ¥5\.00/);
    const gateway = await cli("gateway", "add", "gw-1", "--village", "v1");
    expect(gateway.stdout).toMatch(/broker password \(shown once/);
    expect((await cli("tariff", "add", "flat", "--version", "1", "--price", "0.5283", "--reason", "county price list 2026")).code).toBe(0);
    expect((await cli("meter", "add", "pump-1", "--gateway", "gw-1", "--household", "h1", "--tariff", "flat")).code).toBe(0);

    const audit = openSqliteAuditLog(join(dir, "cloud.db"));
    try {
      const entries = await audit.list({ limit: 100 });
      expect(entries.map((e) => e.action)).toEqual(["village.create", "household.create", "gateway.create", "tariff.publish", "meter.create"]);
      expect(entries.every((e) => e.actor.startsWith("cli"))).toBe(true);
      expect(entries.find((e) => e.action === "tariff.publish")).toMatchObject({ entityId: "flat@v1", reason: "county price list 2026" });
      // The gateway's secret is never in the audit log.
      expect(JSON.stringify(entries)).not.toMatch(/scrypt|secret/i);
    } finally {
      await audit.close();
    }
  });

  it("records a cash top-up once per receipt and shows the balance to the fen", async () => {
    const first = await cli("topup", "h1", "100.50", "--officer", "officer-1", "--receipt", "R-1");
    expect(first.stdout).toMatch(/recorded: ¥100\.50 for h1, receipt R-1; balance ¥100\.50/);
    expect((await cli("topup", "h1", "100.50", "--officer", "officer-1", "--receipt", "R-1")).stdout).toMatch(/already recorded/);
    const conflicting = await cli("topup", "h1", "7", "--officer", "officer-1", "--receipt", "R-1");
    expect(conflicting.code).toBe(2);
    expect(conflicting.stderr).toMatch(/receipt R-1 was already recorded/);
    expect((await cli("balance", "h1")).stdout).toMatch(/h1: ¥100\.50/);
    const audit = openSqliteAuditLog(join(dir, "cloud.db"));
    try {
      expect((await audit.list({ limit: 100 })).filter((e) => e.action === "ledger.top-up")).toHaveLength(1);
    } finally {
      await audit.close();
    }
  });

  it("refuses bad input with exit code 2 and a message naming the problem", async () => {
    const fraction = await cli("topup", "h1", "1.005", "--officer", "o");
    expect(fraction.code).toBe(2);
    expect((await cli("household", "add", "h2", "--village", "nowhere", "--name", "x")).stderr).toMatch(/REGISTRY_UNKNOWN_ENTITY.*village nowhere/);
    expect((await cli("meter", "add", "pump-2", "--gateway", "gw-1", "--household", "h1")).stderr).toMatch(/--tariff is required/);
    expect((await cli("frobnicate")).code).toBe(2);
  });

  it("adds a user from a password file, hashed, and refuses a weak password", async () => {
    const passwordFile = join(dir, "pw");
    writeFileSync(passwordFile, "a long enough passphrase\n");
    chmodSync(passwordFile, 0o600);
    const added = await cli("user", "add", "officer-1", "--name", "王会计", "--role", "village-officer", "--village", "v1", "--password-file", passwordFile);
    expect(added.stdout).toMatch(/user officer-1 added \(village-officer\)/);
    writeFileSync(passwordFile, "short\n");
    const weak = await cli("user", "add", "officer-2", "--name", "x", "--role", "village-officer", "--village", "v1", "--password-file", passwordFile);
    expect(weak.code).toBe(2);
    const auth = openSqliteAuthStore({ path: join(dir, "cloud.db") });
    try {
      expect(await auth.getUser("officer-1")).toMatchObject({ roles: ["village-officer"], villageIds: ["v1"] });
      expect(await auth.getUser("officer-2")).toBeUndefined();
    } finally {
      await auth.close();
    }
  });

  it("publishes a time-of-use tariff in Asia/Shanghai periods, and refuses one that leaves part of the day unpriced", async () => {
    const tou = await cli("tariff", "add", "tou", "--version", "1", "--tou", "valley=22:00-08:00@0.3021,flat=08:00-18:00@0.5283,peak=18:00-22:00@0.8452");
    expect(tou.stdout).toMatch(/tariff tou@v1 added/);
    const gap = await cli("tariff", "add", "tou-gap", "--version", "1", "--tou", "valley=22:00-08:00@0.3021,peak=18:00-22:00@0.8452");
    expect(gap.code).toBe(2);
    expect(gap.stderr).toMatch(/without a price/);
    expect((await cli("tariff", "add", "tou-bad", "--version", "1", "--tou", "night=22:00-08:00@0.3")).stderr).toMatch(/rate "night" is not one of/);
    expect((await cli("tariff", "add", "both", "--version", "1", "--price", "0.5", "--tou", "valley=00:00-12:00@0.3")).code).toBe(2);
  });

  it("records where a meter sits on the bus and how its supply is cut, and refuses a unit outside 1..247", async () => {
    const added = await cli("meter", "add", "pump-2", "--gateway", "gw-1", "--household", "h1", "--tariff", "flat", "--unit", "2", "--profile", "chint-dtsu666", "--relay", "contactor:relay-board-1:2");
    expect(added.code).toBe(0);
    expect((await cli("meter", "add", "pump-3", "--gateway", "gw-1", "--household", "h1", "--tariff", "flat", "--unit", "248")).code).toBe(2);
    expect((await cli("meter", "add", "pump-3", "--gateway", "gw-1", "--household", "h1", "--tariff", "flat", "--relay", "contactor:board")).stderr).toMatch(/--relay must be/);
    const audit = openSqliteAuditLog(join(dir, "cloud.db"));
    try {
      const entry = (await audit.list({ entityType: "meter", entityId: "pump-2", limit: 5 }))[0];
      expect(entry?.after).toMatchObject({ unitId: 2, profileId: "chint-dtsu666", relay: { kind: "contactor", deviceId: "relay-board-1", channel: 2 } });
    } finally {
      await audit.close();
    }
  });

  it("backs up the database to a new file and refuses to overwrite one", async () => {
    const target = join(dir, "backup", "cloud-copy.db");
    expect((await cli("backup", target)).code).toBe(0);
    expect(existsSync(target)).toBe(true);
    expect((await cli("backup", target)).code).toBe(2);
  });
});
