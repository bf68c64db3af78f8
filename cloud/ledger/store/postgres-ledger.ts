// The Ledger port on PostgreSQL (pg Pool): the ledger of a cloud that has outgrown one box (ARCHITECTURE.md §3), with
// several processes and connections writing to the same accounts and meters at once. Same contract as the SQLite
// ledger (ledger.contract.ts), same entry checks (ledger.ts), same migration rules (postgres-migrations.ts).
//
// Concurrency: READ COMMITTED with row-level conflicts, not SERIALIZABLE. Nothing here is a read-modify-write of a
// balance — a balance is Σ lines, computed at every read, and postings are only ever inserted — so concurrent posts
// to one account cannot lose one another: the only thing two writers can collide on is the same idempotency key,
// which the UNIQUE index settles (INSERT … ON CONFLICT DO NOTHING waits for the other transaction, then sees its row).
// The one read-modify-write is a meter's charge state, and it is a compare-and-set on one row, done first in each
// item: UPDATE … WHERE revision = expected (or INSERT … ON CONFLICT DO NOTHING for revision 0). A concurrent
// applyCharges on the same meter blocks on that row lock until the first commits; PostgreSQL then re-checks the WHERE against the committed row
// (READ COMMITTED's EvalPlanQual), finds the revision moved, updates nothing, and we refuse with the retryable
// LEDGER_CHARGE_STATE_CONFLICT. SERIALIZABLE would give the same guarantees at the price of serialization failures
// on unrelated rows (predicate locks on index pages) and of retrying whole batches of hundreds of readings.
//
// Round trips: a post, an applyCharges and a whole applyChargesBatch are each ONE statement calling a PL/pgSQL
// function (ledger_post_entry, ledger_apply_charges_batch; postgres-migrations.ts versions 3 and 4), so each is one
// transaction and one round trip; a batch item's savepoint is the function's BEGIN … EXCEPTION block. Doing it from
// here instead (SAVEPOINT, compare-and-set, insert, RELEASE per item) measured ≈1,500 readings/s: round trips, not
// the disk, were the limit.
//
// Integers: BIGINT columns; int8 and numeric values come back as a JS number only when they are safe integers,
// otherwise as their exact text, which every read refuses with LEDGER_NON_INTEGER_AMOUNT — never silently rounded.
// Deadlocks (two batches taking the same rows in opposite orders) abort one statement whole; it is retried.

import pg from "pg";
import { inTransaction, openMigratedPool, pgSafeInteger } from "../../postgres.js";
import { mergeMeterDayDeltas } from "../../subsidy/meter-days.js";
import type { MeterChargeState } from "../charges.js";
import {
  checkAccount,
  checkApplyChargesInput,
  checkEntry,
  sameAccount,
  type Account,
  type AccountKind,
  type ApplyChargesBatchItemResult,
  type ApplyChargesInput,
  type AuditRecord,
  type Ledger,
  type LedgerEntry,
  type PostingKind,
  type PostResult,
  type Statement,
  type StatementEntry,
  type StoredChargeState,
} from "./ledger.js";
import type { MigrateResult } from "./migrations.js";
import { migratePostgres } from "./postgres-migrations.js";
import { LEDGER_STORE_ERROR_CODES as C, LedgerStoreError, type LedgerStoreErrorCode } from "./store-errors.js";

export interface PostgresLedgerOptions {
  readonly connectionString: string;
  /** The store's clock, for recorded_at_ms in the audit trail and created_at_ms. */
  readonly now?: () => number;
  /** Connections in the pool (default 10). */
  readonly poolSize?: number;
  /** Shown in pg_stat_activity, so an operator can tell the ledger's connections apart. */
  readonly applicationName?: string;
}

export interface PostgresLedger extends Ledger {
  readonly kind: "postgres";
  /** The migration this open performed (fromVersion = toVersion when there was nothing to do). */
  readonly migration: MigrateResult;
}

/** A value read from an integer column or SUM: the number, or LEDGER_NON_INTEGER_AMOUNT when it is not safe. */
export function safeInt(value: unknown, what: string): number {
  if (value === null) return 0;
  return pgSafeInteger(value, what, (message) => new LedgerStoreError(C.NON_INTEGER_AMOUNT, message));
}

