// The PostgreSQL ledger: the shared Ledger contract on a throwaway server (one database per store), plus what only a
// shared server can show: concurrent writers on several connections and pools, concurrent migrations, integers
// beyond the safe range, and connections killed mid-transaction.

import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { POSTGRES_PACKAGE, requirePostgresBinDir, startPostgres, type PostgresServer } from "../../../test/harness/postgres.js";
import { chargedFen, chargesFor, emptyChargeState } from "../charges.js";
import type { Tariff } from "../tariff.js";
import { chargeEntry } from "./charge-entries.js";
import { contendedEntry } from "./contended-entry.fixture.js";
import { runLedgerContract } from "./ledger.contract.js";
import type { Account, ApplyChargesBatchItem, Ledger, LedgerEntry } from "./ledger.js";
import { openPostgresLedger, type PostgresLedger } from "./postgres-ledger.js";
import { LATEST_POSTGRES_SCHEMA_VERSION, migratePostgres, POSTGRES_MIGRATIONS } from "./postgres-migrations.js";
import { LEDGER_STORE_ERROR_CODES as C } from "./store-errors.js";

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server.stop();
});

runLedgerContract("PostgreSQL", () => {
  let url: Promise<string> | undefined;
  const database = (): Promise<string> => (url ??= server.createDatabase("contract"));
  return {
    open: async (now) => openPostgresLedger({ connectionString: await database(), now, poolSize: 4 }),
    rawSql: async (sql) => {
      const client = new pg.Client({ connectionString: await database() });
      await client.connect();
      try {
        await client.query(sql);
      } finally {
        await client.end();
      }
    },
    rawRows: async (sql) => {
      const client = new pg.Client({ connectionString: await database() });
      await client.connect();
      try {
        return (await client.query<Record<string, unknown>>(sql)).rows;
      } finally {
        await client.end();
      }
    },
    dispose: () => undefined,
  };
});

// ─── what only a shared server can show ──────────────────────────────────────────────────────────────────────────

const VILLAGE = "v-1";
const ACCOUNTS: readonly Account[] = [
  { accountId: "hh-1", kind: "household-prepaid", villageId: VILLAGE, householdId: "h-1" },
  { accountId: "rev", kind: "revenue-electricity", villageId: VILLAGE },
  { accountId: "pay", kind: "payment-provider", villageId: VILLAGE },
];
const T0 = 1_751_000_000_000;
const FLAT: readonly Tariff[] = [{ tariffId: "t1", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } }];
const CHARGE_ACCOUNTS = { householdAccountId: "hh-1", revenueAccountId: "rev" };

const hhDelta = (entry: LedgerEntry): number => entry.lines.find((l) => l.accountId === "hh-1")?.amountFen ?? 0;

async function freshLedgers(count: number, options: { poolSize?: number; applicationName?: string } = {}): Promise<{ url: string; ledgers: PostgresLedger[] }> {
  const url = await server.createDatabase("shared");
  const ledgers: PostgresLedger[] = [];
  for (let i = 0; i < count; i++) ledgers.push(await openPostgresLedger({ connectionString: url, poolSize: options.poolSize ?? 4, ...(options.applicationName ? { applicationName: options.applicationName } : {}) }));
  const first = ledgers[0];
  if (first === undefined) throw new Error("no ledger");
  for (const account of ACCOUNTS) await first.openAccount(account);
  return { url, ledgers };
}

async function closeAll(ledgers: readonly Ledger[]): Promise<void> {
  await Promise.all(ledgers.map((l) => l.close()));
}

/** Σ lines = 0 and at least two lines and an audit row, for every posting: what a half-written posting would break. */
async function halfWrittenPostings(url: string): Promise<unknown[]> {
  const database = new URL(url).pathname.slice(1);
  const r = await server.sql(
    `SELECT p.posting_id, COUNT(l.line_no) AS lines, COALESCE(SUM(l.amount_fen), 0) AS sum_fen, a.posting_id IS NULL AS no_audit
       FROM ledger_postings p LEFT JOIN ledger_lines l USING (posting_id) LEFT JOIN ledger_audit a USING (posting_id)
      GROUP BY p.posting_id, a.posting_id
     HAVING COUNT(l.line_no) < 2 OR COALESCE(SUM(l.amount_fen), 0) <> 0 OR a.posting_id IS NULL`,
    database,
  );
  return r.rows as unknown[];
}

