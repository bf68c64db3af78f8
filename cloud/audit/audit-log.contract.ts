// The one contract every AuditLog engine must pass (ARCHITECTURE.md §5), run by sqlite-audit-log.test.ts and
// postgres-audit-log.test.ts: entries read back as written, filters and paging, bad entries and queries refused
// with their code and nothing written, append-only enforced by the database against any writer, concurrent
// appends neither lost nor out of order, and entries surviving a reopen.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isAuditAppendOnlyViolation, type AuditEntryInput, type AuditLog, type AuditQuery } from "./audit-log.js";
import { AUDIT_ERROR_CODES as C } from "./errors.js";

/** A fresh, empty store that can be opened several times (each open sees what the others wrote). */
export interface AuditContractStore {
  open(now: () => number): Promise<AuditLog>;
  /** Test hook: one SQL statement through a connection of its own, bypassing the port (an operator's shell). */
  rawSql(sql: string): Promise<void>;
  dispose(): Promise<void> | void;
}

const entry = (over: Record<string, unknown> = {}): AuditEntryInput => ({
  actor: "admin-1",
  action: "user.create",
  entityType: "user",
  entityId: "farmer-li",
  atMs: 5000,
  ...over,
});

async function refusal(action: () => Promise<unknown>): Promise<unknown> {
  try {
    await action();
  } catch (error) {
    return error;
  }
  return undefined;
}

