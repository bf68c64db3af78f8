// A season is paid once (invariant 5), on the real village of subsidy-village.fixture.ts: two drafts made before
// either is published, or two corrections of one statement, used to pass every step and both get paid. Now the
// second publish (or correction) is refused with a 409, and the balances are those of one payment. And a pay that
// failed half way completes when retried, whatever cash list the retry carries: the first request fixed the payees.
// The one fault injected is a ledger whose first post reaches the database but whose reply is lost.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { LedgerEntry } from "../../cloud/ledger/store/ledger.js";
import type { SqliteLedger } from "../../cloud/ledger/store/sqlite-ledger.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { SUBSIDY_ERROR_CODES as C } from "../../cloud/subsidy/errors.js";
import { subsidyService, villageSubsidyAccountId, type SubsidyService } from "../../cloud/subsidy/service.js";
import { sqliteUsageSource } from "../../cloud/subsidy/usage-source.js";
import { DAY_MS, openTestVillage, type TestVillage } from "./subsidy-village.fixture.js";

let village: TestVillage;
let ledger: SqliteLedger;
let service: SubsidyService;

beforeEach(async () => {
  village = await openTestVillage();
  ({ ledger, service } = village);
});

afterEach(() => village.close());

/** "<status> <code>" of the refusal, or undefined when fn succeeds. */
const refusal = async (fn: () => unknown): Promise<string | undefined> => {
  try {
    await fn();
    return undefined;
  } catch (error) {
    const e = error as { status?: number; code?: string };
    return `${e.status} ${e.code}`;
  }
};
const draft = (correctsStatementId?: string) =>
  service.draft({ villageId: "hongmiao", programmeId: "grain-power", seasonId: "2026-june", actor: "officer-1", ...(correctsStatementId === undefined ? {} : { correctsStatementId }) });
/** An account that was never opened (nothing was ever paid to it) holds 0. */
const balanceOf = async (accountId: string): Promise<number> => ((await ledger.getAccount(accountId)) === undefined ? 0 : ledger.balance(accountId));
/** 陈, 李 and 王's prepaid accounts and the village's subsidy account. */
const balances = async (): Promise<number[]> =>
  Promise.all([householdAccountId("hh-chen"), householdAccountId("hh-li"), householdAccountId("hh-wang"), villageSubsidyAccountId("hongmiao")].map(balanceOf));

/** Decide the flagged lines (王's tamper at `wangFen`), review and approve twice: ready to publish. */
async function approve(statementId: string, wangFen = 0): Promise<void> {
  await service.adjustLine(statementId, 2, 2_642, "drought: the committee accepts the capped amount", "officer-1");
  await service.adjustLine(statementId, 3, wangFen, wangFen === 0 ? "tamper under investigation" : "the repairman opened the cover", "officer-1");
  await service.review(statementId, "officer-1");
  await service.approve(statementId, "approver-a");
  await service.approve(statementId, "approver-b");
}

async function publishedAndPaid(wangFen = 0, correctsStatementId?: string): Promise<string> {
  const { statement } = await draft(correctsStatementId);
  await approve(statement.statementId, wangFen);
  await service.publish(statement.statementId, "officer-1");
  village.clock.nowMs += 7 * DAY_MS;
  await service.pay(statement.statementId, { actor: "officer-1" });
  return statement.statementId;
}