/**
 * One charging worker: repeatedly loads meter's state, charges its next reading (register +1 kWh per step) and
 * applies it, alone or as a one-item batch; retries on a stale revision. Returns the revisions it applied.
 */
async function chargeWorker(ledger: Ledger, meterId: string, steps: number, useBatch: boolean): Promise<number[]> {
  const applied: number[] = [];
  for (let done = 0; done < steps; ) {
    const stored = await ledger.loadChargeState(meterId);
    const state = stored === undefined ? emptyChargeState() : { meters: { [meterId]: stored.state } };
    const seq = stored === undefined ? 1 : stored.state.lastRegisterSeq + 1;
    const inputs = [...(stored === undefined ? [{ type: "meter-installed", meterId, atMs: T0, initialWh: 0 } as const] : []), { meterId, registerSeq: seq, atMs: T0 + seq * 60_000, registerWh: seq * 1_000 }];
    const step = chargesFor(state, inputs, FLAT);
    const meter = step.state.meters[meterId];
    if (meter === undefined) throw new Error("no meter state");
    const input = { expectedRevision: stored?.revision ?? 0, state: meter, entries: step.postings.map((p) => chargeEntry(p, CHARGE_ACCOUNTS)) };
    try {
      if (useBatch) {
        const [result] = await ledger.applyChargesBatch([{ meterId, input }]);
        if (result === undefined) throw new Error("no batch result");
        if (!result.ok) throw result.error;
        applied.push(result.revision);
      } else {
        applied.push((await ledger.applyCharges(meterId, input)).revision);
      }
      done += 1;
    } catch (error) {
      if ((error as { code?: string }).code !== C.CHARGE_STATE_CONFLICT) throw error;
    }
  }
  return applied;
}