interface AccountRow {
  account_id: string;
  kind: string;
  village_id: string;
  household_id: string | null;
}
interface PostingRow {
  posting_id: unknown;
  idempotency_key: string;
  kind: string;
  memo: string;
  actor: string;
  at_ms: unknown;
}

function toAccount(row: AccountRow): Account {
  const base = { accountId: row.account_id, kind: row.kind as AccountKind, villageId: row.village_id };
  return row.household_id === null ? base : { ...base, householdId: row.household_id };
}

/**
 * The SQLSTATEs the ledger's own functions raise (postgres-migrations.ts, version 3), as the port's codes. Any other
 * database error is not a refusal of one entry or item: it propagates, and a batch it hits is rolled back whole.
 */
const REFUSALS: Readonly<Record<string, LedgerStoreErrorCode>> = {
  LG001: C.CHARGE_STATE_CONFLICT,
  LG002: C.IDEMPOTENCY_CONFLICT,
  LG003: C.UNKNOWN_ACCOUNT,
};

function refusal(error: unknown): LedgerStoreError | undefined {
  if (!(error instanceof pg.DatabaseError) || error.code === undefined) return undefined;
  const code = REFUSALS[error.code];
  return code === undefined ? undefined : new LedgerStoreError(code, error.message, { cause: error });
}

const DEADLOCK_DETECTED = "40P01";
const DEADLOCK_ATTEMPTS = 5;

/**
 * Two batches that lock the same meters in opposite orders deadlock; PostgreSQL aborts one of them whole. Each call
 * here is a single statement, so the aborted one wrote nothing and is simply run again.
 */
async function retryingDeadlocks<T>(statement: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await statement();
    } catch (error) {
      if (!(error instanceof pg.DatabaseError) || error.code !== DEADLOCK_DETECTED || attempt >= DEADLOCK_ATTEMPTS) throw error;
    }
  }
}

/** The JSON the server-side functions read: only the port's fields, whatever else the caller's object carries. */
function entryJson(entry: LedgerEntry): object {
  return {
    idempotencyKey: entry.idempotencyKey,
    kind: entry.kind,
    memo: entry.memo,
    actor: entry.actor,
    atMs: entry.atMs,
    lines: entry.lines.map((l) => ({ accountId: l.accountId, amountFen: l.amountFen })),
  };
}

/** An item's day deltas folded to one per day: the function's upsert may touch a row only once per statement. */
function meterDaysJson(input: ApplyChargesInput): object[] {
  return mergeMeterDayDeltas(input.meterDays ?? []).map((d) => ({
    day: d.day, energyWh: d.energyWh, chargedFen: d.chargedFen, nightWh: d.nightWh, readings: d.readings,
    firstAtMs: d.firstAtMs, lastAtMs: d.lastAtMs, firstRegisterWh: d.firstRegisterWh, lastRegisterWh: d.lastRegisterWh,
  }));
}

function itemJson(meterId: string, input: ApplyChargesInput): object {
  return { meterId, expectedRevision: input.expectedRevision, stateJson: JSON.stringify(input.state), entries: input.entries.map(entryJson), meterDays: meterDaysJson(input) };
}

interface PostedJson {
  postingId: unknown;
  duplicate: boolean;
}
type ItemJson = { ok: true; revision: unknown; results: PostedJson[] } | { ok: false; sqlstate: string; message: string };

function toPostResult(row: PostedJson): PostResult {
  return { postingId: safeInt(row.postingId, "posting id"), duplicate: row.duplicate };
}

function toItemResult(row: ItemJson): ApplyChargesBatchItemResult {
  if (row.ok) return { ok: true, revision: safeInt(row.revision, "revision"), results: row.results.map(toPostResult) };
  const code = REFUSALS[row.sqlstate];
  if (code === undefined) throw new Error(`ledger_apply_charges_batch reported an unknown refusal ${row.sqlstate}: ${row.message}`);
  return { ok: false, error: new LedgerStoreError(code, row.message) };
}

