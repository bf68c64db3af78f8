// Ledger write throughput against the physics under it, on SQLite and on PostgreSQL: postings per second one per
// transaction (each commit pays one durable sync, so the bare fsync rate of the same disk is the ceiling), and
// charge readings per second through applyChargesBatch in batches of 100 and 500 (one commit per batch, one savepoint
// per reading). PostgreSQL runs DURABLE here (fsync=on, synchronous_commit=on, full_page_writes=on: the server
// defaults, unlike the test harness's fast settings); its peer is a bare one-row INSERT per transaction through pg on
// the same server, the least a durable PostgreSQL commit can cost from Node, and pgbench running that INSERT (the
// server's ceiling without Node). The process RSS is reported too.

import { spawnSync } from "node:child_process";
import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { chargesFor, emptyChargeState, type MeterChargeState } from "../cloud/ledger/charges.js";
import { chargeEntry } from "../cloud/ledger/store/charge-entries.js";
import type { ApplyChargesBatchItem, Ledger, LedgerEntry } from "../cloud/ledger/store/ledger.js";
import { openPostgresLedger } from "../cloud/ledger/store/postgres-ledger.js";
import { openSqliteLedger } from "../cloud/ledger/store/sqlite-ledger.js";
import type { Tariff } from "../cloud/ledger/tariff.js";
import { startPostgres } from "../test/harness/postgres.js";
import { report } from "./report.js";

const PHASE_MS = 3000;
const METERS = 2_000;
const T0 = 1_751_000_000_000;
const FLAT: readonly Tariff[] = [{ tariffId: "t1", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } }];
const ACCOUNTS = { householdAccountId: "hh-1", revenueAccountId: "rev" };

const round = (x: number, digits = 0): number => Number(x.toFixed(digits));
const rssMb = (): number => round(process.memoryUsage().rss / 1024 / 1024, 1);

/** The physical anchor: a 4 KB append + fsync in `dir`, the least one durable commit can cost on that disk. */
function fsyncProbe(dir: string): { op: () => void; close: () => void } {
  const path = join(dir, "fsync-probe");
  const fd = openSync(path, "w");
  const block = Buffer.alloc(4096, 0x5a);
  let offset = 0;
  return {
    op: () => {
      writeSync(fd, block, 0, block.length, offset);
      fsyncSync(fd);
      offset += block.length;
    },
    close: () => {
      closeSync(fd);
      rmSync(path);
    },
  };
}

type Op = () => unknown;

/**
 * Rates (ops/s) of several operations measured in alternating slices, so that a shared disk's drift (this machine's
 * fsync rate moved 10× within a minute) hits the subject and its anchor alike and the ratio stays meaningful.
 */
async function interleavedRates(ops: readonly Op[], totalMs = 2 * PHASE_MS, rounds = 10): Promise<number[]> {
  const counts = ops.map(() => 0);
  const elapsed = ops.map(() => 0);
  const sliceMs = totalMs / rounds / ops.length;
  for (let r = 0; r < rounds; r++) {
    for (const [k, op] of ops.entries()) {
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < sliceMs) {
        await op();
        n += 1;
      }
      counts[k] = (counts[k] ?? 0) + n;
      elapsed[k] = (elapsed[k] ?? 0) + (performance.now() - t0);
    }
  }
  return counts.map((c, k) => (c / (elapsed[k] ?? 1)) * 1000);
}

function topUp(i: number, run: string): LedgerEntry {
  return {
    idempotencyKey: `${run}/top-up/${i}`,
    kind: "top-up",
    lines: [
      { accountId: "pay", amountFen: -(100 + (i % 900)) },
      { accountId: "hh-1", amountFen: 100 + (i % 900) },
    ],
    memo: `bench top-up ${i}`,
    actor: "provider:bench",
    atMs: T0 + i,
  };
}

async function openAccounts(ledger: Ledger): Promise<void> {
  await ledger.openAccount({ accountId: "hh-1", kind: "household-prepaid", villageId: "v-bench", householdId: "h-1" });
  await ledger.openAccount({ accountId: "rev", kind: "revenue-electricity", villageId: "v-bench" });
  await ledger.openAccount({ accountId: "pay", kind: "payment-provider", villageId: "v-bench" });
}

/**
 * Charge readings as the ingest would batch them: METERS meters read in turn, each reading one applyCharges item with
 * one charge posting. Readings are computed by the pure core lazily, outside the timed store calls.
 */