describe("PostgreSQL ledger on a shared server", () => {
  it("has a harness that fails, never skips, naming the Debian package when the server binaries are missing", () => {
    const saved = process.env.PG_BIN_DIR;
    process.env.PG_BIN_DIR = "/nonexistent/postgresql/bin";
    try {
      expect(() => requirePostgresBinDir()).toThrow(expect.objectContaining({ code: "TEST_PROGRAM_MISSING", message: expect.stringContaining(`apt-get install ${POSTGRES_PACKAGE}`) as unknown }));
    } finally {
      if (saved === undefined) delete process.env.PG_BIN_DIR;
      else process.env.PG_BIN_DIR = saved;
    }
  });

  it("retries a batch that PostgreSQL aborts as a deadlock: two batches posting the same keys in opposite orders both finish", { timeout: 120_000 }, async () => {
    const { url, ledgers } = await freshLedgers(2, { poolSize: 1 });
    const database = new URL(url).pathname.slice(1);
    const deadlocks = async (): Promise<number> => Number(((await server.sql(`SELECT deadlocks FROM pg_stat_database WHERE datname = '${database}'`)).rows as { deadlocks: string }[])[0]?.deadlocks ?? 0);
    /** One item per key, each for a meter of its own: the items lock keys (unique-index entries) in the given order. */
    const batch = (tag: string, keys: readonly number[]): ApplyChargesBatchItem[] =>
      keys.map((k) => {
        const meterId = `m-${tag}-${k}`;
        const meter = chargesFor(emptyChargeState(), [{ type: "meter-installed", meterId, atMs: T0, initialWh: 0 }], FLAT).state.meters[meterId];
        if (meter === undefined) throw new Error("no meter state");
        return { meterId, input: { expectedRevision: 0, state: meter, entries: [contendedEntry(k)] } };
      });
    try {
      for (let round = 0; round < 10 && (await deadlocks()) === 0; round++) {
        const keys = Array.from({ length: 80 }, (_, i) => round * 100 + i);
        const [a, b] = await Promise.all([(ledgers[0] as Ledger).applyChargesBatch(batch(`a${round}`, keys)), (ledgers[1] as Ledger).applyChargesBatch(batch(`b${round}`, [...keys].reverse()))]);
        expect([...a, ...b].every((r) => r.ok)).toBe(true);
        // Each key was created by exactly one of the two batches; the other saw it as a duplicate.
        const created = [...a, ...b].flatMap((r) => (r.ok ? r.results : [])).filter((p) => !p.duplicate);
        expect(created).toHaveLength(keys.length);
      }
      expect(await deadlocks()).toBeGreaterThan(0);
      expect(await halfWrittenPostings(url)).toEqual([]);
    } finally {
      await closeAll(ledgers);
    }
  });

  it("opens at the latest schema version with int8 amounts, and reopening migrates nothing", async () => {
    const url = await server.createDatabase("schema");
    const first = await openPostgresLedger({ connectionString: url });
    expect(first.migration).toEqual({ fromVersion: 0, toVersion: LATEST_POSTGRES_SCHEMA_VERSION });
    await first.close();
    const again = await openPostgresLedger({ connectionString: url });
    expect(again.migration).toEqual({ fromVersion: LATEST_POSTGRES_SCHEMA_VERSION, toVersion: LATEST_POSTGRES_SCHEMA_VERSION });
    await again.close();
    const types = await server.sql("SELECT data_type FROM information_schema.columns WHERE table_name = 'ledger_lines' AND column_name = 'amount_fen'", new URL(url).pathname.slice(1));
    expect(types.rows).toEqual([{ data_type: "bigint" }]);
  });

  it("lets several processes' worth of pools migrate a fresh database at once: one migrates, the others find it done", async () => {
    const url = await server.createDatabase("migrate_race");
    const ledgers = await Promise.all(Array.from({ length: 5 }, () => openPostgresLedger({ connectionString: url, poolSize: 1 })));
    expect(ledgers.map((l) => l.migration.fromVersion).sort()).toEqual([0, 2, 2, 2, 2].map((v) => (v === 2 ? LATEST_POSTGRES_SCHEMA_VERSION : 0)));
    const rows = await server.sql("SELECT version FROM ledger_schema_migrations ORDER BY version", new URL(url).pathname.slice(1));
    expect(rows.rows.map((r: { version: number }) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    await closeAll(ledgers);
  });

  it("refuses a database migrated by newer code, or by other code, without touching it", async () => {
    const url = await server.createDatabase("too_new");
    const database = new URL(url).pathname.slice(1);
    await (await openPostgresLedger({ connectionString: url })).close();
    await server.sql("INSERT INTO ledger_schema_migrations (version, name, applied_at_ms) VALUES (99, 'from-the-future', 0)", database);
    await expect(openPostgresLedger({ connectionString: url })).rejects.toMatchObject({ code: C.SCHEMA_TOO_NEW });
    await server.sql("DELETE FROM ledger_schema_migrations WHERE version = 99; UPDATE ledger_schema_migrations SET name = 'another-branch' WHERE version = 2", database);
    await expect(openPostgresLedger({ connectionString: url })).rejects.toMatchObject({ code: C.SCHEMA_MISMATCH });
  });

  it("applies all pending migrations in one transaction: a failing one leaves the database as it was", async () => {
    const url = await server.createDatabase("half_migrated");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const broken = [...POSTGRES_MIGRATIONS, { version: LATEST_POSTGRES_SCHEMA_VERSION + 1, name: "broken", sql: "CREATE TABLE ledger_extra (x INT); SELECT no_such_column FROM ledger_extra" }];
      await expect(migratePostgres(client, 0, broken)).rejects.toThrow(/no_such_column/);
      const tables = await client.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
      expect(tables.rows).toEqual([]);
      expect(await migratePostgres(client, 0)).toEqual({ fromVersion: 0, toVersion: LATEST_POSTGRES_SCHEMA_VERSION });
    } finally {
      await client.end();
    }
  });

  it("refuses a balance, or a statement, whose int8 sum is outside the safe integer range, naming the exact value", async () => {
    const { url, ledgers } = await freshLedgers(1);
    const [ledger] = ledgers as [PostgresLedger];
    // Raw SQL can insert (append-only forbids only edits): two lines of 2^62 fen, as a bad import might.
    await server.sql(
      `WITH p AS (INSERT INTO ledger_postings (idempotency_key, kind, memo, actor, at_ms) VALUES ('huge', 'correction', 'import', 'operator', ${T0}) RETURNING posting_id)
       INSERT INTO ledger_lines (posting_id, line_no, account_id, amount_fen, at_ms) SELECT posting_id, n, CASE n WHEN 0 THEN 'pay' ELSE 'hh-1' END, CASE n WHEN 0 THEN -4611686018427387904 ELSE 4611686018427387904 END, ${T0} FROM p, generate_series(0, 1) AS n`,
      new URL(url).pathname.slice(1),
    );
    await expect(ledger.balance("hh-1")).rejects.toMatchObject({ code: C.NON_INTEGER_AMOUNT, message: expect.stringContaining("4611686018427387904") as unknown });
    await expect(ledger.statement("hh-1", 0, T0 + 1)).rejects.toMatchObject({ code: C.NON_INTEGER_AMOUNT });
    expect(await ledger.balance("rev")).toBe(0);
    await closeAll(ledgers);
  });

  it("reads int8 values up to 2^53 − 1 back exactly", async () => {
    const { ledgers } = await freshLedgers(1);
    const [ledger] = ledgers as [PostgresLedger];
    await ledger.post({ ...contendedEntry(0), lines: [{ accountId: "pay", amountFen: -Number.MAX_SAFE_INTEGER }, { accountId: "hh-1", amountFen: Number.MAX_SAFE_INTEGER }] });
    expect(await ledger.balance("hh-1")).toBe(Number.MAX_SAFE_INTEGER);
    expect(await ledger.balance("pay")).toBe(-Number.MAX_SAFE_INTEGER);
    await closeAll(ledgers);
  });

  it("never loses or doubles a posting when many connections of two pools post to one account at once", { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ key: fc.integer({ min: 0, max: 59 }), pool: fc.integer({ min: 0, max: 1 }) }), { minLength: 1, maxLength: 80 }), async (ops) => {
        const { url, ledgers } = await freshLedgers(2, { poolSize: 6 });
        try {
          const results = await Promise.all(ops.map(async (op) => ({ key: op.key, result: await (ledgers[op.pool] as Ledger).post(contendedEntry(op.key)) })));
          const distinct = [...new Set(ops.map((op) => op.key))];
          // Exactly one writer of each key created it; every other got the same posting back as a duplicate.
          for (const key of distinct) {
            const mine = results.filter((r) => r.key === key);
            expect(mine.filter((r) => !r.result.duplicate)).toHaveLength(1);
            expect(new Set(mine.map((r) => r.result.postingId)).size).toBe(1);
          }
          const expected = distinct.reduce((sum, key) => sum + hhDelta(contendedEntry(key)), 0);
          const ledger = ledgers[0] as Ledger;
          expect(await ledger.balance("hh-1")).toBe(expected);
          const statement = await ledger.statement("hh-1", 0, Number.MAX_SAFE_INTEGER);
          expect(statement.entries.map((e) => e.idempotencyKey).sort()).toEqual(distinct.map((k) => `k/${k}`).sort());
          expect(statement.closingBalanceFen).toBe(expected);
          expect((await ledger.balance("hh-1")) + (await ledger.balance("pay")) + (await ledger.balance("rev"))).toBe(0);
          expect(await halfWrittenPostings(url)).toEqual([]);
        } finally {
          await closeAll(ledgers);
        }
      }),
      { numRuns: 8 },
    );
  });

  it("never applies a stale revision when two pools race to charge one meter, alone and in batches", { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ pool: fc.integer({ min: 0, max: 1 }), steps: fc.integer({ min: 1, max: 6 }), batch: fc.boolean() }), { minLength: 2, maxLength: 6 }), async (workers) => {
        const { ledgers } = await freshLedgers(2, { poolSize: 4 });
        try {
          const applied = await Promise.all(workers.map((w) => chargeWorker(ledgers[w.pool] as Ledger, "m-1", w.steps, w.batch)));
          const total = workers.reduce((sum, w) => sum + w.steps, 0);
          // Every revision 1..total was applied exactly once, by exactly one worker.
          expect(applied.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
          const stored = await (ledgers[0] as Ledger).loadChargeState("m-1");
          expect(stored?.revision).toBe(total);
          expect(stored?.state.lastRegisterSeq).toBe(total);
          if (stored === undefined) throw new Error("no state");
          // The state and the postings moved together: what the state says was charged is what the account paid.
          expect(await (ledgers[1] as Ledger).balance("hh-1")).toBe(-chargedFen(stored.state));
        } finally {
          await closeAll(ledgers);
        }
      }),
      { numRuns: 6 },
    );
  });

  it("loses nothing committed and commits nothing partial when connections are killed mid-transaction", { timeout: 120_000 }, async () => {
    const { url, ledgers } = await freshLedgers(2, { poolSize: 3, applicationName: "agri-ledger-victim" });
    const database = new URL(url).pathname.slice(1);
    const acknowledged: { key: string; postingId: number }[] = [];
    let running = true;
    let kills = 0;
    const killer = (async () => {
      while (running) {
        const r = await server.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'agri-ledger-victim' AND datname = '${database}' AND pid <> pg_backend_pid()`);
        kills += r.rowCount ?? 0;
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    })();
    const poster = async (ledger: Ledger, from: number): Promise<void> => {
      for (let i = from; i < from + 150; i++) {
        try {
          const r = await ledger.post(contendedEntry(i));
          acknowledged.push({ key: `k/${i}`, postingId: r.postingId });
        } catch {
          // Killed: not acknowledged, so it may or may not be there; it must not be there in part.
        }
      }
    };
    const charger = async (ledger: Ledger, meterId: string): Promise<void> => {
      for (let i = 0; i < 40; i++) await chargeWorker(ledger, meterId, 1, i % 2 === 0).catch(() => undefined);
    };
    try {
      await Promise.all([poster(ledgers[0] as Ledger, 0), poster(ledgers[1] as Ledger, 1_000), charger(ledgers[0] as Ledger, "m-a"), charger(ledgers[1] as Ledger, "m-b")]);
    } finally {
      running = false;
      await killer;
    }
    expect(kills).toBeGreaterThan(0);
    expect(acknowledged.length).toBeGreaterThan(0);
    const survivor = await openPostgresLedger({ connectionString: url });
    try {
      for (const { key, postingId } of acknowledged) expect((await survivor.audit(postingId))?.idempotencyKey).toBe(key);
      expect(await halfWrittenPostings(url)).toEqual([]);
      // Each meter's stored state and its charge postings were committed together, or not at all.
      let chargedByStates = 0;
      for (const meterId of ["m-a", "m-b"]) {
        const stored = await survivor.loadChargeState(meterId);
        if (stored !== undefined) chargedByStates += chargedFen(stored.state);
      }
      const posted = (await survivor.statement("hh-1", 0, Number.MAX_SAFE_INTEGER)).entries;
      const charges = posted.filter((e) => e.actor === "system:charges").reduce((sum, e) => sum - e.amountFen, 0);
      expect(chargedByStates).toBeGreaterThan(0);
      expect(charges).toBe(chargedByStates);
      const rest = posted.filter((e) => e.actor !== "system:charges").reduce((sum, e) => sum + e.amountFen, 0);
      expect(await survivor.balance("hh-1")).toBe(rest - charges);
    } finally {
      await survivor.close();
      await closeAll(ledgers);
    }
  });
});
