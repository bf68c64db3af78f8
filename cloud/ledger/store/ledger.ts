// The Ledger port: append-only double-entry bookkeeping in integer fen (ARCHITECTURE.md invariants 1 and 3) plus
// the persistence of the pure charge core's per-meter state (invariant 2's shell duty: state and charge postings in
// one transaction). Every implementation (sqlite-ledger.ts; PostgreSQL later) must pass ledger.contract.ts.
//
// The port is asynchronous although better-sqlite3 is not, so that a PostgreSQL implementation fits the same shape.
// The entry checks below are pure and shared, so every implementation refuses the same entries with the same codes.

import { isLocalDay, localDayOf } from "../../subsidy/local-day.js";
import type { MeterDayDelta } from "../../subsidy/meter-days.js";
import type { MeterChargeState } from "../charges.js";
import { LEDGER_STORE_ERROR_CODES as C, LedgerStoreError } from "./store-errors.js";

export const ACCOUNT_KINDS = [
  "household-prepaid",
  "village-cash",
  "village-subsidy",
  "revenue-electricity",
  "payment-provider",
  "adjustments",
] as const;
export type AccountKind = (typeof ACCOUNT_KINDS)[number];

export interface Account {
  readonly accountId: string;
  readonly kind: AccountKind;
  readonly villageId: string;
  readonly householdId?: string;
}

export const POSTING_KINDS = ["top-up", "charge", "refund", "correction", "subsidy"] as const;
export type PostingKind = (typeof POSTING_KINDS)[number];

export interface PostingLine {
  readonly accountId: string;
  /** Signed fen: the account's balance changes by this much. A non-zero safe integer. */
  readonly amountFen: number;
}

export interface LedgerEntry {
  /** Unique forever: a replay with the same key and content is a no-op; with other content it is refused. */
  readonly idempotencyKey: string;
  readonly kind: PostingKind;
  /** At least two lines, summing to exactly zero. */
  readonly lines: readonly PostingLine[];
  /** Why: shown in statements and the audit trail. */
  readonly memo: string;
  /** Who: a user id, "system:charges", "provider:wechat", … */
  readonly actor: string;
  /** When the fact happened (the reading, the payment), epoch ms. The store records its own clock separately. */
  readonly atMs: number;
}

export interface PostResult {
  readonly postingId: number;
  /** True when this key was posted before with the same content: nothing new was written. */
  readonly duplicate: boolean;
}

export interface StatementEntry {
  readonly postingId: number;
  readonly idempotencyKey: string;
  readonly kind: PostingKind;
  readonly atMs: number;
  readonly memo: string;
  readonly actor: string;
  /** The posting's effect on this account (the sum of its lines for the account). */
  readonly amountFen: number;
  readonly balanceAfterFen: number;
}

export interface Statement {
  readonly accountId: string;
  /** The statement covers postings with fromMs ≤ atMs < toMs, ordered by (atMs, postingId). */
  readonly fromMs: number;
  readonly toMs: number;
  /** Σ lines with atMs < fromMs. */
  readonly openingBalanceFen: number;
  readonly closingBalanceFen: number;
  readonly entries: readonly StatementEntry[];
}

export interface AuditRecord {
  readonly postingId: number;
  readonly idempotencyKey: string;
  /** What: the posting kind. */
  readonly kind: PostingKind;
  /** Who. */
  readonly actor: string;
  /** Why. */
  readonly memo: string;
  /** When it happened, and when the store wrote it (the store's clock). */
  readonly atMs: number;
  readonly recordedAtMs: number;
}

export interface StoredChargeState {
  readonly state: MeterChargeState;
  /** Increases by one at every applyCharges; pass it back as expectedRevision. */
  readonly revision: number;
}

export interface ApplyChargesInput {
  /** The revision loadChargeState returned, or 0 for a meter that has no stored state yet. */
  readonly expectedRevision: number;
  /** chargesFor's new state for this meter. */
  readonly state: MeterChargeState;
  /** The charge postings of that step, mapped to entries (charge-entries.ts). */
  readonly entries: readonly LedgerEntry[];
  /**
   * The step's daily usage of this meter (subsidy/meter-days.ts meterDayDeltas), added to ledger_meter_days in the
   * same transaction as the postings and the state: a refused item adds no day, and a step is counted exactly once
   * because it commits only against the revision it was computed from.
   */
  readonly meterDays?: readonly MeterDayDelta[];
}

export interface ApplyChargesResult {
  readonly revision: number;
  readonly results: readonly PostResult[];
}

export interface ApplyChargesBatchItem {
  readonly meterId: string;
  readonly input: ApplyChargesInput;
}

