// The subsidy workflow through real parts (subsidy-village.fixture.ts: a registry file, a SQLite ledger, the ledger's
// day rows written from the real charge core with a meter swap, a tamper event from an uplink batch, the statement
// store and the audit log). The village is settled, reviewed, approved by two different approvers, published,
// objected to, paid into prepaid accounts (twice: nothing is posted twice) and corrected by a correcting statement —
// every refund written down to the fen.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AuditLog } from "../../cloud/audit/audit-log.js";
import type { SqliteLedger } from "../../cloud/ledger/store/sqlite-ledger.js";
import { householdAccountId } from "../../cloud/prepaid/accounts.js";
import { SUBSIDY_ERROR_CODES as C } from "../../cloud/subsidy/errors.js";
import { villageSubsidyAccountId, type SubsidyService } from "../../cloud/subsidy/service.js";
import type { SubsidyStore } from "../../cloud/subsidy/store.js";
import type Database from "better-sqlite3";
import { DAY_MS, openTestVillage, type TestVillage } from "./subsidy-village.fixture.js";

let village: TestVillage;
let ledger: SqliteLedger;
let db: Database.Database;
let store: SubsidyStore;
let service: SubsidyService;
let audit: AuditLog;

beforeEach(async () => {
  village = await openTestVillage();
  ({ ledger, db, store, service, audit } = village);
});

afterEach(() => village.close());

