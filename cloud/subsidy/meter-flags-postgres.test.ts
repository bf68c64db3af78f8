// The PostgreSQL meter flags: the shared contract on a throwaway server (one database per test, several pools on it
// standing in for several workers), plus workers migrating a fresh database at once, a database migrated by newer
// code refused, and meter-flags-open.ts choosing this engine for a postgres:// URL.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresServer } from "../../test/harness/postgres.js";
import { SUBSIDY_ERROR_CODES as C } from "./errors.js";
import { runMeterFlagsContract } from "./meter-flags.contract.js";
import { migrateMeterFlagsFor, openMeterFlagStoreFor } from "./meter-flags-open.js";
import { openPostgresMeterFlagStore } from "./postgres-meter-flags.js";
import { POSTGRES_METER_FLAGS_SCHEMA_VERSION } from "./postgres-meter-flags-migrations.js";

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server.stop();
});

runMeterFlagsContract("PostgreSQL", () => {
  let url: Promise<string> | undefined;
  const database = (): Promise<string> => (url ??= server.createDatabase("meter_flags_contract"));
  return {
    open: async () => openPostgresMeterFlagStore({ connectionString: await database(), poolSize: 2 }),
    dispose: () => undefined,
  };
});

const databaseName = (url: string): string => new URL(url).pathname.slice(1);

describe("the PostgreSQL meter-flags database", () => {
  it("is migrated once when four workers open a fresh database at once", async () => {
    const url = await server.createDatabase("meter_flags_migrate");
    const stores = await Promise.all([1, 2, 3, 4].map(() => openPostgresMeterFlagStore({ connectionString: url, poolSize: 1 })));
    try {
      expect(stores.map((s) => s.migration.fromVersion).sort()).toEqual([0, 1, 1, 1]);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("refuses a database migrated by newer code", async () => {
    const url = await server.createDatabase("meter_flags_newer");
    await (await openPostgresMeterFlagStore({ connectionString: url })).close();
    await server.sql("INSERT INTO meter_flags_schema_migrations VALUES (99, 'from-the-future', 1)", databaseName(url));
    await expect(openPostgresMeterFlagStore({ connectionString: url })).rejects.toMatchObject({ code: C.INVALID });
  });

  it("refuses to read a stored silentSince beyond 2^53 rather than round it", async () => {
    const url = await server.createDatabase("meter_flags_bigint");
    const store = await openPostgresMeterFlagStore({ connectionString: url });
    try {
      await server.sql("INSERT INTO subsidy_meter_flags VALUES ('gw-1', 1, 0, 'm1', 'monitoring.gap', 5, 9007199254740993, 'x')", databaseName(url));
      await expect(store.flagsFor(["m1"], 0, Number.MAX_SAFE_INTEGER)).rejects.toMatchObject({ code: C.INVALID });
    } finally {
      await store.close();
    }
  });
});

describe("meter-flags-open.ts with a PostgreSQL URL", () => {
  it("opens the PostgreSQL engine for a postgres:// URL, whatever SQLite path is also given", async () => {
    const url = await server.createDatabase("meter_flags_open");
    const store = await openMeterFlagStoreFor({ databaseUrl: url, sqlitePath: "/nonexistent/cloud.db" });
    try {
      expect((store as { kind?: string }).kind).toBe("postgres");
    } finally {
      await store.close();
    }
  });

  it("migrates the PostgreSQL database for `agri-cloud migrate`, then has nothing to do", async () => {
    const url = await server.createDatabase("meter_flags_cli");
    expect(await migrateMeterFlagsFor({ databaseUrl: url, sqlitePath: "/nonexistent/cloud.db" })).toMatchObject({ kind: "postgres", fromVersion: 0, toVersion: POSTGRES_METER_FLAGS_SCHEMA_VERSION });
    expect(await migrateMeterFlagsFor({ databaseUrl: url, sqlitePath: "/nonexistent/cloud.db" })).toMatchObject({ fromVersion: POSTGRES_METER_FLAGS_SCHEMA_VERSION });
  });
});