/** One item's outcome in applyChargesBatch: what applyCharges would have returned, or the error it would have thrown. */
export type ApplyChargesBatchItemResult =
  | ({ readonly ok: true } & ApplyChargesResult)
  | { readonly ok: false; readonly error: LedgerStoreError };

/** In item order: results[i] is the outcome of items[i]. */
export type ApplyChargesBatchResult = readonly ApplyChargesBatchItemResult[];

export interface Ledger {
  /** Idempotent: the same account again is a no-op; the same id with other fields is LEDGER_ACCOUNT_CONFLICT. */
  openAccount(account: Account): Promise<void>;
  getAccount(accountId: string): Promise<Account | undefined>;
  post(entry: LedgerEntry): Promise<PostResult>;
  /** Σ of the account's lines, computed at every call (never stored). LEDGER_UNKNOWN_ACCOUNT if never opened. */
  balance(accountId: string): Promise<number>;
  statement(accountId: string, fromMs: number, toMs: number): Promise<Statement>;
  /** The audit record of every posting, in posting order. */
  audit(postingId: number): Promise<AuditRecord | undefined>;
  loadChargeState(meterId: string): Promise<StoredChargeState | undefined>;
  /**
   * In ONE transaction: check the revision, post every entry (idempotently), store the new state, add the day deltas
   * (meterDays) to the meter's day rows. Any refusal (an unknown account, an idempotency conflict, a stale revision)
   * writes nothing at all, no day either.
   */
  applyCharges(meterId: string, input: ApplyChargesInput): Promise<ApplyChargesResult>;
  /**
   * Many applyCharges in ONE database transaction (one fsync for the whole batch: what lets the ingest keep up with
   * tens of thousands of billing readings a second), each item inside its own savepoint. An item that applyCharges
   * would refuse (stale revision, unknown account, idempotency conflict, invalid entry) is rolled back alone and
   * reported as { ok: false, error }; the others commit. Items are applied in order, so two items for one meter behave
   * exactly as two applyCharges calls one after the other. Rejects only when the batch as a whole could not commit
   * (the database is unreachable, the disk is full): then nothing of it was written.
   */
  applyChargesBatch(items: readonly ApplyChargesBatchItem[]): Promise<ApplyChargesBatchResult>;
  close(): Promise<void>;
}

// ─── shared entry checks ──────────────────────────────────────────────────────────────────────────────────────────

const MAX_KEY_LENGTH = 256;

