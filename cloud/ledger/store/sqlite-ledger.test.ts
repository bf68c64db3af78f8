// The SQLite ledger: the shared Ledger contract on temporary files, plus what only a file shared by processes can
// show — two processes posting to the same account at once get an exact balance and each key once, and a writer
// killed with SIGKILL mid-burst leaves nothing half-written.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { METER_DAYS_SCHEMA_SQL } from "../../subsidy/meter-days.js";
import { chargedFen } from "../charges.js";
import { runLedgerContract } from "./ledger.contract.js";
import type { Account } from "./ledger.js";
import { LATEST_SCHEMA_VERSION, migrate, MIGRATIONS } from "./migrations.js";
import { openSqliteLedger } from "./sqlite-ledger.js";
import { LEDGER_STORE_ERROR_CODES as C } from "./store-errors.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = join(HERE, "..", "..", "..");
const CONCURRENT_POSTER = join(HERE, "concurrent-poster.fixture.ts");
const CRASH_CHARGER = join(HERE, "crash-charger.fixture.ts");

runLedgerContract("SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "agri-ledger-contract-"));
  const path = join(dir, "ledger.db");
  return {
    open: (now) => Promise.resolve(openSqliteLedger({ path, now })),
    rawSql: (sql) =>
      new Promise<void>((resolve) => {
        const raw = new Database(path);
        try {
          raw.exec(sql);
        } finally {
          raw.close();
        }
        resolve();
      }),
    rawRows: (sql) =>
      new Promise<Record<string, unknown>[]>((resolve) => {
        const raw = new Database(path, { readonly: true });
        try {
          resolve(raw.prepare<[], Record<string, unknown>>(sql).all());
        } finally {
          raw.close();
        }
      }),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

const ACCOUNTS: readonly Account[] = [
  { accountId: "hh-1", kind: "household-prepaid", villageId: "v-1", householdId: "h-1" },
  { accountId: "rev", kind: "revenue-electricity", villageId: "v-1" },
  { accountId: "pay", kind: "payment-provider", villageId: "v-1" },
];

interface ChildOutput {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

function runChild(script: string, args: readonly string[], killAfterFirstLineMs?: number): Promise<ChildOutput> {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let timer: NodeJS.Timeout | undefined;
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    if (killAfterFirstLineMs !== undefined && timer === undefined && /^ready\n.+\n/.test(stdout)) {
      timer = setTimeout(() => child.kill("SIGKILL"), killAfterFirstLineMs);
    }
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal });
    });
  });
}

/** Only complete lines count: a line cut by the kill was never acknowledged. */
const completeLines = (stdout: string): string[] => stdout.slice(0, stdout.lastIndexOf("\n")).split("\n").filter((l) => l.length > 0);