export async function openPostgresLedger(options: PostgresLedgerOptions): Promise<PostgresLedger> {
  const now = options.now ?? Date.now;
  const { pool, migration } = await openMigratedPool(
    { connectionString: options.connectionString, poolSize: options.poolSize ?? 10, applicationName: options.applicationName ?? "agri-ledger" },
    (client) => migratePostgres(client, now()),
  );

  /** One round trip, one statement, so one transaction: ledger_post_entry does the rest (postgres-migrations.ts). */
  async function postOne(entry: LedgerEntry): Promise<PostResult> {
    try {
      const r = await retryingDeadlocks(() => pool.query<{ r: PostedJson }>("SELECT ledger_post_entry($1::jsonb, $2::bigint) AS r", [JSON.stringify(entryJson(entry)), now()]));
      const row = r.rows[0];
      if (row === undefined) throw new Error("ledger_post_entry returned no row");
      return toPostResult(row.r);
    } catch (error) {
      throw refusal(error) ?? error;
    }
  }

  /** Checked items in one statement (one transaction, one commit): ledger_apply_charges_batch, results in order. */
  async function applyMany(items: readonly { meterId: string; input: ApplyChargesInput }[]): Promise<ApplyChargesBatchItemResult[]> {
    // A set-returning function's rows come back in the order it returned them: item order.
    const itemsJson = JSON.stringify(items.map((i) => itemJson(i.meterId, i.input)));
    const r = await retryingDeadlocks(() => pool.query<{ r: ItemJson }>("SELECT r FROM ledger_apply_charges_batch($1::jsonb, $2::bigint) AS r", [itemsJson, now()]));
    if (r.rows.length !== items.length) throw new Error(`ledger_apply_charges_batch returned ${r.rows.length} results for ${items.length} items`);
    return r.rows.map((row) => toItemResult(row.r));
  }

  async function balanceIn(client: pg.ClientBase | pg.Pool, accountId: string, beforeMs?: number): Promise<number> {
    const result =
      beforeMs === undefined
        ? await client.query<{ fen: unknown }>("SELECT SUM(amount_fen) AS fen FROM ledger_lines WHERE account_id = $1", [accountId])
        : await client.query<{ fen: unknown }>("SELECT SUM(amount_fen) AS fen FROM ledger_lines WHERE account_id = $1 AND at_ms < $2", [accountId, beforeMs]);
    return safeInt(result.rows[0]?.fen ?? null, `the ${beforeMs === undefined ? "" : "opening "}balance of ${accountId}`);
  }

  async function accountExists(client: pg.ClientBase | pg.Pool, accountId: string): Promise<void> {
    const r = await client.query("SELECT 1 FROM ledger_accounts WHERE account_id = $1", [accountId]);
    if (r.rowCount === 0) throw new LedgerStoreError(C.UNKNOWN_ACCOUNT, `no account ${accountId}`);
  }

  let closed = false;
  return {
    kind: "postgres",
    migration,
    openAccount: async (account) => {
      checkAccount(account);
      const inserted = await pool.query(
        `INSERT INTO ledger_accounts (account_id, kind, village_id, household_id, created_at_ms) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account_id) DO NOTHING`,
        [account.accountId, account.kind, account.villageId, account.householdId ?? null, now()],
      );
      if (inserted.rowCount === 1) return;
      const row = (await pool.query<AccountRow>("SELECT account_id, kind, village_id, household_id FROM ledger_accounts WHERE account_id = $1", [account.accountId])).rows[0];
      if (row === undefined || !sameAccount(toAccount(row), account)) throw new LedgerStoreError(C.ACCOUNT_CONFLICT, `account ${account.accountId} exists with other fields`);
    },
    getAccount: async (accountId) => {
      const row = (await pool.query<AccountRow>("SELECT account_id, kind, village_id, household_id FROM ledger_accounts WHERE account_id = $1", [accountId])).rows[0];
      return row === undefined ? undefined : toAccount(row);
    },
    post: async (entry) => {
      checkEntry(entry);
      return postOne(entry);
    },
    balance: async (accountId) => {
      await accountExists(pool, accountId);
      return balanceIn(pool, accountId);
    },
    statement: async (accountId, fromMs, toMs) => {
      if (!Number.isSafeInteger(fromMs) || !Number.isSafeInteger(toMs) || fromMs > toMs) {
        throw new LedgerStoreError(C.INVALID_ENTRY, `a statement needs integer fromMs ≤ toMs, got ${fromMs}..${toMs}`);
      }
      // REPEATABLE READ: the opening balance and the entries come from one snapshot.
      return inTransaction(pool, async (client): Promise<Statement> => {
        await accountExists(client, accountId);
        const openingBalanceFen = await balanceIn(client, accountId, fromMs);
        const rows = await client.query<PostingRow & { amount_fen: unknown }>(
          `SELECT p.posting_id, p.idempotency_key, p.kind, p.memo, p.actor, p.at_ms, SUM(l.amount_fen) AS amount_fen
             FROM ledger_lines l JOIN ledger_postings p ON p.posting_id = l.posting_id
            WHERE l.account_id = $1 AND l.at_ms >= $2 AND l.at_ms < $3
            GROUP BY p.posting_id ORDER BY p.at_ms, p.posting_id`,
          [accountId, fromMs, toMs],
        );
        let running = openingBalanceFen;
        const entries = rows.rows.map((row): StatementEntry => {
          const amountFen = safeInt(row.amount_fen, "a statement amount");
          running = safeInt(running + amountFen, `the running balance of ${accountId}`);
          return {
            postingId: safeInt(row.posting_id, "posting id"),
            idempotencyKey: row.idempotency_key,
            kind: row.kind as PostingKind,
            atMs: safeInt(row.at_ms, "atMs"),
            memo: row.memo,
            actor: row.actor,
            amountFen,
            balanceAfterFen: running,
          };
        });
        return { accountId, fromMs, toMs, openingBalanceFen, closingBalanceFen: running, entries };
      }, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    },
    audit: async (postingId) => {
      if (!Number.isSafeInteger(postingId)) return undefined;
      const row = (
        await pool.query<PostingRow & { recorded_at_ms: unknown }>(
          "SELECT a.posting_id, p.idempotency_key, a.kind, a.memo, a.actor, a.at_ms, a.recorded_at_ms FROM ledger_audit a JOIN ledger_postings p USING (posting_id) WHERE a.posting_id = $1",
          [postingId],
        )
      ).rows[0];
      if (row === undefined) return undefined;
      const record: AuditRecord = {
        postingId: safeInt(row.posting_id, "posting id"),
        idempotencyKey: row.idempotency_key,
        kind: row.kind as PostingKind,
        actor: row.actor,
        memo: row.memo,
        atMs: safeInt(row.at_ms, "atMs"),
        recordedAtMs: safeInt(row.recorded_at_ms, "recordedAtMs"),
      };
      return record;
    },
    loadChargeState: async (meterId): Promise<StoredChargeState | undefined> => {
      const row = (await pool.query<{ revision: unknown; state_json: string }>("SELECT revision, state_json FROM ledger_meter_charge_state WHERE meter_id = $1", [meterId])).rows[0];
      return row === undefined ? undefined : { revision: safeInt(row.revision, "revision"), state: JSON.parse(row.state_json) as MeterChargeState };
    },
    applyCharges: async (meterId, input) => {
      checkApplyChargesInput(meterId, input);
      const [result] = await applyMany([{ meterId, input }]);
      if (result === undefined) throw new Error("applyCharges: no result");
      if (!result.ok) throw result.error;
      return { revision: result.revision, results: result.results };
    },
    applyChargesBatch: async (items) => {
      // Items the shared checks refuse never reach the server; the rest go in one statement, and the answers are
      // merged back into item order.
      const results: (ApplyChargesBatchItemResult | undefined)[] = [];
      const valid: { index: number; meterId: string; input: ApplyChargesInput }[] = [];
      items.forEach(({ meterId, input }, index) => {
        try {
          checkApplyChargesInput(meterId, input);
          valid.push({ index, meterId, input });
          results.push(undefined);
        } catch (error) {
          if (!(error instanceof LedgerStoreError)) throw error;
          results.push({ ok: false, error });
        }
      });
      if (valid.length > 0) (await applyMany(valid)).forEach((result, k) => (results[valid[k]?.index ?? -1] = result));
      return results.map((r, i) => {
        if (r === undefined) throw new Error(`applyChargesBatch: no result for item ${i}`);
        return r;
      });
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
