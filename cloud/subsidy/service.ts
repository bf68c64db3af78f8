// The subsidy shell: drafts a statement for a village and season (registry land + the ledger's daily usage + meter
// flags → settle()), runs the workflow steps (workflow.ts) with every step in the store's step log, and pays a
// published statement through the Ledger port once its notice has run. Paying is idempotent: each household × plot
// is one posting with key subsidy/<statementId>/<householdId>/<plotId> and content fixed by the statement (its
// atMs is the end of the notice, its actor "system:subsidy"), so paying again — after a crash half way, or twice —
// posts nothing twice. A correcting statement pays only the difference against what the statement it corrects paid
// (a negative difference is a reversing posting), so a household × plot × season is refunded at most once. That
// holds because a season's published statements form one chain: publishing is refused unless the statement is the
// first of its village × programme × season or corrects the chain's last link, checked inside the publish
// transaction, and a statement gets at most one correction. How each household is paid (cash or prepaid) is fixed by
// the first pay request, since the payee is part of a posting's content and a retry must post the same content.

import { householdAccountId, openHouseholdAccount, villageCashAccountId } from "../prepaid/accounts.js";
import type { Ledger, LedgerEntry } from "../ledger/store/ledger.js";
import { SUBSIDY_ERROR_CODES as C, SubsidyError } from "./errors.js";
import type { MeterFlagSource } from "./meter-flags.js";
import { subsidyPolicySchema, type SubsidyPolicy, type SubsidyPolicyInput } from "./policy.js";
import { runBoundaries, settle, statementTotalFen, type SettlementPeriod, type StatementLine } from "./settle.js";
import type { PaymentRecord, StatementRecord, SubsidyStore } from "./store.js";
import type { MeterUsage, UsageSource } from "./usage-source.js";
import type { VillageLand } from "./village-land.js";
import { workflowStep, type StepAction, type WorkflowAction, type WorkflowState } from "./workflow.js";
import type { AuditEntryInput, AuditLog } from "../audit/audit-log.js";
import { dayStartMs } from "./local-day.js";
import { fenToYuan } from "../../protocols/units.js";

export const SUBSIDY_ACTOR = "system:subsidy";
export const villageSubsidyAccountId = (villageId: string): string => `village:${villageId}:subsidy`;
export const subsidyIdempotencyKey = (statementId: string, householdId: string, plotId: string): string => `subsidy/${statementId}/${householdId}/${plotId}`;

export interface SubsidyDeps {
  readonly store: SubsidyStore;
  readonly land: VillageLand;
  readonly usage: UsageSource;
  readonly flags: MeterFlagSource;
  readonly ledger: Ledger;
  readonly now: () => number;
  readonly newId: () => string;
  /** The cloud's audit log; every workflow step is recorded there as subsidy.<action> as well as in the step log. */
  readonly audit?: Pick<AuditLog, "record">;
}

export interface DraftRequest {
  readonly villageId: string;
  readonly programmeId: string;
  readonly seasonId: string;
  /** Default: the season's window. */
  readonly fromDay?: string;
  readonly toDay?: string;
  readonly correctsStatementId?: string;
  readonly actor: string;
  readonly reason?: string;
}

export interface PayRequest {
  readonly actor: string;
  /**
   * Households paid in cash (a recorded payout from the village cash box); the rest into their prepaid accounts. The
   * first pay request fixes it for the statement; a later one may leave it out or repeat it, not change it.
   */
  readonly cashHouseholdIds?: readonly string[];
}

export type SubsidyService = ReturnType<typeof subsidyService>;

function invalid(message: string): SubsidyError {
  return new SubsidyError(C.INVALID, message);
}

const SETTLED_STATUSES: readonly string[] = ["published", "paid", "closed"];
type PaymentMethod = "prepaid" | "cash";

