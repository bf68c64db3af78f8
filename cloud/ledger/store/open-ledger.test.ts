// openLedger / migrateLedger: the engine follows the database URL, and `agri-cloud migrate` learns which versions it
// moved between, on SQLite and on a throwaway PostgreSQL server.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresServer } from "../../../test/harness/postgres.js";
import { LATEST_SCHEMA_VERSION } from "./migrations.js";
import { ledgerKind, migrateLedger, openLedger, redactUrl } from "./open-ledger.js";
import { LATEST_POSTGRES_SCHEMA_VERSION } from "./postgres-migrations.js";

let server: PostgresServer;
let dir: string;
beforeAll(async () => {
  server = await startPostgres();
  dir = mkdtempSync(join(tmpdir(), "agri-open-ledger-"));
});
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("openLedger", () => {
  it("chooses PostgreSQL for postgres:// and postgresql:// URLs and SQLite for anything else", () => {
    expect(ledgerKind("postgres://u@h/db")).toBe("postgres");
    expect(ledgerKind("postgresql://u@h/db")).toBe("postgres");
    expect(ledgerKind("POSTGRES://u@h/db")).toBe("postgres");
    expect(ledgerKind(undefined)).toBe("sqlite");
    expect(ledgerKind("")).toBe("sqlite");
    expect(ledgerKind("mysql://u@h/db")).toBe("sqlite");
    expect(ledgerKind("/var/lib/agri/postgres://x")).toBe("sqlite");
  });

  it("opens the SQLite file when no database URL is given, and PostgreSQL when one is", async () => {
    const sqlite = await openLedger({ sqlitePath: join(dir, "a.db") });
    expect(sqlite.kind).toBe("sqlite");
    await sqlite.openAccount({ accountId: "rev", kind: "revenue-electricity", villageId: "v" });
    expect(await sqlite.balance("rev")).toBe(0);
    await sqlite.close();

    const postgres = await openLedger({ databaseUrl: await server.createDatabase("open"), sqlitePath: join(dir, "unused.db") });
    expect(postgres.kind).toBe("postgres");
    await postgres.openAccount({ accountId: "rev", kind: "revenue-electricity", villageId: "v" });
    expect(await postgres.balance("rev")).toBe(0);
    await postgres.close();
  });

  it("fails clearly when the PostgreSQL server cannot be reached", async () => {
    await expect(openLedger({ databaseUrl: `postgres://postgres@127.0.0.1:1/none`, sqlitePath: join(dir, "b.db") })).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe("migrateLedger", () => {
  it("reports from 0 to the latest version on a new SQLite file, then latest to latest", async () => {
    const sqlitePath = join(dir, "migrate.db");
    expect(await migrateLedger({ sqlitePath })).toEqual({ kind: "sqlite", target: sqlitePath, fromVersion: 0, toVersion: LATEST_SCHEMA_VERSION });
    expect(await migrateLedger({ sqlitePath })).toEqual({ kind: "sqlite", target: sqlitePath, fromVersion: LATEST_SCHEMA_VERSION, toVersion: LATEST_SCHEMA_VERSION });
  });

  it("reports from 0 to the latest version on a new PostgreSQL database, then latest to latest", async () => {
    const databaseUrl = await server.createDatabase("migrate");
    const target = redactUrl(databaseUrl);
    expect(await migrateLedger({ databaseUrl, sqlitePath: join(dir, "unused.db") })).toEqual({ kind: "postgres", target, fromVersion: 0, toVersion: LATEST_POSTGRES_SCHEMA_VERSION });
    expect(await migrateLedger({ databaseUrl, sqlitePath: join(dir, "unused.db") })).toEqual({ kind: "postgres", target, fromVersion: LATEST_POSTGRES_SCHEMA_VERSION, toVersion: LATEST_POSTGRES_SCHEMA_VERSION });
  });

  it("never prints a database password", () => {
    expect(redactUrl("postgres://ledger:s3cret@db.example:5432/agri")).toBe("postgres://ledger:***@db.example:5432/agri");
    expect(redactUrl("postgres://ledger@db.example/agri")).toBe("postgres://ledger@db.example/agri");
  });
});