export function runAuditLogContract(name: string, factory: () => AuditContractStore): void {
  describe(`AuditLog contract: ${name}`, () => {
    let store: AuditContractStore;
    let audit: AuditLog;
    const opened: AuditLog[] = [];
    const open = async (): Promise<AuditLog> => {
      const log = await store.open(() => 1000);
      opened.push(log);
      return log;
    };

    beforeEach(async () => {
      store = factory();
      audit = await open();
    });

    afterEach(async () => {
      for (const log of opened.splice(0)) await log.close();
      await store.dispose();
    });

    it("records who, when, what and why with JSON snapshots, and reads them back", async () => {
      const recorded = await audit.record(entry({ reason: "new farmer", villageId: "v1", before: null, after: { roles: ["farmer"], n: 3 } }));
      expect(recorded.auditId).toBeGreaterThan(0);
      expect(await audit.list({ limit: 10 })).toEqual([
        { auditId: recorded.auditId, atMs: 5000, actor: "admin-1", action: "user.create", entityType: "user", entityId: "farmer-li", villageId: "v1", reason: "new farmer", before: null, after: { roles: ["farmer"], n: 3 } },
      ]);
    });

    it("answers record with the entry as list reads it back", async () => {
      const recorded = await audit.record(entry({ reason: "r", after: { a: [1, "二", { b: null }] } }));
      expect(await audit.list({ limit: 1 })).toEqual([recorded]);
    });

    it("omits reason, village and snapshots that were not given", async () => {
      const { auditId } = await audit.record(entry());
      expect((await audit.list({ limit: 1 }))[0]).toEqual({ auditId, atMs: 5000, actor: "admin-1", action: "user.create", entityType: "user", entityId: "farmer-li" });
    });

    it("keeps a snapshot exactly as written: key order, unicode, large safe integers", async () => {
      const after = { z: 1, a: "电费 ⚡", n: Number.MAX_SAFE_INTEGER, nested: { y: [true, false], x: -0.5 } };
      await audit.record(entry({ after, atMs: Number.MAX_SAFE_INTEGER }));
      const [read] = await audit.list({ limit: 1 });
      expect(JSON.stringify(read?.after)).toBe(JSON.stringify(after));
      expect(read?.atMs).toBe(Number.MAX_SAFE_INTEGER);
    });

    it("refuses an UPDATE of a recorded entry at the database, whoever issues it", async () => {
      await audit.record(entry());
      const caught = await refusal(() => store.rawSql("UPDATE audit_log SET actor = 'someone-else'"));
      expect(isAuditAppendOnlyViolation(caught)).toBe(true);
      expect((await audit.list({ limit: 1 }))[0]?.actor).toBe("admin-1");
    });

    it("refuses a DELETE of a recorded entry at the database", async () => {
      await audit.record(entry());
      const caught = await refusal(() => store.rawSql("DELETE FROM audit_log"));
      expect(isAuditAppendOnlyViolation(caught)).toBe(true);
      expect(await audit.list({ limit: 10 })).toHaveLength(1);
    });

    it("does not take other errors for an append-only refusal", async () => {
      const caught = await refusal(() => store.rawSql("SELECT * FROM no_such_table"));
      expect(caught).toBeInstanceOf(Error);
      expect(isAuditAppendOnlyViolation(caught)).toBe(false);
      expect(isAuditAppendOnlyViolation("AUDIT_APPEND_ONLY: the audit log is never edited")).toBe(false);
    });

    it("filters by entity, actor, village and time window, in recorded order", async () => {
      await audit.record(entry({ entityId: "a", atMs: 100, villageId: "v1" }));
      await audit.record(entry({ entityId: "b", atMs: 200, actor: "officer-1", villageId: "v2" }));
      await audit.record(entry({ entityType: "tariff", entityId: "a", atMs: 300 }));
      await audit.record(entry({ entityId: "a", atMs: 400, villageId: "v1" }));
      const times = async (q: AuditQuery) => (await audit.list(q)).map((e) => e.atMs);
      expect(await times({ entityType: "user", entityId: "a", limit: 10 })).toEqual([100, 400]);
      expect(await times({ actor: "officer-1", limit: 10 })).toEqual([200]);
      expect(await times({ villageIds: ["v1", "v2"], limit: 10 })).toEqual([100, 200, 400]);
      expect(await times({ villageIds: ["v2"], limit: 10 })).toEqual([200]);
      expect(await times({ fromMs: 200, toMs: 400, limit: 10 })).toEqual([200, 300]);
    });

    it("matches nothing for an empty village list (an officer with no village sees nothing)", async () => {
      await audit.record(entry({ villageId: "v1" }));
      expect(await audit.list({ villageIds: [], limit: 10 })).toEqual([]);
    });

    it("pages with limit and afterId", async () => {
      for (let i = 0; i < 5; i += 1) await audit.record(entry({ atMs: i }));
      const first = await audit.list({ limit: 2 });
      const second = await audit.list({ limit: 2, afterId: first.at(-1)?.auditId ?? 0 });
      const third = await audit.list({ limit: 2, afterId: second.at(-1)?.auditId ?? 0 });
      expect([...first, ...second, ...third].map((e) => e.atMs)).toEqual([0, 1, 2, 3, 4]);
    });

    it("refuses an entry without an actor, with a fractional or negative time, or with snapshots that are not JSON", async () => {
      for (const bad of [entry({ actor: "" }), entry({ atMs: 1.5 }), entry({ atMs: -1 }), entry({ after: { amount: 10n } }), entry({ before: () => 1 })]) {
        await expect(audit.record(bad)).rejects.toMatchObject({ code: C.INVALID_ENTRY });
      }
      expect(await audit.list({ limit: 10 })).toEqual([]);
    });

    it("refuses an entry with an unknown field, an empty village or an over-long reason", async () => {
      for (const bad of [entry({ amountFen: 5 }), entry({ villageId: "" }), entry({ reason: "x".repeat(2001) }), entry({ atMs: Number.MAX_SAFE_INTEGER + 2 }), entry({ action: undefined })]) {
        await expect(audit.record(bad)).rejects.toMatchObject({ code: C.INVALID_ENTRY });
      }
      expect(await audit.list({ limit: 10 })).toEqual([]);
    });

    it("refuses a query with a limit outside 1..1000, a negative afterId or an unknown filter", async () => {
      await expect(audit.list({ limit: 0 })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
      await expect(audit.list({ limit: 1001 })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
      await expect(audit.list({ limit: 10, afterId: -1 })).rejects.toMatchObject({ code: C.INVALID_ENTRY });
      await expect(audit.list({ limit: 10, householdId: "h1" } as AuditQuery)).rejects.toMatchObject({ code: C.INVALID_ENTRY });
    });

    it("loses no entry and repeats no id when two handles append at once, and lists them in ascending id order", async () => {
      const other = await open();
      const writes = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? audit : other).record(entry({ entityId: `e-${i}`, atMs: i })));
      const recorded = await Promise.all(writes);
      const ids = recorded.map((r) => r.auditId);
      expect(new Set(ids).size).toBe(40);
      const listed = await audit.list({ limit: 100 });
      expect(listed.map((e) => e.auditId)).toEqual([...ids].sort((a, b) => a - b));
      expect(listed.map((e) => e.entityId).sort()).toEqual(recorded.map((r) => r.entityId).sort());
    });

    it("keeps its entries across a reopen, with ids continuing upwards", async () => {
      const first = await audit.record(entry());
      await audit.close();
      audit = await open();
      const second = await audit.record(entry({ atMs: 6000 }));
      expect(second.auditId).toBeGreaterThan(first.auditId);
      expect((await audit.list({ limit: 10 })).map((e) => e.atMs)).toEqual([5000, 6000]);
    });
  });
}
