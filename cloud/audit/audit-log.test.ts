import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openRegistry } from "../registry/registry.js";
import { openAuditLog, isAuditAppendOnlyViolation, type AuditLog } from "./audit-log.js";
import { AUDIT_ERROR_CODES as C } from "./errors.js";

let dir: string;
let path: string;
let audit: AuditLog;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "audit-"));
  path = join(dir, "cloud.db");
  audit = openAuditLog(path, { now: () => 1000 });
});

afterEach(() => {
  audit.close();
  rmSync(dir, { recursive: true, force: true });
});

const entry = (over: Record<string, unknown> = {}) => ({
  actor: "admin-1",
  action: "user.create",
  entityType: "user",
  entityId: "farmer-li",
  atMs: 5000,
  ...over,
});

describe("audit log", () => {
  it("records who, when, what and why with JSON snapshots, and reads them back", () => {
    const recorded = audit.record(entry({ reason: "new farmer", villageId: "v1", before: null, after: { roles: ["farmer"], n: 3 } }));
    expect(recorded.auditId).toBeGreaterThan(0);
    expect(audit.list({ limit: 10 })).toEqual([
      { auditId: recorded.auditId, atMs: 5000, actor: "admin-1", action: "user.create", entityType: "user", entityId: "farmer-li", villageId: "v1", reason: "new farmer", before: null, after: { roles: ["farmer"], n: 3 } },
    ]);
  });

  it("omits reason, village and snapshots that were not given", () => {
    audit.record(entry());
    expect(audit.list({ limit: 1 })[0]).toEqual({ auditId: 1, atMs: 5000, actor: "admin-1", action: "user.create", entityType: "user", entityId: "farmer-li" });
  });

  it("refuses an UPDATE of a recorded entry at the database, whoever issues it", () => {
    audit.record(entry());
    const other = new Database(path);
    try {
      let caught: unknown;
      try {
        other.prepare("UPDATE audit_log SET actor = 'someone-else'").run();
      } catch (error) {
        caught = error;
      }
      expect(isAuditAppendOnlyViolation(caught)).toBe(true);
    } finally {
      other.close();
    }
    expect(audit.list({ limit: 1 })[0]?.actor).toBe("admin-1");
  });

  it("refuses a DELETE of a recorded entry at the database", () => {
    audit.record(entry());
    expect(() => audit.db.prepare("DELETE FROM audit_log").run()).toThrow(/AUDIT_APPEND_ONLY/);
    expect(audit.list({ limit: 10 })).toHaveLength(1);
  });

  it("filters by entity, actor, village and time window, in recorded order", () => {
    audit.record(entry({ entityId: "a", atMs: 100, villageId: "v1" }));
    audit.record(entry({ entityId: "b", atMs: 200, actor: "officer-1", villageId: "v2" }));
    audit.record(entry({ entityType: "tariff", entityId: "a", atMs: 300 }));
    audit.record(entry({ entityId: "a", atMs: 400, villageId: "v1" }));
    const ids = (q: Parameters<AuditLog["list"]>[0]) => audit.list(q).map((e) => e.atMs);
    expect(ids({ entityType: "user", entityId: "a", limit: 10 })).toEqual([100, 400]);
    expect(ids({ actor: "officer-1", limit: 10 })).toEqual([200]);
    expect(ids({ villageIds: ["v1", "v2"], limit: 10 })).toEqual([100, 200, 400]);
    expect(ids({ fromMs: 200, toMs: 400, limit: 10 })).toEqual([200, 300]);
  });

  it("matches nothing for an empty village list (an officer with no village sees nothing)", () => {
    audit.record(entry({ villageId: "v1" }));
    expect(audit.list({ villageIds: [], limit: 10 })).toEqual([]);
  });

  it("pages with limit and afterId", () => {
    for (let i = 0; i < 5; i += 1) audit.record(entry({ atMs: i }));
    const first = audit.list({ limit: 2 });
    const second = audit.list({ limit: 2, afterId: first.at(-1)?.auditId ?? 0 });
    expect([...first, ...second].map((e) => e.atMs)).toEqual([0, 1, 2, 3]);
  });

  it("refuses an entry without an actor, with a fractional time, or with snapshots that are not JSON", () => {
    expect(() => audit.record(entry({ actor: "" }))).toThrow(expect.objectContaining({ code: C.INVALID_ENTRY }) as Error);
    expect(() => audit.record(entry({ atMs: 1.5 }))).toThrow(expect.objectContaining({ code: C.INVALID_ENTRY }) as Error);
    expect(() => audit.record(entry({ after: { amount: 10n } }))).toThrow(expect.objectContaining({ code: C.INVALID_ENTRY }) as Error);
    expect(audit.list({ limit: 10 })).toEqual([]);
  });

  it("refuses a query with a limit outside 1..1000", () => {
    expect(() => audit.list({ limit: 0 })).toThrow(expect.objectContaining({ code: C.INVALID_ENTRY }) as Error);
    expect(() => audit.list({ limit: 1001 })).toThrow(expect.objectContaining({ code: C.INVALID_ENTRY }) as Error);
  });

  it("shares cloud.db with the registry and joins a caller's transaction: a rolled-back change leaves no entry", () => {
    const registry = openRegistry({ path });
    try {
      const shared = openAuditLog(audit.db);
      const change = audit.db.transaction(() => {
        shared.record(entry());
        throw new Error("the change failed");
      });
      expect(() => change()).toThrow(/the change failed/);
      expect(shared.list({ limit: 10 })).toEqual([]);
      shared.close();
      expect(audit.db.open).toBe(true);
    } finally {
      registry.close();
    }
  });

  it("survives a reopen with its entries and migrations intact", () => {
    audit.record(entry());
    audit.close();
    audit = openAuditLog(path);
    expect(audit.list({ limit: 10 })).toHaveLength(1);
    const versions = audit.db.prepare("SELECT version FROM audit_schema_migrations").all();
    expect(versions).toEqual([{ version: 1 }]);
  });

  it("refuses a file migrated by newer code", () => {
    audit.db.prepare("INSERT INTO audit_schema_migrations (version, name, applied_at_ms) VALUES (99, 'future', 0)").run();
    audit.close();
    expect(() => (audit = openAuditLog(path))).toThrow(expect.objectContaining({ code: C.SCHEMA_TOO_NEW }) as Error);
    audit = openAuditLog(join(dir, "other.db"));
  });
});