export function subsidyService(deps: SubsidyDeps) {
  const { store, land, ledger } = deps;

  function latestPolicy(villageId: string, programmeId: string): SubsidyPolicy {
    const policy = store.policies(villageId, programmeId).at(-1);
    if (policy === undefined) throw new SubsidyError(C.UNKNOWN, `village ${villageId} has no subsidy programme ${programmeId}`);
    return policy;
  }

  /**
   * Every step goes to the statement's own step log, in the step's transaction; when the cloud's audit log
   * (cloud/audit) is given, to it too, once that transaction has committed (`audited`): the audit log may be another
   * engine (PostgreSQL) than the statement store, so it cannot join the transaction. If that write fails the request
   * fails and says so; the statement's own step log still holds the step.
   */
  const pendingAudit: AuditEntryInput[] = [];
  function logStep(s: Pick<StatementRecord, "statementId" | "villageId">, action: StepAction, actor: string, atMs: number, reason: string, detail: unknown): void {
    store.addStep(s.statementId, action, actor, atMs, reason, detail);
    if (deps.audit !== undefined) pendingAudit.push({ actor, action: `subsidy.${action}`, entityType: "subsidy-statement", entityId: s.statementId, villageId: s.villageId, reason: reason.slice(0, 2000), after: detail, atMs });
  }

  /** Runs one synchronous store transaction (which logs its steps), then copies those steps to the audit log. */
  async function audited<T>(work: () => T): Promise<T> {
    pendingAudit.length = 0;
    let result: T;
    try {
      result = work();
    } catch (error) {
      pendingAudit.length = 0;
      throw error;
    }
    for (const entry of pendingAudit.splice(0)) await deps.audit?.record(entry);
    return result;
  }

  function stateOf(s: StatementRecord): WorkflowState {
    const unresolvedLines = store.lines(s.statementId).filter((l) => l.line.status === "flagged" && l.resolvedBy === undefined).length;
    return { status: s.status, approvedBy: s.approvedBy, unresolvedLines, ...(s.noticeUntilMs === undefined ? {} : { noticeUntilMs: s.noticeUntilMs }) };
  }

  /** One workflow step, in one transaction with its log entry; `guard` refuses it from inside that transaction. */
  function step(statementId: string, action: WorkflowAction, actor: string, reason: string, detail?: unknown, guard?: (s: StatementRecord) => void): Promise<StatementRecord> {
    const nowMs = deps.now();
    return audited(() => store.transaction(() => {
      const s = store.requireStatement(statementId);
      const next = workflowStep(stateOf(s), action, actor, nowMs);
      guard?.(s);
      const publishedAtMs = action.action === "publish" ? nowMs : s.publishedAtMs;
      store.setStatus(statementId, next.status, next.approvedBy, publishedAtMs, next.noticeUntilMs);
      logStep(s, action.action, actor, nowMs, reason, detail ?? { status: next.status });
      return store.requireStatement(statementId);
    }));
  }

  async function readUsage(meterIds: readonly string[], fromDay: string, toDay: string, boundaries: readonly string[]): Promise<Map<string, MeterUsage>> {
    const usage = new Map<string, MeterUsage>();
    for await (const u of deps.usage.usageOf(meterIds, fromDay, toDay, boundaries)) usage.set(u.meterId, u);
    return usage;
  }

  /** The other statements of s's village, programme and season. */
  function seasonSiblings(s: Pick<StatementRecord, "statementId" | "villageId" | "programmeId" | "seasonId">): StatementRecord[] {
    return store.statementsOf(s.villageId).filter((x) => x.programmeId === s.programmeId && x.seasonId === s.seasonId && x.statementId !== s.statementId);
  }

  /** A statement is corrected at most once: a second correction would pay "refund − what the original paid" again. */
  function refuseSecondCorrection(correctsStatementId: string, villageId: string): void {
    const other = store.statementsOf(villageId).find((x) => x.correctsStatementId === correctsStatementId);
    if (other === undefined) return;
    const next = SETTLED_STATUSES.includes(other.status) ? `correct ${other.statementId} instead` : `finish or adjust that one`;
    throw new SubsidyError(C.CORRECTION_EXISTS, `${correctsStatementId} already has a correction, ${other.statementId} (${other.status}); ${next}`);
  }

  /**
   * Run inside the publish transaction: the season's published statements must stay one chain, so s is either the
   * first published one or corrects the chain's last link (a statement no published statement corrects yet).
   */
  function refuseSecondPublication(s: StatementRecord): void {
    const published = seasonSiblings(s).filter((x) => SETTLED_STATUSES.includes(x.status));
    if (s.correctsStatementId !== undefined) {
      const target = s.correctsStatementId;
      const rival = published.find((x) => x.correctsStatementId === target);
      if (rival !== undefined) throw new SubsidyError(C.CORRECTION_EXISTS, `${target} was already corrected by ${rival.statementId}, which is ${rival.status}; correct ${rival.statementId} instead`);
    }
    const replaced = new Set(published.map((x) => x.correctsStatementId));
    const standing = published.filter((x) => !replaced.has(x.statementId) && x.statementId !== s.correctsStatementId);
    if (standing.length > 0) {
      const ids = standing.map((x) => x.statementId).join(", ");
      throw new SubsidyError(
        C.SEASON_PUBLISHED,
        `${s.villageId} already has ${ids} published for ${s.programmeId} season ${s.seasonId}; a season is paid once, so a change is a correcting statement of ${standing[0]!.statementId}`,
      );
    }
  }

  /**
   * The payment method per household of s: fixed by the first pay request (in one transaction, before anything is
   * posted), then reused, so a retry posts the same payee under the same key. A later request may leave the cash list
   * out or repeat it; a different list is refused rather than silently ignored.
   */
  function fixPaymentMethods(s: StatementRecord, req: PayRequest): Map<string, PaymentMethod> {
    const households = [...new Set(store.lines(s.statementId).map((l) => l.line.householdId))].sort();
    const requested = req.cashHouseholdIds === undefined ? undefined : new Set(req.cashHouseholdIds);
    const strangers = [...(requested ?? [])].filter((h) => !households.includes(h));
    if (strangers.length > 0) throw invalid(`cashHouseholdIds: ${strangers.join(", ")} ${strangers.length === 1 ? "has" : "have"} no line on statement ${s.statementId}`);
    return store.transaction(() => {
      const stored = store.paymentMethods(s.statementId);
      if (stored.size === 0) {
        const chosen = new Map(households.map((h): [string, PaymentMethod] => [h, requested?.has(h) === true ? "cash" : "prepaid"]));
        store.setPaymentMethods(s.statementId, chosen, req.actor, deps.now());
        return chosen;
      }
      const storedCash = [...stored].filter(([, m]) => m === "cash").map(([h]) => h);
      if (requested !== undefined && (storedCash.length !== requested.size || storedCash.some((h) => !requested.has(h)))) {
        throw new SubsidyError(
          C.PAYMENT_METHOD_FIXED,
          `${s.statementId}'s first pay request chose cash for [${storedCash.join(", ")}] and prepaid accounts for the rest; a payment method never changes, so retry with that list or with none`,
        );
      }
      return stored;
    });
  }

  /** What the chain of statements this one corrects has paid, per "householdId/plotId" (their payments add up). */
  function paidBefore(s: StatementRecord): Map<string, number> {
    const paid = new Map<string, number>();
    let id = s.correctsStatementId;
    while (id !== undefined) {
      for (const p of store.payments(id)) paid.set(`${p.householdId}/${p.plotId}`, (paid.get(`${p.householdId}/${p.plotId}`) ?? 0) + p.amountFen);
      id = store.requireStatement(id).correctsStatementId;
    }
    return paid;
  }

  return {
    store,
    async addPolicy(input: SubsidyPolicyInput, actor: string): Promise<SubsidyPolicy> {
      const parsed = subsidyPolicySchema.safeParse(input);
      if (!parsed.success) throw invalid(`policy: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      if ((await land.villageName(parsed.data.villageId)) === undefined) throw new SubsidyError(C.UNKNOWN, `no village ${parsed.data.villageId}`);
      store.addPolicy(parsed.data, actor, deps.now());
      return parsed.data;
    },

    async draft(req: DraftRequest): Promise<{ statement: StatementRecord; lines: StatementLine[] }> {
      const policy = latestPolicy(req.villageId, req.programmeId);
      const season = policy.policy.seasons.find((s) => s.seasonId === req.seasonId);
      if (season === undefined) throw invalid(`programme ${req.programmeId}@v${policy.version} has no season ${req.seasonId}`);
      const period: SettlementPeriod = { villageId: req.villageId, seasonId: req.seasonId, fromDay: req.fromDay ?? season.fromDay, toDay: req.toDay ?? season.toDay };
      try {
        dayStartMs(period.fromDay);
        dayStartMs(period.toDay);
      } catch (error) {
        throw invalid(error instanceof Error ? error.message : String(error));
      }
      if (period.fromDay > period.toDay) throw invalid(`the period ends (${period.toDay}) before it begins (${period.fromDay})`);
      if (req.correctsStatementId !== undefined) {
        const target = store.requireStatement(req.correctsStatementId);
        if (!["published", "paid", "closed"].includes(target.status)) throw new SubsidyError(C.WRONG_STATE, `only a published statement is corrected; ${target.statementId} is ${target.status} (adjust it instead)`);
        if (target.villageId !== req.villageId || target.programmeId !== req.programmeId || target.seasonId !== req.seasonId) {
          throw invalid(`a correction covers the same village, programme and season as ${target.statementId}`);
        }
        refuseSecondCorrection(target.statementId, target.villageId);
      }
      const meters = await land.meters(req.villageId);
      const meterIds = meters.filter((m) => m.plotId !== undefined).map((m) => m.meterId);
      const plots = await land.plots(req.villageId);
      const usage = await readUsage(meterIds, period.fromDay, period.toDay, runBoundaries(policy, period, plots));
      const flags = await deps.flags.flagsFor(meterIds, dayStartMs(period.fromDay), dayStartMs(period.toDay) + 86_400_000);
      const standing = store.standingRefunds(req.villageId, req.programmeId, req.seasonId, req.correctsStatementId);
      const households = await land.households(req.villageId);
      const lines = settle(policy, period, {
        households,
        plots,
        meters,
        usage,
        flags,
        alreadyRefunded: new Set(standing.keys()),
      });
      const statement: StatementRecord = {
        statementId: deps.newId(),
        villageId: req.villageId,
        programmeId: req.programmeId,
        policy,
        seasonId: req.seasonId,
        fromDay: period.fromDay,
        toDay: period.toDay,
        status: "draft",
        approvedBy: [],
        ...(req.correctsStatementId === undefined ? {} : { correctsStatementId: req.correctsStatementId }),
        totalFen: statementTotalFen(lines),
        createdBy: req.actor,
        createdAtMs: deps.now(),
      };
      await audited(() => store.transaction(() => {
        // Again inside the transaction: settling awaited the usage source, and another correction may have begun.
        if (req.correctsStatementId !== undefined) refuseSecondCorrection(req.correctsStatementId, req.villageId);
        store.insertStatement(statement, lines);
        logStep(statement, "draft", req.actor, statement.createdAtMs, req.reason ?? (req.correctsStatementId === undefined ? "settled" : `corrects ${req.correctsStatementId}`), {
          policyVersion: policy.version,
          lines: lines.length,
          flagged: lines.filter((l) => l.status === "flagged").length,
          totalFen: statement.totalFen,
        });
      }));
      return { statement, lines };
    },

    /** Accept (refundFen = proposed) or change one line's refund, with a reason; only while the statement is a draft. */
    adjustLine(statementId: string, lineNo: number, refundFen: number, reason: string, actor: string): Promise<StatementRecord> {
      if (reason.trim().length === 0) throw invalid("an adjustment needs a reason");
      if (!Number.isSafeInteger(refundFen) || refundFen < 0) throw invalid(`refundFen must be a non-negative integer, got ${refundFen}`);
      const nowMs = deps.now();
      return audited(() => store.transaction(() => {
        const s = store.requireStatement(statementId);
        workflowStep(stateOf(s), { action: "adjust" }, actor, nowMs);
        const stored = store.lines(statementId).find((l) => l.line.lineNo === lineNo);
        if (stored === undefined) throw new SubsidyError(C.UNKNOWN, `statement ${statementId} has no line ${lineNo}`);
        if (refundFen > stored.line.maxRefundFen) {
          throw invalid(`line ${lineNo} can refund at most ¥${fenToYuan(stored.line.maxRefundFen)} (the rule over all its in-season energy, capped, never above what was paid)`);
        }
        store.setLineRefund(statementId, lineNo, refundFen, actor, reason);
        logStep(s, "adjust", actor, nowMs, reason, { lineNo, fromFen: stored.refundFen, toFen: refundFen, proposedFen: stored.line.proposedRefundFen });
        return store.requireStatement(statementId);
      }));
    },

    review: (statementId: string, actor: string, reason = "reviewed"): Promise<StatementRecord> => step(statementId, { action: "review" }, actor, reason),
    approve: (statementId: string, actor: string, reason = "approved"): Promise<StatementRecord> => step(statementId, { action: "approve" }, actor, reason),
    returnToDraft: async (statementId: string, actor: string, reason: string): Promise<StatementRecord> => {
      if (reason.trim().length === 0) throw invalid("returning a statement needs a reason");
      return step(statementId, { action: "return" }, actor, reason);
    },
    publish(statementId: string, actor: string): Promise<StatementRecord> {
      const s = store.requireStatement(statementId);
      return step(statementId, { action: "publish", noticeDays: s.policy.policy.noticeDays }, actor, `public notice for ${s.policy.policy.noticeDays} days`, undefined, refuseSecondPublication);
    },
    async object(statementId: string, householdId: string | undefined, text: string, actor: string): Promise<number> {
      if (text.trim().length === 0) throw invalid("an objection needs its text");
      // An objection may come from a household the statement left out, but it must be one of the village's (a
      // statement's village never changes, so this is asked before the transaction).
      const villageId = store.requireStatement(statementId).villageId;
      if (householdId !== undefined && (await deps.land.householdVillage(householdId)) !== villageId) throw invalid(`household ${householdId} is not in village ${villageId}`);
      const nowMs = deps.now();
      return audited(() => store.transaction(() => {
        const s = store.requireStatement(statementId);
        workflowStep(stateOf(s), { action: "object" }, actor, nowMs);
        const id = store.addObjection(statementId, householdId, actor, nowMs, text);
        logStep(s, "object", actor, nowMs, text, { objectionId: id, householdId: householdId ?? null });
        return id;
      }));
    },

    async pay(statementId: string, req: PayRequest): Promise<{ statement: StatementRecord; payments: PaymentRecord[]; posted: number; duplicates: number }> {
      const s = store.requireStatement(statementId);
      if (s.status !== "paid") workflowStep(stateOf(s), { action: "pay" }, req.actor, deps.now());
      const correctedBy = store.statementsOf(s.villageId).find((x) => x.correctsStatementId === statementId && ["published", "paid", "closed"].includes(x.status));
      if (correctedBy !== undefined) throw new SubsidyError(C.WRONG_STATE, `${statementId} was corrected by ${correctedBy.statementId}; pay that one`);
      const methods = fixPaymentMethods(s, req);
      const cash = new Set([...methods].filter(([, m]) => m === "cash").map(([h]) => h));
      const atMs = s.noticeUntilMs ?? s.publishedAtMs ?? s.createdAtMs;
      const before = paidBefore(s);
      const subsidyAccount = villageSubsidyAccountId(s.villageId);
      await ledger.openAccount({ accountId: subsidyAccount, kind: "village-subsidy", villageId: s.villageId });
      let posted = 0;
      let duplicates = 0;
      for (const { line, refundFen } of store.lines(statementId)) {
        const amountFen = refundFen - (before.get(`${line.householdId}/${line.plotId}`) ?? 0);
        if (amountFen === 0) continue;
        await openHouseholdAccount(ledger, s.villageId, line.householdId);
        const inCash = cash.has(line.householdId) && amountFen > 0;
        const payee = inCash ? villageCashAccountId(s.villageId) : householdAccountId(line.householdId);
        const what = s.correctsStatementId === undefined ? "grain electricity refund" : `correction of ${s.correctsStatementId}`;
        const entry: LedgerEntry = {
          idempotencyKey: subsidyIdempotencyKey(statementId, line.householdId, line.plotId),
          kind: "subsidy",
          lines: [
            { accountId: subsidyAccount, amountFen: -amountFen },
            { accountId: payee, amountFen },
          ],
          memo: `${what} ${s.seasonId} ${line.householdId}/${line.plotId}: ¥${fenToYuan(amountFen)}${inCash ? ` paid in cash to ${line.householdId}` : ""} (statement ${statementId}, policy ${s.programmeId}@v${s.policy.version})`,
          actor: SUBSIDY_ACTOR,
          atMs,
        };
        const result = await ledger.post(entry);
        if (result.duplicate) duplicates++;
        else posted++;
        store.recordPayment({ statementId, householdId: line.householdId, plotId: line.plotId, method: inCash ? "cash" : "prepaid", amountFen, postingId: result.postingId, atMs: deps.now() });
      }
      const statement = s.status === "paid" ? s : await step(statementId, { action: "pay" }, req.actor, "paid", { posted, duplicates, cash: [...cash] });
      return { statement, payments: store.payments(statementId), posted, duplicates };
    },

    close: (statementId: string, actor: string, reason = "closed"): Promise<StatementRecord> => step(statementId, { action: "close" }, actor, reason),

    statement(statementId: string) {
      const statement = store.requireStatement(statementId);
      return { statement, lines: store.lines(statementId), steps: store.steps(statementId), objections: store.objections(statementId), payments: store.payments(statementId) };
    },
  };
}
