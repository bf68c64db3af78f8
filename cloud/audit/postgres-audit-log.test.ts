// The PostgreSQL audit log: the shared AuditLog contract on a throwaway server (one database per store), plus what
// only PostgreSQL shows — TRUNCATE refused too, ids ascending in commit order under concurrent transactions, an
// append joining a caller's transaction, BIGINT beyond the safe range refused, migrations that coexist with the
// ledger's in one database, run concurrently, and refuse a database migrated by newer code.

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresServer } from "../../test/harness/postgres.js";
import { openPostgresLedger } from "../ledger/store/postgres-ledger.js";
import { runAuditLogContract } from "./audit-log.contract.js";
import { isAuditAppendOnlyViolation, type AuditEntryInput } from "./audit-log.js";
import { AUDIT_ERROR_CODES as C } from "./errors.js";
import { appendAuditEntry, migratePostgresAudit, openPostgresAuditLog } from "./postgres-audit-log.js";

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server.stop();
});

runAuditLogContract("PostgreSQL", () => {
  let url: Promise<string> | undefined;
  const database = (): Promise<string> => (url ??= server.createDatabase("audit_contract"));
  return {
    open: async (now) => openPostgresAuditLog({ connectionString: await database(), now, poolSize: 3 }),
    rawSql: async (sql) => {
      await server.sql(sql, new URL(await database()).pathname.slice(1));
    },
    dispose: () => undefined,
  };
});

const entry = (over: Partial<AuditEntryInput> = {}): AuditEntryInput => ({ actor: "admin-1", action: "user.create", entityType: "user", entityId: "farmer-li", atMs: 5000, ...over });

async function withRawClient<T>(url: string, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}

const databaseName = (url: string): string => new URL(url).pathname.slice(1);