class ReadingStream {
  private readonly meters = new Map<string, MeterChargeState>();
  private next = 0;
  constructor(private readonly prefix: string) {}

  take(count: number): ApplyChargesBatchItem[] {
    const items: ApplyChargesBatchItem[] = [];
    for (let k = 0; k < count; k++, this.next++) {
      const meterId = `${this.prefix}-${this.next % METERS}`;
      const seq = Math.floor(this.next / METERS) + 1;
      const inputs = [...(seq === 1 ? [{ type: "meter-installed", meterId, atMs: T0, initialWh: 0 } as const] : []), { meterId, registerSeq: seq, atMs: T0 + seq * 60_000, registerWh: seq * 1_500 }];
      const before = this.meters.get(meterId);
      const step = chargesFor(before === undefined ? emptyChargeState() : { meters: { [meterId]: before } }, inputs, FLAT);
      const meter = step.state.meters[meterId];
      if (meter === undefined) throw new Error("no meter state");
      this.meters.set(meterId, meter);
      items.push({ meterId, input: { expectedRevision: seq - 1, state: meter, entries: step.postings.map((p) => chargeEntry(p, ACCOUNTS)) } });
    }
    return items;
  }
}

async function batchRate(ledger: Ledger, size: number, prefix: string): Promise<{ readings: number; readingsPerS: number; postingsPerS: number }> {
  const stream = new ReadingStream(prefix);
  // Warm-up, not counted: the first batch on a connection compiles PL/pgSQL and plans; it says nothing about rates.
  for (const r of await ledger.applyChargesBatch(stream.take(size))) if (!r.ok) throw r.error;
  let readings = 0;
  let postings = 0;
  let storeMs = 0;
  while (storeMs < PHASE_MS) {
    const items = stream.take(size);
    const t0 = performance.now();
    const results = await ledger.applyChargesBatch(items);
    storeMs += performance.now() - t0;
    for (const r of results) {
      if (!r.ok) throw r.error;
      readings += 1;
      postings += r.results.length;
    }
  }
  return { readings, readingsPerS: (readings / storeMs) * 1000, postingsPerS: (postings / storeMs) * 1000 };
}

/** The PostgreSQL peer: a bare one-row INSERT, autocommitted, through pg: one durable commit per round trip. */
async function rawInsertPeer(connectionString: string): Promise<{ op: () => Promise<unknown>; close: () => Promise<void> }> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  await client.query("CREATE TABLE bench_raw (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount_fen BIGINT NOT NULL, memo TEXT NOT NULL)");
  let i = 0;
  return { op: () => client.query("INSERT INTO bench_raw (amount_fen, memo) VALUES ($1, $2)", [i++, "raw"]), close: () => client.end() };
}

/**
 * The server's own ceiling, without Node: pgbench running the same one-row INSERT per transaction for PHASE_MS on one
 * connection. undefined when the server install has no pgbench (it is in Debian's postgresql-client).
 */
function pgbenchInsertRate(binDir: string, port: number, database: string, dir: string): number | undefined {
  const pgbench = join(binDir, "pgbench");
  if (!existsSync(pgbench)) return undefined;
  const script = join(dir, "insert.sql");
  writeFileSync(script, "INSERT INTO bench_raw (amount_fen, memo) VALUES (1, 'pgbench');\n");
  const r = spawnSync(pgbench, ["-n", "-c", "1", "-T", String(PHASE_MS / 1000), "-f", script, "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", database], { encoding: "utf8", timeout: PHASE_MS + 30_000 });
  const tps = /tps = ([\d.]+)/.exec(r.stdout)?.[1];
  if (r.status !== 0 || tps === undefined) throw new Error(`pgbench failed (${String(r.status)}): ${r.stderr.slice(0, 500)}`);
  return Number(tps);
}

interface Peer {
  readonly name: string;
  readonly unit: string;
  readonly op: Op;
  readonly note: string;
}

