// The SQLite outbox: the shared Outbox contract in temporary directories, plus what only a file can show — a writer
// killed with SIGKILL mid-burst loses nothing it acknowledged and never reuses a seq, and a damaged or foreign file
// is refused with a typed error instead of crashing or being modified.

import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runOutboxContract } from "./outbox.contract.js";
import { OutboxError } from "./outbox.js";
import { openSqliteOutbox, THIN_WINDOW_MAX, type SqliteOutbox } from "./sqlite-outbox.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = join(HERE, "..", "..");
const CRASH_WRITER = join(HERE, "crash-writer.fixture.ts");
const ROOMY = { maxBytes: 1_000_000_000, maxCount: 10_000_000 } as const;

runOutboxContract("SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "agri-outbox-contract-"));
  const path = join(dir, "outbox.db");
  return {
    open: (limits) => openSqliteOutbox({ path, ...limits }),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

describe("SQLite outbox files", () => {
  let dir: string;
  const opened: SqliteOutbox[] = [];
  const open = (path: string): SqliteOutbox => {
    const outbox = openSqliteOutbox({ path, ...ROOMY });
    opened.push(outbox);
    return outbox;
  };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "agri-outbox-"));
  });
  afterEach(() => {
    for (const outbox of opened.splice(0)) outbox.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Start the crash writer, kill it with SIGKILL `killAfterMs` after its first acknowledged seq, return what it printed. */
  async function appendUntilKilled(path: string, killAfterMs: number): Promise<number[]> {
    const child = spawn(process.execPath, ["--import", "tsx", CRASH_WRITER, path], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (timer === undefined && /^ready\n\d+\n/.test(stdout)) timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    });
    const signal = await new Promise<NodeJS.Signals | null>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (_code, sig) => resolve(sig));
    });
    clearTimeout(timer);
    expect(signal, `the writer died on its own: ${stderr}`).toBe("SIGKILL");
    // Only complete lines count: a line cut by the kill was never fully acknowledged.
    const lines = stdout.slice(0, stdout.lastIndexOf("\n")).split("\n");
    expect(lines[0]).toBe("ready");
    return lines.slice(1).map(Number);
  }

  it("loses no acknowledged append and reuses no seq when the writer is killed mid-burst, three times over", { timeout: 60_000 }, async () => {
    const path = join(dir, "crash.db");
    let everPrinted = 0;
    for (const killAfterMs of [120, 200, 330]) {
      const printed = await appendUntilKilled(path, killAfterMs);
      expect(printed.length, "the kill should land mid-burst, after some appends").toBeGreaterThan(0);
      everPrinted = Math.max(everPrinted, ...printed);

      // SQLite's own view first: the file survived the kill intact.
      const raw = new Database(path);
      expect(raw.pragma("integrity_check", { simple: true })).toBe("ok");
      raw.close();

      const outbox = open(path);
      const entries = outbox.peek(10_000_000);
      const stored = new Set(entries.map((e) => e.seq));
      expect(printed.filter((seq) => !stored.has(seq))).toEqual([]);
      const sorted = [...stored].sort((a, b) => a - b);
      expect(sorted[0]).toBe(1);
      expect(sorted[sorted.length - 1]).toBe(sorted.length);
      expect(outbox.stats().lastSeq).toBe(sorted.length);
      for (const e of entries) expect((JSON.parse(e.payloadJson) as { seq: number }).seq).toBe(e.seq);
      const next = outbox.append({ topicName: "events", topic: "agri/v1/gw/gw-crash/up/events", payload: { v: 1, restart: true }, priority: "event" });
      expect(next.seq).toBe(sorted.length + 1);
      expect(next.seq).toBeGreaterThan(everPrinted);
      outbox.close();
    }
  });

  it("opens in WAL mode and leaves a valid database behind after close", () => {
    const path = join(dir, "wal.db");
    const outbox = open(path);
    outbox.append({ topicName: "alarm", topic: "agri/v1/gw/gw-1/up/alarm", payload: { v: 1 }, priority: "alarm" });
    outbox.close();
    // SQLite file format §1.3: header bytes 18 and 19 are 2 for a WAL database.
    const header = readFileSync(path).subarray(0, 20);
    expect([header[18], header[19]]).toEqual([2, 2]);
    expect(open(path).peek(1)[0]?.seq).toBe(1);
  });

  it("refuses a file that is not SQLite with EDGE_OUTBOX_CORRUPT", () => {
    const path = join(dir, "text.db");
    writeFileSync(path, "seq,topic,payload\n1,agri/v1/gw/gw-1/up/alarm,{}\n".repeat(20));
    expect(() => open(path)).toThrow(expect.objectContaining({ name: "OutboxError", code: "EDGE_OUTBOX_CORRUPT", retryable: false }));
    const random = join(dir, "random.db");
    writeFileSync(random, Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 7919 + 13) & 0xff)));
    expect(() => open(random)).toThrow(OutboxError);
    expect(() => open(random)).toThrow(expect.objectContaining({ code: "EDGE_OUTBOX_CORRUPT" }));
  });

  it("reports a damaged page as EDGE_OUTBOX_CORRUPT, at open or at the first read that meets it", () => {
    const path = join(dir, "damaged.db");
    const outbox = open(path);
    outbox.appendMany(Array.from({ length: 2000 }, (_, i) => ({ topicName: "telemetry", topic: "t", payload: { v: 1, i }, priority: "telemetry" as const })));
    outbox.close();
    // Overwrite pages 2.. with noise, leaving the header page (and its schema) intact: a card that lost writes.
    const size = readFileSync(path).length;
    const fd = openSync(path, "r+");
    writeSync(fd, Buffer.alloc(size - 4096, 0xa5), 0, size - 4096, 4096);
    closeSync(fd);
    let caught: unknown;
    try {
      const damaged = open(path);
      damaged.peek(10_000);
      damaged.stats();
      damaged.append({ topicName: "alarm", topic: "t", payload: {}, priority: "alarm" });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OutboxError);
    expect((caught as OutboxError).code).toBe("EDGE_OUTBOX_CORRUPT");
  });

  it("refuses another program's SQLite database with EDGE_OUTBOX_FOREIGN_SCHEMA and does not modify it", () => {
    const path = join(dir, "ledger.db");
    const other = new Database(path);
    other.exec("CREATE TABLE postings (id INTEGER PRIMARY KEY, amount_fen INTEGER NOT NULL); INSERT INTO postings (amount_fen) VALUES (100);");
    other.close();
    const before = readFileSync(path);
    expect(() => open(path)).toThrow(expect.objectContaining({ code: "EDGE_OUTBOX_FOREIGN_SCHEMA" }));
    expect(readFileSync(path).equals(before)).toBe(true);
    expect(existsSync(`${path}-wal`)).toBe(false);
  });

  it("reports a missing directory as EDGE_OUTBOX_IO, retryable", () => {
    expect(() => open(join(dir, "no", "such", "dir", "outbox.db"))).toThrow(expect.objectContaining({ code: "EDGE_OUTBOX_IO", retryable: true }));
  });

  it("rejects an unknown synchronous mode with EDGE_OUTBOX_BAD_ARGUMENT", () => {
    const options = { path: join(dir, "x.db"), ...ROOMY, synchronous: "OFF" } as unknown as Parameters<typeof openSqliteOutbox>[0];
    expect(() => openSqliteOutbox(options)).toThrow(expect.objectContaining({ code: "EDGE_OUTBOX_BAD_ARGUMENT" }));
  });
});

describe("SQLite outbox thinning", () => {
  it("thins at most THIN_WINDOW_MAX rows per full append, so an alarm never waits behind a whole-file rewrite", () => {
    const dir = mkdtempSync(join(tmpdir(), "outbox-thin-"));
    try {
      const outbox = openSqliteOutbox({ path: join(dir, "o.db"), maxCount: 20_000, maxBytes: 1 << 30, synchronous: "NORMAL" });
      const telemetry = Array.from({ length: 20_000 }, (_, i) => ({ topicName: "telemetry", topic: "agri/v1/gw/g/up/telemetry", payload: { i }, priority: "telemetry" as const }));
      outbox.appendMany(telemetry);
      expect(outbox.stats().count).toBe(20_000);
      const { stored } = outbox.append({ topicName: "alarm", topic: "agri/v1/gw/g/up/alarm", payload: { fire: true }, priority: "alarm" });
      expect(stored).toBe(true);
      // One pass over the oldest THIN_WINDOW_MAX rows deletes every other one, not half of all 10,000 oldest.
      expect(outbox.stats().thinnedTelemetry).toBe(THIN_WINDOW_MAX / 2);
      expect(outbox.peek(1)[0]?.priority).toBe("alarm");
      outbox.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