function invalid(message: string): LedgerStoreError {
  return new LedgerStoreError(C.INVALID_ENTRY, message);
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** U+0000 or a lone surrogate: text that PostgreSQL (and UTF-8 itself) cannot store. */
function unstorable(text: string): boolean {
  return text.includes("\u0000") || LONE_SURROGATE.test(text);
}

/** Throws the typed error for the first thing wrong with an entry; every implementation calls it before writing. */
export function checkEntry(entry: LedgerEntry): void {
  if (typeof entry.idempotencyKey !== "string" || entry.idempotencyKey.length === 0 || entry.idempotencyKey.length > MAX_KEY_LENGTH) {
    throw invalid(`idempotencyKey must be 1..${MAX_KEY_LENGTH} characters`);
  }
  if (!(POSTING_KINDS as readonly string[]).includes(entry.kind)) throw invalid(`unknown posting kind ${String(entry.kind)}`);
  if (typeof entry.actor !== "string" || entry.actor.length === 0) throw invalid("actor must be a non-empty string");
  if (typeof entry.memo !== "string") throw invalid("memo must be a string");
  if (!Number.isSafeInteger(entry.atMs) || entry.atMs < 0) throw invalid(`atMs must be a non-negative integer, got ${entry.atMs}`);
  // PostgreSQL text cannot hold U+0000 nor a lone UTF-16 surrogate; refusing them everywhere keeps the engines
  // interchangeable, and keeps one bad memo from failing a whole batch at the database.
  if ([entry.idempotencyKey, entry.actor, entry.memo].some(unstorable)) throw invalid("idempotencyKey, actor and memo must be valid Unicode without U+0000");
  // Declared before the Array.isArray check, so the check (a guard against untyped callers) does not widen it to any[].
  const lines: readonly PostingLine[] = entry.lines;
  if (!Array.isArray(entry.lines) || lines.length < 2) {
    throw new LedgerStoreError(C.TOO_FEW_LINES, `${entry.idempotencyKey}: a posting needs at least two lines, got ${lines.length}`);
  }
  // BigInt: a sum of safe integers may leave the safe range, and a balanced entry must be exactly zero.
  let sum = 0n;
  for (const line of lines) {
    if (typeof line.accountId !== "string" || line.accountId.length === 0 || unstorable(line.accountId)) throw invalid("every line needs an accountId of valid Unicode without U+0000");
    if (!Number.isSafeInteger(line.amountFen) || line.amountFen === 0) {
      throw new LedgerStoreError(C.NON_INTEGER_AMOUNT, `${entry.idempotencyKey}: amountFen must be a non-zero safe integer, got ${line.amountFen}`);
    }
    sum += BigInt(line.amountFen);
  }
  if (sum !== 0n) throw new LedgerStoreError(C.UNBALANCED, `${entry.idempotencyKey}: lines sum to ${sum} fen, not 0`);
}

function lineOrder(a: PostingLine, b: PostingLine): number {
  return a.accountId < b.accountId ? -1 : a.accountId > b.accountId ? 1 : a.amountFen - b.amountFen;
}

/** Same content: equal kind, memo, actor, atMs and the same lines in any order. */
export function sameContent(a: LedgerEntry, b: LedgerEntry): boolean {
  if (a.kind !== b.kind || a.memo !== b.memo || a.actor !== b.actor || a.atMs !== b.atMs || a.lines.length !== b.lines.length) return false;
  const la = [...a.lines].sort(lineOrder);
  const lb = [...b.lines].sort(lineOrder);
  return la.every((line, i) => line.accountId === lb[i]?.accountId && line.amountFen === lb[i]?.amountFen);
}

/** The checks applyCharges makes before touching the store, shared so every implementation refuses alike. */
export function checkApplyChargesInput(meterId: string, input: ApplyChargesInput): void {
  if (typeof meterId !== "string" || meterId.length === 0 || unstorable(meterId)) throw invalid("meterId must be a non-empty string of valid Unicode without U+0000");
  if (input.state.meterId !== meterId) throw invalid(`the state is for meter ${input.state.meterId}, not ${meterId}`);
  if (!Number.isSafeInteger(input.expectedRevision) || input.expectedRevision < 0) {
    throw invalid(`expectedRevision must be a non-negative integer, got ${input.expectedRevision}`);
  }
  input.entries.forEach(checkEntry);
  if (input.meterDays !== undefined) {
    // Declared first, so the guard against untyped callers does not widen it to any[] (as in checkEntry).
    const days: readonly MeterDayDelta[] = input.meterDays;
    if (!Array.isArray(input.meterDays)) throw invalid("meterDays must be an array");
    for (const day of days) checkMeterDay(meterId, day);
  }
}

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;

/**
 * Everything the day table's CHECKs would refuse, refused here first with the port's code: on PostgreSQL a CHECK
 * violation inside the batch function is not a per-item refusal and would abort the whole batch.
 */
function checkMeterDay(meterId: string, d: MeterDayDelta): void {
  if (typeof d !== "object" || d === null) throw invalid("every meterDays item must be an object");
  const what = `meter day ${String(d.day)} of ${String(d.meterId)}`;
  if (d.meterId !== meterId) throw invalid(`${what} is not for meter ${meterId}`);
  if (typeof d.day !== "string" || !isLocalDay(d.day)) throw invalid(`${what}: day must be a calendar day YYYY-MM-DD`);
  const counts = { energyWh: d.energyWh, chargedFen: d.chargedFen, nightWh: d.nightWh, readings: d.readings, firstAtMs: d.firstAtMs, lastAtMs: d.lastAtMs, firstRegisterWh: d.firstRegisterWh, lastRegisterWh: d.lastRegisterWh };
  for (const [field, value] of Object.entries(counts)) {
    if (!isCount(value)) throw invalid(`${what}: ${field} must be a non-negative integer, got ${String(value)}`);
  }
  if (d.nightWh > d.energyWh) throw invalid(`${what}: nightWh ${d.nightWh} exceeds energyWh ${d.energyWh}`);
  if (d.firstAtMs > d.lastAtMs) throw invalid(`${what}: firstAtMs is after lastAtMs`);
  if (localDayOf(d.firstAtMs) !== d.day || localDayOf(d.lastAtMs) !== d.day) throw invalid(`${what}: its readings were not taken that local day`);
  // The row's own invariant (meter-days.ts): its energy is the count it moved.
  if (d.lastRegisterWh - d.firstRegisterWh !== d.energyWh) throw invalid(`${what}: energyWh ${d.energyWh} is not lastRegisterWh − firstRegisterWh`);
}

export function checkAccount(account: Account): void {
  if (typeof account.accountId !== "string" || account.accountId.length === 0) throw invalid("accountId must be a non-empty string");
  if (!(ACCOUNT_KINDS as readonly string[]).includes(account.kind)) throw invalid(`unknown account kind ${String(account.kind)}`);
  if (typeof account.villageId !== "string" || account.villageId.length === 0) throw invalid("villageId must be a non-empty string");
}

export function sameAccount(a: Account, b: Account): boolean {
  return a.accountId === b.accountId && a.kind === b.kind && a.villageId === b.villageId && a.householdId === b.householdId;
}