describe("SQLite ledger files", () => {
  let dir: string;
  let path: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "agri-ledger-"));
    path = join(dir, "ledger.db");
    const ledger = openSqliteLedger({ path });
    for (const account of ACCOUNTS) await ledger.openAccount(account);
    await ledger.close();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("opens in WAL mode with synchronous FULL and foreign keys on, at the latest schema version", () => {
    const ledger = openSqliteLedger({ path });
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(raw.prepare("SELECT MAX(version) AS v FROM schema_migrations").get()).toEqual({ v: LATEST_SCHEMA_VERSION });
    } finally {
      raw.close();
    }
    return ledger.close();
  });

  it("migrates idempotently and records each migration once", () => {
    const raw = new Database(path);
    try {
      expect(migrate(raw, 1)).toEqual({ fromVersion: LATEST_SCHEMA_VERSION, toVersion: LATEST_SCHEMA_VERSION });
      expect(raw.prepare("SELECT version, name FROM schema_migrations ORDER BY version").all()).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    } finally {
      raw.close();
    }
  });

  it("brings an older file up to date, keeping its postings", async () => {
    const oldPath = join(dir, "old.db");
    const raw = new Database(oldPath);
    migrate(raw, 1, MIGRATIONS.slice(0, 1));
    raw.prepare("INSERT INTO ledger_accounts (account_id, kind, village_id, household_id, created_at_ms) VALUES ('hh-1', 'household-prepaid', 'v-1', NULL, 1)").run();
    raw.close();
    const ledger = openSqliteLedger({ path: oldPath });
    expect(await ledger.loadChargeState("m-1")).toBeUndefined();
    expect(await ledger.balance("hh-1")).toBe(0);
    await ledger.close();
  });

  it("refuses a file migrated by newer code, or by other code, without touching it", () => {
    const raw = new Database(path);
    raw.prepare("INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, 'from-the-future', 1)").run(LATEST_SCHEMA_VERSION + 1);
    raw.close();
    expect(() => openSqliteLedger({ path })).toThrow(expect.objectContaining({ code: C.SCHEMA_TOO_NEW }) as Error);

    const otherPath = join(dir, "other.db");
    const other = new Database(otherPath);
    migrate(other, 1, [{ version: 1, name: "someone-elses-schema", sql: "CREATE TABLE t (x INTEGER)" }]);
    other.close();
    expect(() => openSqliteLedger({ path: otherPath })).toThrow(expect.objectContaining({ code: C.SCHEMA_MISMATCH }) as Error);
  });

  it("creates ledger_meter_days exactly as the subsidy's usage source defines it", () => {
    const raw = new Database(path, { readonly: true });
    const reference = new Database(":memory:");
    try {
      reference.exec(METER_DAYS_SCHEMA_SQL);
      const schemaOf = (db: Database.Database): unknown => db.prepare("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'ledger_meter_days' ORDER BY name").all();
      expect(schemaOf(raw)).toEqual(schemaOf(reference));
    } finally {
      raw.close();
      reference.close();
    }
  });

  it("refuses a float written into amount_fen by raw SQL (STRICT tables)", () => {
    const raw = new Database(path);
    try {
      raw.prepare("INSERT INTO ledger_postings (idempotency_key, kind, memo, actor, at_ms) VALUES ('raw', 'top-up', '', 'x', 0)").run();
      expect(() => raw.prepare("INSERT INTO ledger_lines (posting_id, line_no, account_id, amount_fen, at_ms) VALUES (1, 0, 'hh-1', 0.5, 0)").run()).toThrow(/cannot store REAL/);
    } finally {
      raw.close();
    }
  });

  it("gives an exact balance and posts every key once when two processes post to the same account at once", { timeout: 60_000 }, async () => {
    // Overlapping ranges: keys 150..299 are posted by both workers, with the same content.
    const [a, b] = await Promise.all([runChild(CONCURRENT_POSTER, [path, "0", "300"]), runChild(CONCURRENT_POSTER, [path, "150", "450"])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const firstPosts = new Map<string, number>();
    const seen = new Map<string, number>();
    for (const line of [...completeLines(a.stdout), ...completeLines(b.stdout)]) {
      const [key = "", duplicate, delta] = line.split(" ");
      seen.set(key, (seen.get(key) ?? 0) + 1);
      if (duplicate === "false") {
        expect(firstPosts.has(key), `${key} was posted twice`).toBe(false);
        firstPosts.set(key, Number(delta));
      }
    }
    expect(firstPosts.size).toBe(450);
    expect([...seen.values()].filter((n) => n === 2)).toHaveLength(150);

    const ledger = openSqliteLedger({ path });
    const expected = [...firstPosts.values()].reduce((sum, d) => sum + d, 0);
    expect(await ledger.balance("hh-1")).toBe(expected);
    expect(await ledger.balance("hh-1") + (await ledger.balance("rev")) + (await ledger.balance("pay"))).toBe(0);
    const keys = (await ledger.statement("hh-1", 0, Number.MAX_SAFE_INTEGER)).entries.map((e) => e.idempotencyKey);
    expect(new Set(keys).size).toBe(450);
    expect(keys).toHaveLength(450);
    await ledger.close();
  });

  it("leaves nothing half-written when the writer is killed with SIGKILL mid-burst, three times over", { timeout: 90_000 }, async () => {
    const acknowledged: string[] = [];
    for (const killAfterMs of [150, 250, 400]) {
      const out = await runChild(CRASH_CHARGER, [path], killAfterMs);
      expect(out.signal, `the writer died on its own: ${out.stderr}`).toBe("SIGKILL");
      const lines = completeLines(out.stdout);
      expect(lines[0]).toBe("ready");
      expect(lines.length, "the kill should land mid-burst").toBeGreaterThan(2);
      acknowledged.push(...lines.slice(1));

      // SQLite's own view, and double entry, row by row.
      const raw = new Database(path, { readonly: true });
      try {
        expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
        expect(raw.prepare("SELECT posting_id FROM ledger_lines GROUP BY posting_id HAVING SUM(amount_fen) <> 0 OR COUNT(*) < 2").all()).toEqual([]);
        expect(raw.prepare("SELECT p.posting_id FROM ledger_postings p LEFT JOIN ledger_lines l USING (posting_id) WHERE l.posting_id IS NULL").all()).toEqual([]);
        expect(raw.prepare("SELECT p.posting_id FROM ledger_postings p LEFT JOIN ledger_audit a USING (posting_id) WHERE a.posting_id IS NULL").all()).toEqual([]);
        expect(raw.prepare("SELECT SUM(amount_fen) AS s FROM ledger_lines").get()).toEqual({ s: 0 });
        const stored = new Set((raw.prepare("SELECT idempotency_key AS k FROM ledger_postings").all() as { k: string }[]).map((r) => r.k));
        for (const key of acknowledged) expect(stored.has(key), `acknowledged ${key} is missing`).toBe(true);
      } finally {
        raw.close();
      }

      // The charge state and the charge postings agree exactly: nothing charged twice, nothing lost.
      const ledger = openSqliteLedger({ path });
      const state = await ledger.loadChargeState("m-1");
      if (state === undefined) throw new Error("no charge state after a burst");
      const statement = await ledger.statement("hh-1", 0, Number.MAX_SAFE_INTEGER);
      const charged = statement.entries.filter((e) => e.kind === "charge").reduce((sum, e) => sum - e.amountFen, 0);
      expect(charged).toBe(chargedFen(state.state));
      expect(await ledger.balance("rev")).toBe(chargedFen(state.state));
      expect(statement.entries.filter((e) => e.kind === "charge").map((e) => e.idempotencyKey)).toEqual(
        Array.from({ length: state.state.lastRegisterSeq }, (_, i) => `charge/m-1/${i + 1}`),
      );
      await ledger.close();
    }
  });
});