async function benchOne(engine: "sqlite" | "postgres", ledger: Ledger, peers: readonly Peer[]): Promise<void> {
  await openAccounts(ledger);
  let i = 0;
  const rates = await interleavedRates([...peers.map((p) => p.op), () => ledger.post(topUp(i++, `${engine}-single`))]);
  const single = rates[peers.length] ?? 0;
  for (const [k, p] of peers.entries()) report({ bench: `ledger-${engine}-peer-${p.name}`, value: round(rates[k] ?? 0), unit: p.unit, better: "higher", note: p.note });
  for (let k = 1; k < peers.length; k++) {
    report({ bench: `ledger-${engine}-peer-${peers[k]?.name}-per-${peers[0]?.name}`, value: round((rates[k] ?? 0) / (rates[0] ?? 1), 2), unit: "ratio", better: "higher", note: "the peers against each other, measured interleaved" });
  }
  const anchor = peers[peers.length - 1];
  const anchorRate = rates[peers.length - 1] ?? 1;
  if (anchor === undefined) throw new Error("no peer");
  report({ bench: `ledger-${engine}-post-single`, value: round(single), unit: "postings/s", better: "higher", note: "post(), one posting (2 lines + audit) per transaction, one caller, interleaved with the peers" });
  report({ bench: `ledger-${engine}-post-single-per-${anchor.name}`, value: round(single / anchorRate, 2), unit: "ratio", better: "higher", note: `against ${round(anchorRate)} ${anchor.name}/s measured interleaved: 1 means a posting costs no more than the bare durable commit` });
  for (const size of [100, 500]) {
    const { readingsPerS, postingsPerS } = await batchRate(ledger, size, `${engine}-b${size}`);
    report({ bench: `ledger-${engine}-charges-batch${size}`, value: round(readingsPerS), unit: "readings/s", goal: 20_000, better: "higher", note: `applyChargesBatch of ${size} (one savepoint per reading, ${round(postingsPerS)} postings/s), ${METERS} meters in turn; store time only` });
    report({ bench: `ledger-${engine}-charges-batch${size}-per-${anchor.name}`, value: round(readingsPerS / anchorRate, 1), unit: "ratio", better: "higher", note: `readings committed per bare ${anchor.name} (that rate measured just before, interleaved with single posts)` });
  }
  // The ingest may run several batchers at once (different meters): four concurrent streams of 500.
  const t0 = performance.now();
  const streams = await Promise.all([0, 1, 2, 3].map((k) => batchRate(ledger, 500, `${engine}-x4-${k}`)));
  const wallS = (performance.now() - t0) / 1000;
  const parallel = streams.reduce((sum, r) => sum + r.readings, 0) / wallS;
  report({ bench: `ledger-${engine}-charges-batch500-x4`, value: round(parallel), unit: "readings/s", goal: 20_000, better: "higher", note: `four concurrent applyChargesBatch streams of 500 on one ${engine === "postgres" ? "pool of 4 connections" : "connection (better-sqlite3 is synchronous)"}, readings over wall time (warm-up included)` });
  report({ bench: `ledger-${engine}-rss`, value: rssMb(), unit: "MB", better: "lower", note: `this Node process's resident set after the ${engine} phases${engine === "postgres" ? " (the server's own memory is not included)" : ""}` });
}

export async function ledgerPostingsBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "agri-ledger-bench-"));
  const probe = fsyncProbe(dir);
  const fsyncPeer: Peer = { name: "fsync", unit: "fsyncs/s", op: probe.op, note: "4 KB write + fsync in the bench's temp dir (same disk): the physical anchor for one commit" };
  try {
    const sqlite = openSqliteLedger({ path: join(dir, "ledger.db") });
    try {
      await benchOne("sqlite", sqlite, [fsyncPeer]);
    } finally {
      await sqlite.close();
    }

    const server = await startPostgres({ durable: true });
    try {
      const url = await server.createDatabase("bench");
      const raw = await rawInsertPeer(url);
      const ledger = await openPostgresLedger({ connectionString: url, poolSize: 4 });
      try {
        const rawPeer: Peer = { name: "raw-insert", unit: "commits/s", op: raw.op, note: "bare one-row INSERT per transaction through pg, fsync=on: the PostgreSQL peer" };
        await benchOne("postgres", ledger, [fsyncPeer, rawPeer]);
      } finally {
        await ledger.close();
        await raw.close();
      }
      const pgbenchRate = pgbenchInsertRate(server.binDir, server.port, new URL(url).pathname.slice(1), dir);
      if (pgbenchRate !== undefined) {
        report({ bench: "ledger-postgres-pgbench-insert", value: round(pgbenchRate), unit: "commits/s", better: "higher", note: "pgbench running the same one-row INSERT per transaction on one connection, after the phases above: the server's ceiling without Node" });
      }
    } finally {
      await server.stop();
    }
  } finally {
    probe.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
