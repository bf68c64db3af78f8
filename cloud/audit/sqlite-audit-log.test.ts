// The SQLite audit log: the shared AuditLog contract on temporary files, plus what only a shared SQLite file
// shows — recordSync joining a caller's transaction on the same handle, and the file's own migrations table.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openRegistry } from "../registry/registry.js";
import { runAuditLogContract } from "./audit-log.contract.js";
import { AUDIT_ERROR_CODES as C } from "./errors.js";
import { openSqliteAuditLog, type SqliteAuditLog } from "./sqlite-audit-log.js";

runAuditLogContract("SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "audit-contract-"));
  const path = join(dir, "cloud.db");
  return {
    open: (now) => Promise.resolve(openSqliteAuditLog(path, { now })),
    rawSql: (sql) =>
      new Promise<void>((resolve) => {
        const raw = new Database(path);
        try {
          raw.prepare(sql).run();
        } finally {
          raw.close();
        }
        resolve();
      }),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

describe("SQLite audit log on a shared file", () => {
  let dir: string;
  let path: string;
  let audit: SqliteAuditLog;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "audit-"));
    path = join(dir, "cloud.db");
    audit = openSqliteAuditLog(path, { now: () => 1000 });
  });

  afterEach(async () => {
    await audit.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const entry = { actor: "admin-1", action: "user.create", entityType: "user", entityId: "farmer-li", atMs: 5000 };

  it("shares cloud.db with the registry and joins a caller's transaction: a rolled-back change leaves no entry", async () => {
    const registry = openRegistry({ path });
    try {
      const shared = openSqliteAuditLog(audit.db);
      const change = audit.db.transaction(() => {
        shared.recordSync(entry);
        throw new Error("the change failed");
      });
      expect(() => change()).toThrow(/the change failed/);
      expect(shared.listSync({ limit: 10 })).toEqual([]);
      await shared.close();
      expect(audit.db.open).toBe(true);
    } finally {
      await registry.close();
    }
  });

  it("records its schema version in audit_schema_migrations", () => {
    expect(audit.db.prepare("SELECT version, name FROM audit_schema_migrations").all()).toEqual([{ version: 1, name: "audit-log" }]);
  });

  it("refuses a file migrated by newer code", async () => {
    audit.db.prepare("INSERT INTO audit_schema_migrations (version, name, applied_at_ms) VALUES (99, 'future', 0)").run();
    await audit.close();
    expect(() => (audit = openSqliteAuditLog(path))).toThrow(expect.objectContaining({ code: C.SCHEMA_TOO_NEW }) as Error);
    audit = openSqliteAuditLog(join(dir, "other.db"));
  });
});