describe("one season, one payment", () => {
  it("refuses to publish the second of two drafts made before either was published, so the season is paid once", async () => {
    const first = (await draft()).statement.statementId;
    const second = (await draft()).statement.statementId;
    await approve(first);
    await approve(second);
    await service.publish(first, "officer-1");
    expect(await refusal(async () => await service.publish(second, "officer-1"))).toBe(`409 ${C.SEASON_PUBLISHED}`);
    village.clock.nowMs += 7 * DAY_MS;
    await service.pay(first, { actor: "officer-1" });
    expect(await refusal(() => service.pay(second, { actor: "officer-1" }))).toBe(`409 ${C.WRONG_STATE}`);
    expect(village.store.requireStatement(second).status).toBe("approved");
    expect(await balances()).toEqual([2_113, 2_642, 0, -4_755]);
  });

  it("refuses a second correction of a statement at draft, while the first is in progress", async () => {
    const first = await publishedAndPaid();
    await draft(first);
    expect(await refusal(() => draft(first))).toBe(`409 ${C.CORRECTION_EXISTS}`);
  });

  it("drafts only one of two corrections of a statement begun at the same moment", async () => {
    const first = await publishedAndPaid();
    const results = await Promise.allSettled([draft(first), draft(first)]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    expect(results.flatMap((r) => (r.status === "rejected" ? [(r.reason as { code?: string }).code] : []))).toEqual([C.CORRECTION_EXISTS]);
  });

  it("refuses to publish a second correction of a statement (one written before this rule), so the difference is paid once", async () => {
    const first = await publishedAndPaid();
    const { statement: correction, lines } = await draft(first);
    // A second correction of the same statement, as a database written before the rule may hold one.
    village.store.insertStatement({ ...correction, statementId: "st-legacy" }, lines);
    await approve(correction.statementId, 264);
    await approve("st-legacy", 264);
    await service.publish(correction.statementId, "officer-1");
    expect(await refusal(async () => await service.publish("st-legacy", "officer-1"))).toBe(`409 ${C.CORRECTION_EXISTS}`);
    village.clock.nowMs += 7 * DAY_MS;
    expect(await service.pay(correction.statementId, { actor: "officer-1" })).toMatchObject({ posted: 1 });
    expect(await balances()).toEqual([2_113, 2_642, 264, -5_019]);
  });

  it("refuses to publish a fresh statement for a season whose statement was corrected, and names the chain's last link", async () => {
    const late = (await draft()).statement.statementId;
    const first = await publishedAndPaid();
    const correction = await publishedAndPaid(264, first);
    await approve(late);
    let refused: { code?: string; message?: string } = {};
    try {
      await service.publish(late, "officer-1");
    } catch (error) {
      refused = error as typeof refused;
    }
    expect(refused.code).toBe(C.SEASON_PUBLISHED);
    expect(refused.message).toContain(`correcting statement of ${correction}`);
  });

  it("publishes and pays a correction of a correction, the chain's last link", async () => {
    const first = await publishedAndPaid();
    const second = await publishedAndPaid(264, first);
    const { statement: third } = await draft(second);
    await approve(third.statementId, 100);
    await service.publish(third.statementId, "officer-1");
    village.clock.nowMs += 7 * DAY_MS;
    expect(await service.pay(third.statementId, { actor: "officer-1" })).toMatchObject({ posted: 1, payments: [{ householdId: "hh-wang", amountFen: -164 }] });
    expect(await balances()).toEqual([2_113, 2_642, 100, -4_855]);
  });
});

describe("a pay retried after a partial failure", () => {
  /** The village's service over its real ledger, whose first post is written but whose reply is lost. */
  function serviceLosingFirstReply(): SubsidyService {
    let posts = 0;
    const flaky = {
      ...ledger,
      async post(entry: LedgerEntry) {
        const result = await ledger.post(entry);
        if (++posts === 1) throw new Error("connection reset before the ledger's reply");
        return result;
      },
    };
    return subsidyService({ store: village.store, land: village.land, usage: sqliteUsageSource(village.db), flags: village.flags, ledger: flaky, now: () => village.clock.nowMs, newId: () => "unused" });
  }

  async function halfPaid(): Promise<string> {
    const { statement } = await draft();
    await approve(statement.statementId);
    await service.publish(statement.statementId, "officer-1");
    village.clock.nowMs += 7 * DAY_MS;
    await expect(serviceLosingFirstReply().pay(statement.statementId, { actor: "officer-1", cashHouseholdIds: ["hh-chen"] })).rejects.toThrow(/connection reset/);
    return statement.statementId;
  }

  it("completes without a cash list, paying in cash whom the first request chose", async () => {
    const id = await halfPaid();
    expect(await service.pay(id, { actor: "officer-2" })).toMatchObject({ posted: 1, duplicates: 1, statement: { status: "paid" } });
    expect(await ledger.balance("village:hongmiao:cash")).toBe(2_113);
    expect(await balances()).toEqual([0, 2_642, 0, -4_755]);
    expect(service.statement(id).payments.map((p) => [p.householdId, p.method, p.amountFen])).toEqual([
      ["hh-chen", "cash", 2_113],
      ["hh-li", "prepaid", 2_642],
    ]);
  });

  it("refuses a different cash list with a 409 and posts nothing, then completes with the same list", async () => {
    const id = await halfPaid();
    expect(await refusal(() => service.pay(id, { actor: "officer-2", cashHouseholdIds: [] }))).toBe(`409 ${C.PAYMENT_METHOD_FIXED}`);
    expect(await refusal(() => service.pay(id, { actor: "officer-2", cashHouseholdIds: ["hh-chen", "hh-li"] }))).toBe(`409 ${C.PAYMENT_METHOD_FIXED}`);
    expect(await ledger.balance(villageSubsidyAccountId("hongmiao"))).toBe(-2_113);
    expect(await service.pay(id, { actor: "officer-2", cashHouseholdIds: ["hh-chen"] })).toMatchObject({ posted: 1, duplicates: 1 });
    expect(await ledger.balance(villageSubsidyAccountId("hongmiao"))).toBe(-4_755);
  });

  it("refuses a cash list naming a household that has no line on the statement, and fixes nothing", async () => {
    const { statement } = await draft();
    await approve(statement.statementId);
    await service.publish(statement.statementId, "officer-1");
    village.clock.nowMs += 7 * DAY_MS;
    expect(await refusal(() => service.pay(statement.statementId, { actor: "officer-1", cashHouseholdIds: ["hh-nobody"] }))).toBe(`400 ${C.INVALID}`);
    expect(village.store.paymentMethods(statement.statementId).size).toBe(0);
  });

  it("keeps a chosen payment method in the database: it cannot be updated or deleted", async () => {
    const id = await halfPaid();
    expect(() => village.db.prepare("UPDATE subsidy_payment_methods SET method = 'prepaid' WHERE statement_id = ?").run(id)).toThrow(/SUBSIDY_STATEMENT_IMMUTABLE/);
    expect(() => village.db.prepare("DELETE FROM subsidy_payment_methods WHERE statement_id = ?").run(id)).toThrow(/SUBSIDY_STATEMENT_IMMUTABLE/);
  });
});
