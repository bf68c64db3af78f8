// The SQLite registry: the shared registry contract on a temporary file per test, plus what only a file shows: one
// file shared with the ledger (each with its own migrations table), upgrading a file left by older code, refusing a
// file migrated by newer code, and open-registry.ts choosing this engine when no PostgreSQL URL is configured.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openSqliteLedger } from "../ledger/store/sqlite-ledger.js";
import { REGISTRY_ERROR_CODES as C } from "./errors.js";
import { REGISTRY_MIGRATIONS, REGISTRY_SCHEMA_VERSION } from "./migrations.js";
import { migrateRegistryFor, openRegistryFor } from "./open-registry.js";
import { runRegistryContract } from "./registry.contract.js";
import { openRegistry, type NewGrant } from "./registry.js";

runRegistryContract("SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "registry-contract-"));
  const path = join(dir, "cloud.db");
  return {
    open: (now) => Promise.resolve(openRegistry({ path, now })),
    rawSql: (sql) => {
      const db = new Database(path);
      try {
        db.exec(sql);
      } finally {
        db.close();
      }
      return Promise.resolve();
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

// ─── what only a file shows ───────────────────────────────────────────────────────────────────────────────────────

let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "registry-sqlite-"));
  path = join(dir, "cloud.db");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A registry file as version-2 code left it, with one meter and one grant. Raw SQL: the file format is the contract. */
function versionTwoFile(): void {
  const db = new Database(path);
  db.exec("CREATE TABLE registry_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL) STRICT");
  for (const m of REGISTRY_MIGRATIONS.filter((x) => x.version <= 2)) {
    db.exec(m.sql);
    db.prepare("INSERT INTO registry_schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)").run(m.version, m.name, 1);
  }
  db.exec(`
INSERT INTO registry_villages VALUES ('v1', 'Village', 1);
INSERT INTO registry_households (household_id, village_id, name, overdraft_fen, created_at_ms) VALUES ('h1', 'v1', 'Li', 0, 1);
INSERT INTO registry_gateways VALUES ('gw-1', 'v1', 'scrypt$unused', 1, 1);
INSERT INTO registry_meters (meter_id, gateway_id, household_id, tariff_id, initial_wh, reconnect, created_at_ms) VALUES ('m1', 'gw-1', 'h1', 'flat', 0, 'automatic', 1);
INSERT INTO registry_grants (meter_id, grant_seq, limit_wh, register_wh, command_id, gateway_id, issued_at_ms, expires_at_ms, friendly_json)
  VALUES ('m1', 1, 5000, 0, 'cmd-00000001', 'gw-1', 1, 2, NULL);
`);
  db.close();
}

const next = (more: Partial<NewGrant> = {}): NewGrant => ({ meterId: "m1", limitWh: 6000, registerWh: 100, commandId: "cmd-00000002", gatewayId: "gw-1", issuedAtMs: 10, expiresAtMs: 20, ...more });

describe("SQLite registry file", () => {
  it("shares one file with the ledger, each with its own migrations table", async () => {
    const registry = openRegistry({ path });
    await registry.addVillage({ villageId: "v1", name: "Village" });
    await registry.addHousehold({ householdId: "h1", villageId: "v1", name: "Li", overdraftFen: 50 });
    const ledger = openSqliteLedger({ path });
    await ledger.openAccount({ accountId: "a", kind: "village-cash", villageId: "v1" });
    await ledger.close();
    await registry.close();
    const again = openRegistry({ path });
    expect(await again.getHousehold("h1")).toEqual({ householdId: "h1", villageId: "v1", name: "Li", overdraftFen: 50 });
    await again.close();
    const db = new Database(path, { readonly: true });
    const tables = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%schema_migrations' ORDER BY name").all();
    db.close();
    expect(tables.map((t) => t.name)).toEqual(["registry_schema_migrations", "schema_migrations"]);
  });

  it("upgrades a version-2 file: its grants read back without stages, and the next grant stores its own", async () => {
    versionTwoFile();
    const registry = openRegistry({ path });
    try {
      const old = await registry.lastGrant("m1");
      expect(old).toMatchObject({ grantSeq: 1, limitWh: 5000 });
      expect(old).not.toHaveProperty("warnAtWh");
      const recorded = await registry.recordGrant(next({ warnAtWh: [3785, 946] }));
      expect(recorded).toMatchObject({ grantSeq: 2, warnAtWh: [3785, 946] });
      expect(await registry.lastGrant("m1")).toEqual(recorded);
      expect(await registry.getMeter("m1")).toEqual({ meterId: "m1", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", initialWh: 0, reconnect: "automatic" });
    } finally {
      await registry.close();
    }
  });

  it("refuses a file migrated by newer code", async () => {
    await openRegistry({ path }).close();
    const db = new Database(path);
    db.prepare("INSERT INTO registry_schema_migrations (version, name, applied_at_ms) VALUES (99, 'from-the-future', 0)").run();
    db.close();
    expect(() => openRegistry({ path })).toThrow(expect.objectContaining({ code: C.SCHEMA_TOO_NEW }));
  });

  it("is the engine openRegistryFor picks without a PostgreSQL URL, and migrateRegistryFor reports the versions it moved", async () => {
    expect(await migrateRegistryFor({ sqlitePath: path, databaseUrl: undefined })).toEqual({ kind: "sqlite", target: path, fromVersion: 0, toVersion: REGISTRY_SCHEMA_VERSION });
    expect(await migrateRegistryFor({ sqlitePath: path, databaseUrl: "file:cloud.db" })).toEqual({ kind: "sqlite", target: path, fromVersion: REGISTRY_SCHEMA_VERSION, toVersion: REGISTRY_SCHEMA_VERSION });
    const registry = await openRegistryFor({ sqlitePath: path, databaseUrl: undefined });
    try {
      expect([registry.kind, registry.target]).toEqual(["sqlite", path]);
    } finally {
      await registry.close();
    }
  });
});