const code = async (fn: () => unknown): Promise<string | undefined> => {
  try {
    await fn();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
};
const draft = () => service.draft({ villageId: "hongmiao", programmeId: "grain-power", seasonId: "2026-june", actor: "officer-1" });
const balance = (householdId: string): Promise<number> => ledger.balance(householdAccountId(householdId));

/** Draft, decide the flagged lines, review, approve twice, publish: the statement id. */
async function publishFirst(): Promise<string> {
  const { statement } = await draft();
  await service.adjustLine(statement.statementId, 2, 2_642, "drought: the committee accepts the capped amount", "officer-1");
  await service.adjustLine(statement.statementId, 3, 0, "tamper under investigation", "officer-1");
  await service.review(statement.statementId, "officer-1");
  await service.approve(statement.statementId, "approver-a");
  await service.approve(statement.statementId, "approver-b");
  return (await service.publish(statement.statementId, "officer-1")).statementId;
}

describe("settling a village from the ledger's day rows", () => {
  it("refunds every household to the fen, across the meter swap, and flags the cap and the tamper", async () => {
    const { statement, lines } = await draft();
    expect(lines.map((l) => [l.householdId, l.energyWh, l.chargedFen, l.proposedRefundFen, l.refundFen, l.flags.map((f) => f.code)])).toEqual([
      ["hh-chen", 80_000, 4_226, 2_113, 2_113, []],
      ["hh-li", 120_000, 6_340, 2_642, 0, ["above-cap"]],
      ["hh-wang", 10_000, 528, 264, 0, ["tamper"]],
    ]);
    expect(statement).toMatchObject({ status: "draft", totalFen: 2_113, policy: { version: 1 } });
  });

  it("records the policy version the statement was settled under, and keeps it when a new version is added", async () => {
    const { statement } = await draft();
    const v2 = { ...store.policies("hongmiao", "grain-power")[0]!, version: 2 };
    await service.addPolicy({ ...v2, policy: { ...v2.policy, capWhPerMu: 1 } }, "officer-1");
    expect(store.requireStatement(statement.statementId).policy.policy.capWhPerMu).toBe(100_000);
    expect(await code(() => service.addPolicy(v2, "officer-1"))).toBe(C.POLICY_EXISTS);
  });
});

describe("the workflow", () => {
  it("needs every flagged line decided, with a reason, before review", async () => {
    const { statement } = await draft();
    expect(await code(() => service.review(statement.statementId, "officer-1"))).toBe(C.UNRESOLVED);
    expect(await code(() => service.adjustLine(statement.statementId, 2, 2_642, " ", "officer-1"))).toBe(C.INVALID);
  });

  it("refuses an adjustment above what the rule allows for the line", async () => {
    const { statement } = await draft();
    expect(await code(() => service.adjustLine(statement.statementId, 2, 2_643, "generous", "officer-1"))).toBe(C.INVALID);
  });

  it("does not let the same person approve twice, and needs two approvers", async () => {
    const { statement } = await draft();
    await service.adjustLine(statement.statementId, 2, 2_642, "accepted", "officer-1");
    await service.adjustLine(statement.statementId, 3, 0, "tamper", "officer-1");
    expect(await code(() => service.approve(statement.statementId, "approver-a"))).toBe(C.WRONG_STATE);
    await service.review(statement.statementId, "officer-1");
    expect((await service.approve(statement.statementId, "approver-a")).status).toBe("reviewed");
    expect(await code(() => service.approve(statement.statementId, "approver-a"))).toBe(C.SAME_APPROVER);
    expect(await service.approve(statement.statementId, "approver-b")).toMatchObject({ status: "approved", approvedBy: ["approver-a", "approver-b"] });
  });

  it("never changes a published statement, through the service or through SQL", async () => {
    const id = await publishFirst();
    expect(await code(() => service.adjustLine(id, 1, 1, "typo", "officer-1"))).toBe(C.IMMUTABLE);
    expect(await code(() => service.returnToDraft(id, "approver-a", "second thoughts"))).toBe(C.IMMUTABLE);
    expect(() => db.prepare("UPDATE subsidy_lines SET refund_fen = 1 WHERE statement_id = ?").run(id)).toThrow(/SUBSIDY_STATEMENT_IMMUTABLE/);
    expect(() => db.prepare("UPDATE subsidy_statements SET total_fen = 1 WHERE statement_id = ?").run(id)).toThrow(/SUBSIDY_STATEMENT_IMMUTABLE/);
    expect(store.requireStatement(id).totalFen).toBe(4_755);
  });

  it("records objections during the notice, and pays only after the notice has run", async () => {
    const id = await publishFirst();
    await service.object(id, "hh-wang", "电表盖是修理工打开的", "farmer-wang");
    // An objection names one of the village's households (or none), never an invented one.
    expect(await code(() => service.object(id, "hh-nobody", "x", "officer-1"))).toBe(C.INVALID);
    expect(await code(() => service.pay(id, { actor: "officer-1" }))).toBe(C.NOTICE_RUNNING);
    expect(service.statement(id).objections).toMatchObject([{ householdId: "hh-wang", raisedBy: "farmer-wang", text: "电表盖是修理工打开的" }]);
    // An objection, once recorded, stays on the record.
    expect(() => db.prepare("DELETE FROM subsidy_objections WHERE statement_id = ?").run(id)).toThrow(/SUBSIDY_STATEMENT_IMMUTABLE/);
    expect(() => db.prepare("UPDATE subsidy_objections SET text = 'withdrawn' WHERE statement_id = ?").run(id)).toThrow(/SUBSIDY_STATEMENT_IMMUTABLE/);
  });

  it("pays each household into its prepaid account from the village's subsidy account, and paying again posts nothing", async () => {
    const id = await publishFirst();
    village.clock.nowMs += 7 * DAY_MS;
    expect(await service.pay(id, { actor: "officer-1" })).toMatchObject({ posted: 2, duplicates: 0, statement: { status: "paid" } });
    expect(await service.pay(id, { actor: "officer-2" })).toMatchObject({ posted: 0, duplicates: 2 });
    expect([await balance("hh-chen"), await balance("hh-li"), await ledger.balance(villageSubsidyAccountId("hongmiao"))]).toEqual([2_113, 2_642, -4_755]);
    const chen = await ledger.statement(householdAccountId("hh-chen"), 0, Number.MAX_SAFE_INTEGER);
    expect(chen.entries.map((e) => [e.idempotencyKey, e.kind, e.amountFen])).toEqual([[`subsidy/${id}/hh-chen/p-chen`, "subsidy", 2_113]]);
  });

  it("records a cash payout as a posting to the village cash box", async () => {
    const id = await publishFirst();
    village.clock.nowMs += 7 * DAY_MS;
    await service.pay(id, { actor: "officer-1", cashHouseholdIds: ["hh-chen"] });
    expect(await ledger.balance("village:hongmiao:cash")).toBe(2_113);
    expect(service.statement(id).payments.map((p) => [p.householdId, p.method, p.amountFen])).toEqual([
      ["hh-chen", "cash", 2_113],
      ["hh-li", "prepaid", 2_642],
    ]);
  });

  it("fixes a published statement with a correcting one that pays only the difference", async () => {
    const first = await publishFirst();
    village.clock.nowMs += 7 * DAY_MS;
    await service.pay(first, { actor: "officer-1" });
    await service.close(first, "officer-1");
    const { statement, lines } = await service.draft({ villageId: "hongmiao", programmeId: "grain-power", seasonId: "2026-june", actor: "officer-1", correctsStatementId: first });
    expect(lines.map((l) => l.flags.map((f) => f.code))).toEqual([[], ["above-cap"], ["tamper"]]);
    await service.adjustLine(statement.statementId, 2, 2_642, "as before", "officer-1");
    await service.adjustLine(statement.statementId, 3, 264, "meter inspected: the cover was opened by the repairman", "officer-1");
    await service.review(statement.statementId, "officer-1");
    await service.approve(statement.statementId, "approver-b");
    await service.approve(statement.statementId, "approver-c");
    await service.publish(statement.statementId, "officer-1");
    village.clock.nowMs += 7 * DAY_MS;
    expect(await service.pay(statement.statementId, { actor: "officer-1" })).toMatchObject({ posted: 1 });
    expect([await balance("hh-chen"), await balance("hh-li"), await balance("hh-wang")]).toEqual([2_113, 2_642, 264]);
    expect(store.requireStatement(first)).toMatchObject({ status: "closed", totalFen: 4_755 });
  });

  it("flags a second statement for the same season as already refunded", async () => {
    await publishFirst();
    const { lines } = await draft();
    expect(lines.every((l) => l.flags.some((f) => f.code === "already-refunded") && l.maxRefundFen === 0)).toBe(true);
  });

  it("logs every step with who, when and why, in its own step log and in the cloud's audit log", async () => {
    const id = await publishFirst();
    expect(service.statement(id).steps.map((s) => [s.action, s.actor, s.atMs === village.clock.nowMs])).toEqual([
      ["draft", "officer-1", true],
      ["adjust", "officer-1", true],
      ["adjust", "officer-1", true],
      ["review", "officer-1", true],
      ["approve", "approver-a", true],
      ["approve", "approver-b", true],
      ["publish", "officer-1", true],
    ]);
    expect((await audit.list({ entityId: id, limit: 100 })).map((e) => [e.action, e.actor, e.villageId])).toEqual(service.statement(id).steps.map((s) => [`subsidy.${s.action}`, s.actor, "hongmiao"]));
    expect(service.statement(id).steps[2]).toMatchObject({ reason: "tamper under investigation", detail: { lineNo: 3, fromFen: 0, toFen: 0, proposedFen: 264 } });
  });
});