describe("PostgreSQL audit log", () => {
  it("refuses a TRUNCATE of the log", async () => {
    const url = await server.createDatabase("audit_truncate");
    const audit = await openPostgresAuditLog({ connectionString: url });
    try {
      await audit.record(entry());
      const caught = await server.sql("TRUNCATE audit_log", databaseName(url)).then(() => undefined, (error: unknown) => error);
      expect(isAuditAppendOnlyViolation(caught)).toBe(true);
      expect(await audit.list({ limit: 10 })).toHaveLength(1);
    } finally {
      await audit.close();
    }
  });

  it("joins a caller's transaction: a rolled-back change leaves no entry, a committed one leaves exactly its entry", async () => {
    const url = await server.createDatabase("audit_join");
    const audit = await openPostgresAuditLog({ connectionString: url });
    try {
      await withRawClient(url, async (client) => {
        await client.query("BEGIN");
        await appendAuditEntry(client, entry({ entityId: "rolled-back" }));
        await client.query("ROLLBACK");
        await client.query("BEGIN");
        await appendAuditEntry(client, entry({ entityId: "committed" }));
        await client.query("COMMIT");
      });
      expect((await audit.list({ limit: 10 })).map((e) => e.entityId)).toEqual(["committed"]);
    } finally {
      await audit.close();
    }
  });

  it("makes a later append wait for an earlier uncommitted one, so ids ascend in commit order and paging skips nothing", async () => {
    const url = await server.createDatabase("audit_order");
    const audit = await openPostgresAuditLog({ connectionString: url });
    try {
      await withRawClient(url, async (client) => {
        await client.query("BEGIN");
        const early = await appendAuditEntry(client, entry({ entityId: "early" }));
        const late = audit.record(entry({ entityId: "late" }));
        let lateSettled = false;
        const settle = (): void => {
          lateSettled = true;
        };
        late.then(settle, settle);
        // The second append is queued on the lock the first holds (polled, not timed); without the lock it would
        // commit ahead of the first.
        for (;;) {
          expect(lateSettled).toBe(false);
          const waiting = await server.sql(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`, databaseName(url));
          if ((waiting.rows[0] as { n: number }).n === 1) break;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        expect(await audit.list({ limit: 10 })).toEqual([]);
        await client.query("COMMIT");
        const recorded = await late;
        expect(recorded.auditId).toBeGreaterThan(early.auditId);
      });
      expect((await audit.list({ limit: 10 })).map((e) => e.entityId)).toEqual(["early", "late"]);
    } finally {
      await audit.close();
    }
  });

  it("loses no entry when two pools append at once, ids strictly increasing in list order", async () => {
    const url = await server.createDatabase("audit_pools");
    const a = await openPostgresAuditLog({ connectionString: url, poolSize: 4 });
    const b = await openPostgresAuditLog({ connectionString: url, poolSize: 4 });
    try {
      const recorded = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? a : b).record(entry({ entityId: `e-${i}`, atMs: i }))));
      const listed = await b.list({ limit: 1000 });
      expect(listed).toHaveLength(100);
      for (let i = 1; i < listed.length; i += 1) expect((listed[i]?.auditId ?? 0) > (listed[i - 1]?.auditId ?? 0)).toBe(true);
      expect(new Set(listed.map((e) => e.entityId))).toEqual(new Set(recorded.map((r) => r.entityId)));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("refuses to read a time beyond the safe integer range instead of rounding it", async () => {
    const url = await server.createDatabase("audit_bigint");
    const audit = await openPostgresAuditLog({ connectionString: url });
    try {
      await server.sql("INSERT INTO audit_log (at_ms, actor, action, entity_type, entity_id) VALUES (9007199254740993, 'a', 'b', 'c', 'd')", databaseName(url));
      await expect(audit.list({ limit: 10 })).rejects.toMatchObject({ code: C.NON_INTEGER, message: expect.stringContaining("9007199254740993") as string });
    } finally {
      await audit.close();
    }
  });

  it("shares one database with the ledger, each with its own migrations table", async () => {
    const url = await server.createDatabase("audit_ledger");
    const ledger = await openPostgresLedger({ connectionString: url, poolSize: 2 });
    const audit = await openPostgresAuditLog({ connectionString: url });
    try {
      await audit.record(entry());
      const tables = await server.sql("SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%schema_migrations' ORDER BY 1", databaseName(url));
      expect(tables.rows.map((r: { table_name: string }) => r.table_name)).toEqual(["audit_schema_migrations", "ledger_schema_migrations"]);
      expect(await audit.list({ limit: 10 })).toHaveLength(1);
    } finally {
      await audit.close();
      await ledger.close();
    }
  });

  it("migrates once when several processes open a fresh database at the same moment, and again is a no-op", async () => {
    const url = await server.createDatabase("audit_migrate");
    const results = await Promise.all(Array.from({ length: 4 }, () => migratePostgresAudit(url, 1000)));
    expect(results.filter((r) => r.fromVersion === 0 && r.toVersion === 1)).toHaveLength(1);
    expect(results.filter((r) => r.fromVersion === 1 && r.toVersion === 1)).toHaveLength(3);
    expect(await migratePostgresAudit(url, 2000)).toEqual({ fromVersion: 1, toVersion: 1 });
  });

  it("refuses a database migrated by newer code, and one whose applied migration has another name", async () => {
    const newer = await server.createDatabase("audit_newer");
    await migratePostgresAudit(newer, 1000);
    await server.sql("INSERT INTO audit_schema_migrations (version, name, applied_at_ms) VALUES (99, 'future', 0)", databaseName(newer));
    await expect(openPostgresAuditLog({ connectionString: newer })).rejects.toMatchObject({ code: C.SCHEMA_TOO_NEW });
    const other = await server.createDatabase("audit_other");
    await server.sql("CREATE TABLE audit_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL); INSERT INTO audit_schema_migrations VALUES (1, 'not-ours', 0)", databaseName(other));
    await expect(migratePostgresAudit(other, 1000)).rejects.toMatchObject({ code: C.SCHEMA_MISMATCH });
  });
});
