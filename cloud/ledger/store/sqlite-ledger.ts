// The Ledger port on one SQLite file (better-sqlite3, WAL): the default ledger of the one-box cloud (ARCHITECTURE.md
// §3). Every write is one BEGIN IMMEDIATE transaction, so concurrent writers (processes sharing the file) queue on
// the write lock at BEGIN, with busy_timeout, instead of failing when a read transaction tries to upgrade.
//
// Durability: WAL with synchronous=FULL, so a committed posting survives power loss, not only a crash (SQLite docs,
// "PRAGMA synchronous": in WAL mode NORMAL may lose the last transactions on power loss). foreign_keys=ON makes a
// line naming an unknown account fail inside the transaction even if the explicit check were bypassed.

import { openDurableDatabase } from "../../sqlite.js";
import { applyMeterDayDeltas } from "../../subsidy/meter-days.js";
import type { MeterChargeState } from "../charges.js";
import {
  checkAccount,
  checkApplyChargesInput,
  checkEntry,
  sameAccount,
  sameContent,
  type Account,
  type AccountKind,
  type ApplyChargesBatchItem,
  type ApplyChargesBatchItemResult,
  type ApplyChargesInput,
  type ApplyChargesResult,
  type AuditRecord,
  type Ledger,
  type LedgerEntry,
  type PostingKind,
  type PostResult,
  type Statement,
  type StatementEntry,
  type StoredChargeState,
} from "./ledger.js";
import { migrate } from "./migrations.js";
import { LEDGER_STORE_ERROR_CODES as C, LedgerStoreError } from "./store-errors.js";

export interface SqliteLedgerOptions {
  readonly path: string;
  /** How long a writer waits for another process's write lock before failing (SQLITE_BUSY). */
  readonly busyTimeoutMs?: number;
  /** The store's clock, for recorded_at_ms in the audit trail and created_at_ms. */
  readonly now?: () => number;
}

export interface SqliteLedger extends Ledger {
  readonly kind: "sqlite";
  readonly path: string;
}

interface AccountRow {
  account_id: string;
  kind: string;
  village_id: string;
  household_id: string | null;
}
interface PostingRow {
  posting_id: number;
  idempotency_key: string;
  kind: string;
  memo: string;
  actor: string;
  at_ms: number;
}

function toAccount(row: AccountRow): Account {
  const base = { accountId: row.account_id, kind: row.kind as AccountKind, villageId: row.village_id };
  return row.household_id === null ? base : { ...base, householdId: row.household_id };
}

/** SUM() read with safeIntegers: a balance outside ±2^53 is reported, never silently rounded. */
function safeFen(value: bigint | number | null, what: string): number {
  const n = value === null ? 0 : Number(value);
  if (!Number.isSafeInteger(n) || (typeof value === "bigint" && BigInt(n) !== value)) {
    throw new LedgerStoreError(C.NON_INTEGER_AMOUNT, `${what} ${String(value)} fen is outside the safe integer range`);
  }
  return n;
}

/** Runs a synchronous body as a Promise, so a throw becomes a rejection, as a networked implementation's would. */
function settle<T>(body: () => T): Promise<T> {
  return new Promise<T>((resolve) => resolve(body()));
}

