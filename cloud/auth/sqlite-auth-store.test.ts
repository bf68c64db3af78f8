// The SQLite auth store: the shared AuthStore contract on temporary files (each open a separate handle, as two
// processes would have), plus what only the file shows — its migrations table, refusing a file migrated by newer
// code, a handle shared with the audit log, and `agri-cloud user add` on cloud.db.

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openRegistry, type Registry } from "../registry/registry.js";
import { runAuthStoreContract } from "./auth-store.contract.js";
import { addUserFromCli } from "./cli-add-user.js";
import { AUTH_ERROR_CODES as C } from "./errors.js";
import { migrateAuthAndAuditFor, openAuthAndAuditFor } from "./open-auth.js";
import { openSqliteAuthStore, type SqliteAuthStore } from "./sqlite-auth-store.js";

runAuthStoreContract("SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "auth-contract-"));
  const path = join(dir, "cloud.db");
  return {
    open: (options) => Promise.resolve(openSqliteAuthStore({ path, ...options })),
    rawRows: (sql) =>
      new Promise((resolve) => {
        const raw = new Database(path, { readonly: true });
        try {
          resolve(raw.prepare(sql).all() as Record<string, unknown>[]);
        } finally {
          raw.close();
        }
      }),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "auth-store-"));
  path = join(dir, "cloud.db");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("SQLite auth store on cloud.db", () => {
  let auth: SqliteAuthStore;

  beforeEach(() => {
    auth = openSqliteAuthStore({ path });
  });

  afterEach(async () => {
    await auth.close();
  });

  it("records its schema and the audit log's in their own migrations tables", () => {
    expect(auth.db.prepare("SELECT version, name FROM auth_schema_migrations").all()).toEqual([{ version: 1, name: "users-sessions-api-tokens" }]);
    expect(auth.db.prepare("SELECT version FROM audit_schema_migrations").all()).toEqual([{ version: 1 }]);
  });

  it("refuses a file migrated by newer auth code", async () => {
    auth.db.prepare("INSERT INTO auth_schema_migrations (version, name, applied_at_ms) VALUES (99, 'future', 0)").run();
    await auth.close();
    expect(() => (auth = openSqliteAuthStore({ path }))).toThrow(expect.objectContaining({ code: C.SCHEMA_TOO_NEW }) as Error);
    auth = openSqliteAuthStore({ path: join(dir, "other.db") });
  });

  it("opens on a handle another store owns, and leaves it open when closed", async () => {
    const shared = new Database(path);
    const onShared = openSqliteAuthStore({ db: shared });
    await onShared.createUser({ userId: "admin-2", name: "A", roles: ["admin"], password: "plough-river-42" }, { actor: "t" });
    await onShared.close();
    expect(shared.open).toBe(true);
    expect(await auth.getUser("admin-2")).toBeDefined();
    shared.close();
  });

  it("files the entry under the village of the household the user has inside the transaction, when it changed after the lookup", async () => {
    const other = new Database(path);
    const moving = openSqliteAuthStore({
      path,
      villageOfHousehold: async (id) => {
        // Another process moves the farmer to h2 after this lookup and before the change's transaction.
        if (id === "h1") other.prepare("UPDATE auth_users SET household_id = 'h2' WHERE user_id = 'farmer-li'").run();
        return Promise.resolve({ h1: "v1", h2: "v2" }[id]);
      },
    });
    try {
      await auth.createUser({ userId: "farmer-li", name: "Li", roles: ["farmer"], householdId: "h1", password: "millet-harvest-9" }, { actor: "t" });
      const after = await moving.updateUser("farmer-li", { name: "Li Wei" }, { actor: "t" });
      expect(after.householdId).toBe("h2");
      expect((await moving.audit.list({ entityId: "farmer-li", limit: 10 })).at(-1)).toMatchObject({ action: "user.update", villageId: "v2" });
    } finally {
      await moving.close();
      other.close();
    }
  });

  it("needs a path or a handle", () => {
    expect(() => openSqliteAuthStore({})).toThrow(expect.objectContaining({ code: C.INVALID }) as Error);
  });
});

describe("choosing the engine", () => {
  it("keeps users and the audit log on cloud.db without a postgres URL, sharing one handle", async () => {
    const { auth, audit, kind } = await openAuthAndAuditFor({ databaseUrl: "sqlite:ignored", sqlitePath: path });
    try {
      expect(kind).toBe("sqlite");
      expect(audit).toBe(auth.audit);
      await auth.createUser({ userId: "admin-2", name: "A", roles: ["admin"], password: "plough-river-42" }, { actor: "t" });
      expect((await audit.list({ limit: 10 })).map((e) => e.action)).toEqual(["user.create"]);
    } finally {
      await auth.close();
    }
  });

  it("migrates cloud.db's auth and audit schemas for agri-cloud migrate, then has nothing to do", async () => {
    expect(await migrateAuthAndAuditFor({ sqlitePath: path })).toEqual({ kind: "sqlite", target: path, auth: { fromVersion: 0, toVersion: 1 }, audit: { fromVersion: 0, toVersion: 1 } });
    expect(await migrateAuthAndAuditFor({ sqlitePath: path })).toMatchObject({ auth: { fromVersion: 1, toVersion: 1 }, audit: { fromVersion: 1, toVersion: 1 } });
  });
});

describe("agri-cloud user add", () => {
  let registry: Registry;

  beforeEach(async () => {
    registry = openRegistry({ path });
    await registry.addVillage({ villageId: "v1", name: "East" });
  });

  afterEach(async () => {
    await registry.close();
  });

  it("creates the first admin from a password file, without its trailing newline, audited as the OS user", async () => {
    const file = join(dir, "pw");
    writeFileSync(file, "plough-river-42\n", { mode: 0o600 });
    const warnings: string[] = [];
    const user = await addUserFromCli({ sqlitePath: path }, registry, { userId: "root-admin", name: "Admin", role: "admin", passwordFile: file }, (m) => warnings.push(m));
    expect(user.roles).toEqual(["admin"]);
    expect(warnings).toEqual([]);
    const auth = openSqliteAuthStore({ path });
    try {
      expect(await auth.verifyLogin("root-admin", "plough-river-42")).toBeDefined();
      expect((await auth.audit.list({ entityId: "root-admin", limit: 1 }))[0]?.actor).toMatch(/^cli/);
    } finally {
      await auth.close();
    }
  });

  it("warns when the password file is readable by others", async () => {
    const file = join(dir, "pw");
    writeFileSync(file, "plough-river-42");
    chmodSync(file, 0o644);
    const warnings: string[] = [];
    await addUserFromCli({ sqlitePath: path }, registry, { userId: "off-2", name: "O", role: "village-officer,village-approver", village: "v1", passwordFile: file }, (m) => warnings.push(m));
    expect(warnings).toEqual([expect.stringMatching(/readable by other users/) as string]);
  });

  it("refuses a village that is not in the registry before reading the password", async () => {
    await expect(addUserFromCli({ sqlitePath: path }, registry, { userId: "off-3", name: "O", role: "village-officer", village: "v9", passwordFile: join(dir, "missing") })).rejects.toMatchObject({
      code: C.INVALID,
      message: "--village: no village v9",
    });
  });

  it("refuses a household that is not in the registry", async () => {
    await expect(addUserFromCli({ sqlitePath: path }, registry, { userId: "farmer-9", name: "F", role: "farmer", household: "h9", passwordFile: join(dir, "missing") })).rejects.toMatchObject({
      code: C.INVALID,
      message: "--household: no household h9",
    });
  });
});
