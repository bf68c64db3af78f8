// The subsidy's own tables on SQLite: versioned programme policies, statements (with the exact policy each was
// settled under), their lines, the step log (who did what, when and why — every workflow step), objections raised
// during the public notice, and payments. Immutability is enforced by the database, not only by the code: triggers
// refuse any change to a policy version, to a line once its statement is approved, to a statement's content once it
// is published, and any change or delete of a step, objection, payment or chosen payment method.

import type Database from "better-sqlite3";
import { SUBSIDY_ERROR_CODES as C, SubsidyError } from "./errors.js";
import { subsidyPolicySchema, type SubsidyPolicy } from "./policy.js";
import type { StatementLine } from "./settle.js";
import type { StatementStatus, StepAction } from "./workflow.js";

export const SUBSIDY_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS subsidy_policies (
  village_id    TEXT    NOT NULL,
  programme_id  TEXT    NOT NULL,
  version       INTEGER NOT NULL CHECK (version >= 1),
  policy_json   TEXT    NOT NULL,
  created_by    TEXT    NOT NULL,
  created_at_ms INTEGER NOT NULL,
  PRIMARY KEY (village_id, programme_id, version)
) STRICT;
CREATE TRIGGER IF NOT EXISTS subsidy_policies_no_update BEFORE UPDATE ON subsidy_policies
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: a policy version never changes; add the next version'); END;
CREATE TRIGGER IF NOT EXISTS subsidy_policies_no_delete BEFORE DELETE ON subsidy_policies
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: a policy version is kept forever'); END;

