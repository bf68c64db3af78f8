// The PostgreSQL auth store: the shared AuthStore contract on a throwaway server (one database per store, each open
// its own pool), plus what only PostgreSQL shows — the auth, audit, ledger and registry-style tables in one
// database, concurrent migrations, a refused newer schema, a change and its audit entry in one transaction even
// when the entry fails on the server, BIGINT beyond the safe range refused, and the engine chosen by URL.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresServer } from "../../test/harness/postgres.js";
import { migratePostgresAudit } from "../audit/postgres-audit-log.js";
import { AUDIT_ERROR_CODES } from "../audit/errors.js";
import { openPostgresLedger } from "../ledger/store/postgres-ledger.js";
import { runAuthStoreContract } from "./auth-store.contract.js";
import { AUTH_ERROR_CODES as C } from "./errors.js";
import { migrateAuthAndAuditFor, openAuthAndAuditFor } from "./open-auth.js";
import { migratePostgresAuth, openPostgresAuthStore } from "./postgres-auth-store.js";

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server.stop();
});

const databaseName = (url: string): string => new URL(url).pathname.slice(1);

runAuthStoreContract("PostgreSQL", () => {
  let url: Promise<string> | undefined;
  const database = (): Promise<string> => (url ??= server.createDatabase("auth_contract"));
  return {
    open: async (options) => openPostgresAuthStore({ connectionString: await database(), poolSize: 3, ...options }),
    rawRows: async (sql) => (await server.sql(sql, databaseName(await database()))).rows as Record<string, unknown>[],
    dispose: () => undefined,
  };
});

const ADMIN = { userId: "admin-1", name: "Admin", roles: ["admin" as const], password: "plough-river-42" };

describe("PostgreSQL auth store", () => {
  it("shares one database with the ledger and the audit log, each with its own migrations table", async () => {
    const url = await server.createDatabase("auth_shared");
    const ledger = await openPostgresLedger({ connectionString: url, poolSize: 2 });
    const auth = await openPostgresAuthStore({ connectionString: url });
    try {
      expect(auth.migration).toEqual({ auth: { fromVersion: 0, toVersion: 1 }, audit: { fromVersion: 0, toVersion: 1 } });
      await auth.createUser(ADMIN, { actor: "cli:test" });
      const tables = await server.sql("SELECT table_name FROM information_schema.tables WHERE table_name LIKE '%schema_migrations' ORDER BY 1", databaseName(url));
      expect(tables.rows.map((r: { table_name: string }) => r.table_name)).toEqual(["audit_schema_migrations", "auth_schema_migrations", "ledger_schema_migrations"]);
    } finally {
      await auth.close();
      await ledger.close();
    }
  });

  it("migrates once when several workers open a fresh database at the same moment", async () => {
    const url = await server.createDatabase("auth_race");
    const stores = await Promise.all(Array.from({ length: 4 }, () => openPostgresAuthStore({ connectionString: url, poolSize: 1 })));
    try {
      expect(stores.filter((s) => s.migration.auth.fromVersion === 0)).toHaveLength(1);
      expect(stores.filter((s) => s.migration.audit.fromVersion === 0)).toHaveLength(1);
      expect(await migratePostgresAuth(url, 5)).toEqual({ fromVersion: 1, toVersion: 1 });
      expect(await migratePostgresAudit(url, 5)).toEqual({ fromVersion: 1, toVersion: 1 });
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("refuses a database migrated by newer auth code, and one whose applied migration has another name", async () => {
    const newer = await server.createDatabase("auth_newer");
    await migratePostgresAuth(newer, 1);
    await server.sql("INSERT INTO auth_schema_migrations (version, name, applied_at_ms) VALUES (99, 'future', 0)", databaseName(newer));
    await expect(openPostgresAuthStore({ connectionString: newer })).rejects.toMatchObject({ code: C.SCHEMA_TOO_NEW });
    const other = await server.createDatabase("auth_other");
    await server.sql("CREATE TABLE auth_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL); INSERT INTO auth_schema_migrations VALUES (1, 'not-ours', 0)", databaseName(other));
    await expect(migratePostgresAuth(other, 1)).rejects.toMatchObject({ code: C.SCHEMA_MISMATCH });
  });

  it("rolls a user change back when the server refuses its audit entry", async () => {
    const url = await server.createDatabase("auth_atomic");
    const auth = await openPostgresAuthStore({ connectionString: url });
    try {
      await auth.createUser(ADMIN, { actor: "cli:test" });
      // A constraint only the server knows: the entry passes the port's checks and fails at INSERT, after the UPDATE.
      await server.sql("ALTER TABLE audit_log ADD CONSTRAINT no_renames CHECK (action <> 'user.update')", databaseName(url));
      await expect(auth.updateUser("admin-1", { name: "Renamed" }, { actor: "admin-1", reason: "typo" })).rejects.toThrow(/no_renames/);
      expect((await auth.getUser("admin-1"))?.name).toBe("Admin");
      expect((await auth.audit.list({ limit: 10 })).map((e) => e.action)).toEqual(["user.create"]);
    } finally {
      await auth.close();
    }
  });

  it("refuses to read a time beyond the safe integer range instead of rounding it", async () => {
    const url = await server.createDatabase("auth_bigint");
    const auth = await openPostgresAuthStore({ connectionString: url });
    try {
      await auth.createUser(ADMIN, { actor: "cli:test" });
      await server.sql("UPDATE auth_users SET updated_at_ms = 9007199254740993", databaseName(url));
      await expect(auth.getUser("admin-1")).rejects.toMatchObject({ code: AUDIT_ERROR_CODES.NON_INTEGER });
    } finally {
      await auth.close();
    }
  });

  it("puts users and the audit log on PostgreSQL for a postgres:// URL, sharing one pool", async () => {
    const url = await server.createDatabase("auth_choose");
    expect(await migrateAuthAndAuditFor({ databaseUrl: url, sqlitePath: "/nonexistent/cloud.db" })).toMatchObject({ kind: "postgres", auth: { fromVersion: 0, toVersion: 1 } });
    const { auth, audit, kind } = await openAuthAndAuditFor({ databaseUrl: url.replace(/^postgres:/, "postgresql:"), sqlitePath: "/nonexistent/cloud.db" });
    try {
      expect(kind).toBe("postgres");
      expect(audit).toBe(auth.audit);
      await auth.createUser(ADMIN, { actor: "cli:test" });
      expect((await audit.list({ limit: 10 })).map((e) => e.entityId)).toEqual(["admin-1"]);
    } finally {
      await auth.close();
    }
  });
});