export function openSqliteLedger(options: SqliteLedgerOptions): SqliteLedger {
  const now = options.now ?? Date.now;
  const db = openDurableDatabase(options.path, options.busyTimeoutMs ?? 10_000, (d) => migrate(d, now()));

  const q = {
    accountById: db.prepare<[string], AccountRow>("SELECT account_id, kind, village_id, household_id FROM ledger_accounts WHERE account_id = ?"),
    insertAccount: db.prepare("INSERT INTO ledger_accounts (account_id, kind, village_id, household_id, created_at_ms) VALUES (?, ?, ?, ?, ?)"),
    postingByKey: db.prepare<[string], PostingRow>("SELECT posting_id, idempotency_key, kind, memo, actor, at_ms FROM ledger_postings WHERE idempotency_key = ?"),
    linesOf: db.prepare<[number], { account_id: string; amount_fen: number }>("SELECT account_id, amount_fen FROM ledger_lines WHERE posting_id = ? ORDER BY line_no"),
    insertPosting: db.prepare("INSERT INTO ledger_postings (idempotency_key, kind, memo, actor, at_ms) VALUES (?, ?, ?, ?, ?)"),
    insertLine: db.prepare("INSERT INTO ledger_lines (posting_id, line_no, account_id, amount_fen, at_ms) VALUES (?, ?, ?, ?, ?)"),
    insertAudit: db.prepare("INSERT INTO ledger_audit (posting_id, actor, kind, memo, at_ms, recorded_at_ms) VALUES (?, ?, ?, ?, ?, ?)"),
    audit: db.prepare<[number], PostingRow & { recorded_at_ms: number }>(
      "SELECT a.posting_id, p.idempotency_key, a.kind, a.memo, a.actor, a.at_ms, a.recorded_at_ms FROM ledger_audit a JOIN ledger_postings p USING (posting_id) WHERE a.posting_id = ?",
    ),
    balance: db.prepare<[string], { fen: bigint | null }>("SELECT SUM(amount_fen) AS fen FROM ledger_lines WHERE account_id = ?").safeIntegers(true),
    balanceBefore: db.prepare<[string, number], { fen: bigint | null }>("SELECT SUM(amount_fen) AS fen FROM ledger_lines WHERE account_id = ? AND at_ms < ?").safeIntegers(true),
    statement: db.prepare<[string, number, number], PostingRow & { amount_fen: number }>(
      `SELECT p.posting_id, p.idempotency_key, p.kind, p.memo, p.actor, p.at_ms, SUM(l.amount_fen) AS amount_fen
         FROM ledger_lines l JOIN ledger_postings p ON p.posting_id = l.posting_id
        WHERE l.account_id = ? AND l.at_ms >= ? AND l.at_ms < ?
        GROUP BY p.posting_id ORDER BY p.at_ms, p.posting_id`,
    ),
    chargeState: db.prepare<[string], { revision: number; state_json: string }>("SELECT revision, state_json FROM ledger_meter_charge_state WHERE meter_id = ?"),
    upsertChargeState: db.prepare(
      `INSERT INTO ledger_meter_charge_state (meter_id, revision, state_json, updated_at_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT (meter_id) DO UPDATE SET revision = excluded.revision, state_json = excluded.state_json, updated_at_ms = excluded.updated_at_ms`,
    ),
  };

  function requireAccount(accountId: string): void {
    if (q.accountById.get(accountId) === undefined) throw new LedgerStoreError(C.UNKNOWN_ACCOUNT, `no account ${accountId}`);
  }

  /** The body of a post, inside a caller's transaction; the entry has passed checkEntry. */
  function postInTransaction(entry: LedgerEntry): PostResult {
    const existing = q.postingByKey.get(entry.idempotencyKey);
    if (existing !== undefined) {
      const stored: LedgerEntry = {
        idempotencyKey: existing.idempotency_key,
        kind: existing.kind as PostingKind,
        memo: existing.memo,
        actor: existing.actor,
        atMs: existing.at_ms,
        lines: q.linesOf.all(existing.posting_id).map((l) => ({ accountId: l.account_id, amountFen: l.amount_fen })),
      };
      if (!sameContent(stored, entry)) {
        throw new LedgerStoreError(C.IDEMPOTENCY_CONFLICT, `${entry.idempotencyKey} was posted as posting ${existing.posting_id} with different content`);
      }
      return { postingId: existing.posting_id, duplicate: true };
    }
    for (const accountId of new Set(entry.lines.map((l) => l.accountId))) requireAccount(accountId);
    const postingId = Number(q.insertPosting.run(entry.idempotencyKey, entry.kind, entry.memo, entry.actor, entry.atMs).lastInsertRowid);
    entry.lines.forEach((line, i) => q.insertLine.run(postingId, i, line.accountId, line.amountFen, entry.atMs));
    q.insertAudit.run(postingId, entry.actor, entry.kind, entry.memo, entry.atMs, now());
    return { postingId, duplicate: false };
  }

  const postTx = db.transaction(postInTransaction);

  const openAccountTx = db.transaction((account: Account): void => {
    const row = q.accountById.get(account.accountId);
    if (row !== undefined) {
      if (!sameAccount(toAccount(row), account)) throw new LedgerStoreError(C.ACCOUNT_CONFLICT, `account ${account.accountId} exists with other fields`);
      return;
    }
    q.insertAccount.run(account.accountId, account.kind, account.villageId, account.householdId ?? null, now());
  });

  const applyChargesTx = db.transaction((meterId: string, input: ApplyChargesInput): ApplyChargesResult => {
    const current = q.chargeState.get(meterId)?.revision ?? 0;
    if (current !== input.expectedRevision) {
      throw new LedgerStoreError(C.CHARGE_STATE_CONFLICT, `meter ${meterId} is at revision ${current}, not ${input.expectedRevision}`);
    }
    const results = input.entries.map(postInTransaction);
    const revision = current + 1;
    q.upsertChargeState.run(meterId, revision, JSON.stringify(input.state), now());
    // Last, and inside this transaction (a batch item's savepoint): a refusal above rolls the days back with the rest.
    // Only the port's fields reach the statement, whatever else the caller's objects carry.
    applyMeterDayDeltas(db, (input.meterDays ?? []).map((d) => ({
      meterId: d.meterId, day: d.day, energyWh: d.energyWh, chargedFen: d.chargedFen, nightWh: d.nightWh, readings: d.readings,
      firstAtMs: d.firstAtMs, lastAtMs: d.lastAtMs, firstRegisterWh: d.firstRegisterWh, lastRegisterWh: d.lastRegisterWh,
    })));
    return { revision, results };
  });

  // better-sqlite3 runs a transaction function called inside another one as a SAVEPOINT: an item that throws rolls
  // back to its savepoint alone, and the outer transaction (one commit, one fsync) carries on with the next item.
  const applyChargesBatchTx = db.transaction((items: readonly ApplyChargesBatchItem[]): ApplyChargesBatchItemResult[] =>
    items.map(({ meterId, input }): ApplyChargesBatchItemResult => {
      try {
        checkApplyChargesInput(meterId, input);
        return { ok: true, ...applyChargesTx(meterId, input) };
      } catch (error) {
        if (error instanceof LedgerStoreError) return { ok: false, error };
        throw error;
      }
    }),
  );

  let closed = false;
  return {
    kind: "sqlite",
    path: options.path,
    openAccount: (account) =>
      settle(() => {
        checkAccount(account);
        openAccountTx.immediate(account);
      }),
    getAccount: (accountId) =>
      settle(() => {
        const row = q.accountById.get(accountId);
        return row === undefined ? undefined : toAccount(row);
      }),
    post: (entry) =>
      settle(() => {
        checkEntry(entry);
        return postTx.immediate(entry);
      }),
    balance: (accountId) =>
      settle(() => {
        requireAccount(accountId);
        return safeFen(q.balance.get(accountId)?.fen ?? null, `the balance of ${accountId}`);
      }),
    statement: (accountId, fromMs, toMs) =>
      settle((): Statement => {
        if (!Number.isSafeInteger(fromMs) || !Number.isSafeInteger(toMs) || fromMs > toMs) {
          throw new LedgerStoreError(C.INVALID_ENTRY, `a statement needs integer fromMs ≤ toMs, got ${fromMs}..${toMs}`);
        }
        // One read transaction: the opening balance and the entries come from the same snapshot.
        return db.transaction(() => {
          requireAccount(accountId);
          const openingBalanceFen = safeFen(q.balanceBefore.get(accountId, fromMs)?.fen ?? null, `the opening balance of ${accountId}`);
          let running = openingBalanceFen;
          const entries = q.statement.all(accountId, fromMs, toMs).map((row): StatementEntry => {
            running += row.amount_fen;
            return {
              postingId: row.posting_id,
              idempotencyKey: row.idempotency_key,
              kind: row.kind as PostingKind,
              atMs: row.at_ms,
              memo: row.memo,
              actor: row.actor,
              amountFen: row.amount_fen,
              balanceAfterFen: running,
            };
          });
          return { accountId, fromMs, toMs, openingBalanceFen, closingBalanceFen: running, entries };
        }).deferred();
      }),
    audit: (postingId) =>
      settle((): AuditRecord | undefined => {
        const row = q.audit.get(postingId);
        if (row === undefined) return undefined;
        return {
          postingId: row.posting_id,
          idempotencyKey: row.idempotency_key,
          kind: row.kind as PostingKind,
          actor: row.actor,
          memo: row.memo,
          atMs: row.at_ms,
          recordedAtMs: row.recorded_at_ms,
        };
      }),
    loadChargeState: (meterId) =>
      settle((): StoredChargeState | undefined => {
        const row = q.chargeState.get(meterId);
        return row === undefined ? undefined : { revision: row.revision, state: JSON.parse(row.state_json) as MeterChargeState };
      }),
    applyCharges: (meterId, input) =>
      settle(() => {
        checkApplyChargesInput(meterId, input);
        return applyChargesTx.immediate(meterId, input);
      }),
    applyChargesBatch: (items) => settle(() => (items.length === 0 ? [] : applyChargesBatchTx.immediate(items))),
    close: () =>
      settle(() => {
        if (closed) return;
        closed = true;
        db.close();
      }),
  };
}