CREATE TABLE IF NOT EXISTS subsidy_statements (
  statement_id          TEXT    PRIMARY KEY,
  village_id            TEXT    NOT NULL,
  programme_id          TEXT    NOT NULL,
  policy_version        INTEGER NOT NULL,
  policy_json           TEXT    NOT NULL,
  season_id             TEXT    NOT NULL,
  from_day              TEXT    NOT NULL,
  to_day                TEXT    NOT NULL,
  status                TEXT    NOT NULL CHECK (status IN ('draft', 'reviewed', 'approved', 'published', 'paid', 'closed')),
  approved_by_json      TEXT    NOT NULL DEFAULT '[]',
  corrects_statement_id TEXT    REFERENCES subsidy_statements (statement_id),
  total_fen             INTEGER NOT NULL CHECK (total_fen >= 0),
  created_by            TEXT    NOT NULL,
  created_at_ms         INTEGER NOT NULL,
  published_at_ms       INTEGER,
  notice_until_ms       INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS subsidy_statements_by_season ON subsidy_statements (village_id, programme_id, season_id);
CREATE TRIGGER IF NOT EXISTS subsidy_statements_published_frozen BEFORE UPDATE ON subsidy_statements
WHEN OLD.status IN ('published', 'paid', 'closed') AND (
  NEW.total_fen IS NOT OLD.total_fen OR NEW.policy_json IS NOT OLD.policy_json OR NEW.from_day IS NOT OLD.from_day OR
  NEW.to_day IS NOT OLD.to_day OR NEW.season_id IS NOT OLD.season_id OR NEW.approved_by_json IS NOT OLD.approved_by_json OR
  NEW.published_at_ms IS NOT OLD.published_at_ms OR NEW.notice_until_ms IS NOT OLD.notice_until_ms OR
  NEW.status NOT IN ('published', 'paid', 'closed'))
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: a published statement never changes; issue a correcting statement'); END;
CREATE TRIGGER IF NOT EXISTS subsidy_statements_no_delete BEFORE DELETE ON subsidy_statements
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: statements are kept forever'); END;

CREATE TABLE IF NOT EXISTS subsidy_lines (
  statement_id    TEXT    NOT NULL REFERENCES subsidy_statements (statement_id),
  line_no         INTEGER NOT NULL,
  household_id    TEXT    NOT NULL,
  plot_id         TEXT    NOT NULL,
  line_json       TEXT    NOT NULL,
  refund_fen      INTEGER NOT NULL CHECK (refund_fen >= 0),
  resolved_by     TEXT,
  resolved_reason TEXT,
  PRIMARY KEY (statement_id, line_no)
) STRICT;
CREATE INDEX IF NOT EXISTS subsidy_lines_by_household ON subsidy_lines (household_id);
CREATE TRIGGER IF NOT EXISTS subsidy_lines_frozen BEFORE UPDATE ON subsidy_lines
WHEN (SELECT status FROM subsidy_statements WHERE statement_id = OLD.statement_id) <> 'draft'
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: lines change only while the statement is a draft'); END;
CREATE TRIGGER IF NOT EXISTS subsidy_lines_no_delete BEFORE DELETE ON subsidy_lines
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: lines are kept forever'); END;

CREATE TABLE IF NOT EXISTS subsidy_steps (
  step_id      INTEGER PRIMARY KEY,
  statement_id TEXT    NOT NULL REFERENCES subsidy_statements (statement_id),
  action       TEXT    NOT NULL,
  actor        TEXT    NOT NULL,
  at_ms        INTEGER NOT NULL,
  reason       TEXT    NOT NULL,
  detail_json  TEXT    NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS subsidy_steps_by_statement ON subsidy_steps (statement_id, step_id);
CREATE TRIGGER IF NOT EXISTS subsidy_steps_no_update BEFORE UPDATE ON subsidy_steps
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: the step log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS subsidy_steps_no_delete BEFORE DELETE ON subsidy_steps
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: the step log is append-only'); END;

CREATE TABLE IF NOT EXISTS subsidy_objections (
  objection_id  INTEGER PRIMARY KEY,
  statement_id  TEXT    NOT NULL REFERENCES subsidy_statements (statement_id),
  household_id  TEXT,
  raised_by     TEXT    NOT NULL,
  at_ms         INTEGER NOT NULL,
  text          TEXT    NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS subsidy_payments (
  statement_id  TEXT    NOT NULL REFERENCES subsidy_statements (statement_id),
  household_id  TEXT    NOT NULL,
  plot_id       TEXT    NOT NULL,
  method        TEXT    NOT NULL CHECK (method IN ('prepaid', 'cash')),
  amount_fen    INTEGER NOT NULL,
  posting_id    INTEGER NOT NULL,
  at_ms         INTEGER NOT NULL,
  PRIMARY KEY (statement_id, household_id, plot_id)
) STRICT;
-- How each household of a statement is paid, fixed by the first pay request before anything is posted: the payee is
-- part of a posting's content, so a retried pay must post to the same payee under the same key.
CREATE TABLE IF NOT EXISTS subsidy_payment_methods (
  statement_id  TEXT    NOT NULL REFERENCES subsidy_statements (statement_id),
  household_id  TEXT    NOT NULL,
  method        TEXT    NOT NULL CHECK (method IN ('prepaid', 'cash')),
  chosen_by     TEXT    NOT NULL,
  at_ms         INTEGER NOT NULL,
  PRIMARY KEY (statement_id, household_id)
) STRICT;
CREATE TRIGGER IF NOT EXISTS subsidy_payment_methods_no_update BEFORE UPDATE ON subsidy_payment_methods
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: a payment method, once chosen, never changes'); END;
CREATE TRIGGER IF NOT EXISTS subsidy_payment_methods_no_delete BEFORE DELETE ON subsidy_payment_methods
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: a payment method, once chosen, is kept'); END;
CREATE TRIGGER IF NOT EXISTS subsidy_objections_no_update BEFORE UPDATE ON subsidy_objections
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: objections are append-only'); END;
CREATE TRIGGER IF NOT EXISTS subsidy_objections_no_delete BEFORE DELETE ON subsidy_objections
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: objections are append-only'); END;
CREATE TRIGGER IF NOT EXISTS subsidy_payments_no_update BEFORE UPDATE ON subsidy_payments
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: payments are append-only'); END;
CREATE TRIGGER IF NOT EXISTS subsidy_payments_no_delete BEFORE DELETE ON subsidy_payments
BEGIN SELECT RAISE(ABORT, 'SUBSIDY_STATEMENT_IMMUTABLE: payments are append-only'); END;
`;

export interface StatementRecord {
  readonly statementId: string;
  readonly villageId: string;
  readonly programmeId: string;
  readonly policy: SubsidyPolicy;
  readonly seasonId: string;
  readonly fromDay: string;
  readonly toDay: string;
  readonly status: StatementStatus;
  readonly approvedBy: readonly string[];
  readonly correctsStatementId?: string;
  readonly totalFen: number;
  readonly createdBy: string;
  readonly createdAtMs: number;
  readonly publishedAtMs?: number;
  readonly noticeUntilMs?: number;
}

export interface StoredLine {
  readonly line: StatementLine;
  readonly refundFen: number;
  readonly resolvedBy?: string;
  readonly resolvedReason?: string;
}

export interface StepRecord {
  readonly stepId: number;
  readonly statementId: string;
  readonly action: StepAction;
  readonly actor: string;
  readonly atMs: number;
  readonly reason: string;
  readonly detail: unknown;
}

export interface ObjectionRecord {
  readonly objectionId: number;
  readonly statementId: string;
  readonly householdId?: string;
  readonly raisedBy: string;
  readonly atMs: number;
  readonly text: string;
}

export interface PaymentRecord {
  readonly statementId: string;
  readonly householdId: string;
  readonly plotId: string;
  readonly method: "prepaid" | "cash";
  readonly amountFen: number;
  readonly postingId: number;
  readonly atMs: number;
}

interface StatementRow {
  statement_id: string;
  village_id: string;
  programme_id: string;
  policy_json: string;
  season_id: string;
  from_day: string;
  to_day: string;
  status: StatementStatus;
  approved_by_json: string;
  corrects_statement_id: string | null;
  total_fen: number;
  created_by: string;
  created_at_ms: number;
  published_at_ms: number | null;
  notice_until_ms: number | null;
}

function toStatement(r: StatementRow): StatementRecord {
  return {
    statementId: r.statement_id,
    villageId: r.village_id,
    programmeId: r.programme_id,
    policy: subsidyPolicySchema.parse(JSON.parse(r.policy_json)),
    seasonId: r.season_id,
    fromDay: r.from_day,
    toDay: r.to_day,
    status: r.status,
    approvedBy: JSON.parse(r.approved_by_json) as string[],
    ...(r.corrects_statement_id === null ? {} : { correctsStatementId: r.corrects_statement_id }),
    totalFen: r.total_fen,
    createdBy: r.created_by,
    createdAtMs: r.created_at_ms,
    ...(r.published_at_ms === null ? {} : { publishedAtMs: r.published_at_ms }),
    ...(r.notice_until_ms === null ? {} : { noticeUntilMs: r.notice_until_ms }),
  };
}

/** Turns the triggers' RAISE into the typed error. */
function guarded<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("SUBSIDY_STATEMENT_IMMUTABLE")) throw new SubsidyError(C.IMMUTABLE, error.message);
    throw error;
  }
}

export type SubsidyStore = ReturnType<typeof openSubsidyStore>;

/** The store on `db` (its tables are applied here, idempotently; they may share the ledger's or registry's file). */
export function openSubsidyStore(db: Database.Database) {
  db.exec(SUBSIDY_SCHEMA_SQL);
  const q = {
    policies: db.prepare<[string, string], { policy_json: string }>("SELECT policy_json FROM subsidy_policies WHERE village_id = ? AND programme_id = ? ORDER BY version"),
    statement: db.prepare<[string], StatementRow>("SELECT * FROM subsidy_statements WHERE statement_id = ?"),
    lines: db.prepare<[string], { line_json: string; refund_fen: number; resolved_by: string | null; resolved_reason: string | null }>(
      "SELECT line_json, refund_fen, resolved_by, resolved_reason FROM subsidy_lines WHERE statement_id = ? ORDER BY line_no",
    ),
  };
  const store = {
    db,
    addPolicy(policy: SubsidyPolicy, createdBy: string, atMs: number): void {
      const existing = store.policies(policy.villageId, policy.programmeId);
      const last = existing.at(-1);
      if (last !== undefined && policy.version <= last.version) {
        throw new SubsidyError(C.POLICY_EXISTS, `${policy.programmeId} is at version ${last.version}; a new version must be higher (versions never change)`);
      }
      db.prepare("INSERT INTO subsidy_policies (village_id, programme_id, version, policy_json, created_by, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)").run(
        policy.villageId,
        policy.programmeId,
        policy.version,
        JSON.stringify(policy),
        createdBy,
        atMs,
      );
    },
    policies: (villageId: string, programmeId: string): SubsidyPolicy[] => q.policies.all(villageId, programmeId).map((r) => subsidyPolicySchema.parse(JSON.parse(r.policy_json))),
    insertStatement(s: StatementRecord, lines: readonly StatementLine[]): void {
      const insertLine = db.prepare("INSERT INTO subsidy_lines (statement_id, line_no, household_id, plot_id, line_json, refund_fen) VALUES (?, ?, ?, ?, ?, ?)");
      db.prepare(
        `INSERT INTO subsidy_statements (statement_id, village_id, programme_id, policy_version, policy_json, season_id, from_day, to_day, status,
           corrects_statement_id, total_fen, created_by, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(s.statementId, s.villageId, s.programmeId, s.policy.version, JSON.stringify(s.policy), s.seasonId, s.fromDay, s.toDay, s.status, s.correctsStatementId ?? null, s.totalFen, s.createdBy, s.createdAtMs);
      for (const l of lines) insertLine.run(s.statementId, l.lineNo, l.householdId, l.plotId, JSON.stringify(l), l.refundFen);
    },
    getStatement(statementId: string): StatementRecord | undefined {
      const r = q.statement.get(statementId);
      return r === undefined ? undefined : toStatement(r);
    },
    requireStatement(statementId: string): StatementRecord {
      const s = store.getStatement(statementId);
      if (s === undefined) throw new SubsidyError(C.UNKNOWN, `no statement ${statementId}`);
      return s;
    },
    statementsOf(villageId: string): StatementRecord[] {
      return db.prepare<[string], StatementRow>("SELECT * FROM subsidy_statements WHERE village_id = ? ORDER BY created_at_ms, statement_id").all(villageId).map(toStatement);
    },
    lines(statementId: string): StoredLine[] {
      return q.lines.all(statementId).map((r) => ({
        line: JSON.parse(r.line_json) as StatementLine,
        refundFen: r.refund_fen,
        ...(r.resolved_by === null ? {} : { resolvedBy: r.resolved_by }),
        ...(r.resolved_reason === null ? {} : { resolvedReason: r.resolved_reason }),
      }));
    },
    /** Lines of one household across the statements of its village, newest statement last. */
    linesOfHousehold(householdId: string): { statementId: string; stored: StoredLine }[] {
      return db
        .prepare<[string], { statement_id: string; line_json: string; refund_fen: number; resolved_by: string | null; resolved_reason: string | null }>(
          `SELECT l.statement_id, l.line_json, l.refund_fen, l.resolved_by, l.resolved_reason FROM subsidy_lines l
             JOIN subsidy_statements s ON s.statement_id = l.statement_id WHERE l.household_id = ? ORDER BY s.created_at_ms, l.statement_id, l.line_no`,
        )
        .all(householdId)
        .map((r) => ({
          statementId: r.statement_id,
          stored: {
            line: JSON.parse(r.line_json) as StatementLine,
            refundFen: r.refund_fen,
            ...(r.resolved_by === null ? {} : { resolvedBy: r.resolved_by }),
            ...(r.resolved_reason === null ? {} : { resolvedReason: r.resolved_reason }),
          },
        }));
    },
    setLineRefund(statementId: string, lineNo: number, refundFen: number, by: string, reason: string): void {
      guarded(() => {
        db.prepare("UPDATE subsidy_lines SET refund_fen = ?, resolved_by = ?, resolved_reason = ? WHERE statement_id = ? AND line_no = ?").run(refundFen, by, reason, statementId, lineNo);
        db.prepare("UPDATE subsidy_statements SET total_fen = (SELECT coalesce(sum(refund_fen), 0) FROM subsidy_lines WHERE statement_id = ?) WHERE statement_id = ?").run(statementId, statementId);
      });
    },
    setStatus(statementId: string, status: StatementStatus, approvedBy: readonly string[], publishedAtMs: number | undefined, noticeUntilMs: number | undefined): void {
      guarded(() =>
        db
          .prepare("UPDATE subsidy_statements SET status = ?, approved_by_json = ?, published_at_ms = ?, notice_until_ms = ? WHERE statement_id = ?")
          .run(status, JSON.stringify(approvedBy), publishedAtMs ?? null, noticeUntilMs ?? null, statementId),
      );
    },
    addStep(statementId: string, action: StepAction, actor: string, atMs: number, reason: string, detail: unknown): void {
      db.prepare("INSERT INTO subsidy_steps (statement_id, action, actor, at_ms, reason, detail_json) VALUES (?, ?, ?, ?, ?, ?)").run(statementId, action, actor, atMs, reason, JSON.stringify(detail ?? null));
    },
    steps(statementId: string): StepRecord[] {
      return db
        .prepare<[string], { step_id: number; statement_id: string; action: StepAction; actor: string; at_ms: number; reason: string; detail_json: string }>(
          "SELECT * FROM subsidy_steps WHERE statement_id = ? ORDER BY step_id",
        )
        .all(statementId)
        .map((r) => ({ stepId: r.step_id, statementId: r.statement_id, action: r.action, actor: r.actor, atMs: r.at_ms, reason: r.reason, detail: JSON.parse(r.detail_json) as unknown }));
    },
    addObjection(statementId: string, householdId: string | undefined, raisedBy: string, atMs: number, text: string): number {
      return Number(db.prepare("INSERT INTO subsidy_objections (statement_id, household_id, raised_by, at_ms, text) VALUES (?, ?, ?, ?, ?)").run(statementId, householdId ?? null, raisedBy, atMs, text).lastInsertRowid);
    },
    objections(statementId: string): ObjectionRecord[] {
      return db
        .prepare<[string], { objection_id: number; statement_id: string; household_id: string | null; raised_by: string; at_ms: number; text: string }>(
          "SELECT * FROM subsidy_objections WHERE statement_id = ? ORDER BY objection_id",
        )
        .all(statementId)
        .map((r) => ({ objectionId: r.objection_id, statementId: r.statement_id, ...(r.household_id === null ? {} : { householdId: r.household_id }), raisedBy: r.raised_by, atMs: r.at_ms, text: r.text }));
    },
    recordPayment(p: PaymentRecord): void {
      db.prepare("INSERT INTO subsidy_payments (statement_id, household_id, plot_id, method, amount_fen, posting_id, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING").run(
        p.statementId,
        p.householdId,
        p.plotId,
        p.method,
        p.amountFen,
        p.postingId,
        p.atMs,
      );
    },
    /** The payment method per household of a statement, as the first pay request fixed it (empty before). */
    paymentMethods(statementId: string): Map<string, "prepaid" | "cash"> {
      const rows = db
        .prepare<[string], { household_id: string; method: "prepaid" | "cash" }>("SELECT household_id, method FROM subsidy_payment_methods WHERE statement_id = ? ORDER BY household_id")
        .all(statementId);
      return new Map(rows.map((r) => [r.household_id, r.method]));
    },
    setPaymentMethods(statementId: string, methods: ReadonlyMap<string, "prepaid" | "cash">, chosenBy: string, atMs: number): void {
      const insert = db.prepare("INSERT INTO subsidy_payment_methods (statement_id, household_id, method, chosen_by, at_ms) VALUES (?, ?, ?, ?, ?)");
      for (const [householdId, method] of methods) insert.run(statementId, householdId, method, chosenBy, atMs);
    },
    payments(statementId: string): PaymentRecord[] {
      return db
        .prepare<[string], { statement_id: string; household_id: string; plot_id: string; method: "prepaid" | "cash"; amount_fen: number; posting_id: number; at_ms: number }>(
          "SELECT * FROM subsidy_payments WHERE statement_id = ? ORDER BY household_id, plot_id",
        )
        .all(statementId)
        .map((r) => ({ statementId: r.statement_id, householdId: r.household_id, plotId: r.plot_id, method: r.method, amountFen: r.amount_fen, postingId: r.posting_id, atMs: r.at_ms }));
    },
    /**
     * What counts as already refunded for a season: "householdId/plotId" → refund of the standing statement, where a
     * standing statement is published (or later) and not corrected by another published one. `except` (a statement
     * being corrected) is left out, so its correction can settle the same lines again.
     */
    standingRefunds(villageId: string, programmeId: string, seasonId: string, except?: string): Map<string, { statementId: string; refundFen: number }> {
      const rows = db
        .prepare<[string, string, string], { statement_id: string; corrects_statement_id: string | null; household_id: string; plot_id: string; refund_fen: number }>(
          `SELECT s.statement_id, s.corrects_statement_id, l.household_id, l.plot_id, l.refund_fen FROM subsidy_statements s
             JOIN subsidy_lines l ON l.statement_id = s.statement_id
             WHERE s.village_id = ? AND s.programme_id = ? AND s.season_id = ? AND s.status IN ('published', 'paid', 'closed')
             ORDER BY s.published_at_ms, s.statement_id`,
        )
        .all(villageId, programmeId, seasonId);
      const corrected = new Set(rows.map((r) => r.corrects_statement_id).filter((x): x is string => x !== null));
      const result = new Map<string, { statementId: string; refundFen: number }>();
      for (const r of rows) {
        if (corrected.has(r.statement_id) || r.statement_id === except) continue;
        result.set(`${r.household_id}/${r.plot_id}`, { statementId: r.statement_id, refundFen: r.refund_fen });
      }
      return result;
    },
    transaction<T>(run: () => T): T {
      return db.transaction(run).immediate();
    },
  };
  return store;
}
