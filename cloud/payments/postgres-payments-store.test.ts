// The PostgreSQL payments store: the shared contract on a throwaway server (one database per test, several pools on
// it standing in for several workers), plus what only a shared server shows: workers migrating a fresh database at
// once, a database migrated by newer code refused, a BIGINT beyond the safe range refused rather than rounded, many
// pools racing for many keys, and open-payments-store.ts choosing this engine for a postgres:// URL.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresServer } from "../../test/harness/postgres.js";
import { PAYMENT_ERROR_CODES as C } from "./errors.js";
import { migratePaymentsFor, openPaymentsStoreFor } from "./open-payments-store.js";
import { runPaymentsStoreContract } from "./payments-store.contract.js";
import { POSTGRES_PAYMENTS_SCHEMA_VERSION } from "./postgres-payments-migrations.js";
import { openPostgresPaymentsStore } from "./postgres-payments-store.js";

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server.stop();
});

runPaymentsStoreContract("PostgreSQL", () => {
  let url: Promise<string> | undefined;
  const database = (): Promise<string> => (url ??= server.createDatabase("payments_contract"));
  return {
    open: async (now) => openPostgresPaymentsStore({ connectionString: await database(), now, poolSize: 3 }),
    dispose: () => undefined,
  };
});

const databaseName = (url: string): string => new URL(url).pathname.slice(1);

describe("the PostgreSQL payments database", () => {
  it("is migrated once when four workers open a fresh database at once", async () => {
    const url = await server.createDatabase("payments_migrate");
    const stores = await Promise.all([1, 2, 3, 4].map(() => openPostgresPaymentsStore({ connectionString: url, poolSize: 1 })));
    try {
      expect(stores.map((s) => s.migration.fromVersion).sort()).toEqual([0, 1, 1, 1]);
      expect((await server.sql("SELECT version FROM payments_schema_migrations", databaseName(url))).rows).toEqual([{ version: POSTGRES_PAYMENTS_SCHEMA_VERSION }]);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("refuses a database migrated by newer code, before touching it", async () => {
    const url = await server.createDatabase("payments_newer");
    await (await openPostgresPaymentsStore({ connectionString: url })).close();
    await server.sql("INSERT INTO payments_schema_migrations VALUES (99, 'from-the-future', 1)", databaseName(url));
    await expect(openPostgresPaymentsStore({ connectionString: url })).rejects.toMatchObject({ code: C.STORE_SCHEMA_TOO_NEW });
  });

  it("refuses a database whose version 1 was applied by other code", async () => {
    const url = await server.createDatabase("payments_other");
    await server.sql("CREATE TABLE payments_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL); INSERT INTO payments_schema_migrations VALUES (1, 'someone-elses', 1)", databaseName(url));
    await expect(openPostgresPaymentsStore({ connectionString: url })).rejects.toMatchObject({ code: C.STORE_SCHEMA_MISMATCH });
  });

  it("refuses to read a stored amount beyond 2^53 rather than round it", async () => {
    const url = await server.createDatabase("payments_bigint");
    const store = await openPostgresPaymentsStore({ connectionString: url });
    try {
      await server.sql(
        "INSERT INTO payment_orders (order_id, provider, household_id, village_id, amount_fen, state, created_by, created_at_ms, expires_at_ms, pay_url, qr_payload) VALUES ('order-00000001', 'local', 'hh', 'v', 9007199254740993, 'created', 'x', 1, 2, 'u', 'q')",
        databaseName(url),
      );
      await expect(store.getOrder("order-00000001", 1)).rejects.toMatchObject({ code: C.NON_INTEGER });
    } finally {
      await store.close();
    }
  });

  it("gives each of 20 keys to exactly one of six pools claiming all of them at once", async () => {
    const url = await server.createDatabase("payments_claims");
    const stores = await Promise.all([0, 1, 2, 3, 4, 5].map(() => openPostgresPaymentsStore({ connectionString: url, poolSize: 2 })));
    try {
      const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`);
      const claims = await Promise.all(
        keys.flatMap((key) => stores.map((s, w) => s.claimMoneyRequest({ householdId: "hh", idempotencyKey: key, requestJson: "{}", atMs: 1, claimToken: `w${w}`, leaseMs: 60_000 }).then((c) => [key, c.outcome] as const))),
      );
      for (const key of keys) expect(claims.filter(([k, outcome]) => k === key && outcome === "claimed")).toHaveLength(1);
      expect(claims.filter(([, outcome]) => outcome === "in-progress")).toHaveLength(20 * 5);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});

describe("open-payments-store.ts with a PostgreSQL URL", () => {
  it("opens the PostgreSQL engine for a postgres:// URL, naming it without the password", async () => {
    const url = await server.createDatabase("payments_open");
    const withPassword = url.replace("postgres@", "postgres:secret@");
    const store = await openPaymentsStoreFor({ databaseUrl: withPassword, sqlitePath: "/nonexistent/cloud.db" });
    try {
      expect(store.kind).toBe("postgres");
      expect(store.target).not.toContain("secret");
    } finally {
      await store.close();
    }
  });

  it("migrates the PostgreSQL database for `agri-cloud migrate`, then has nothing to do", async () => {
    const url = await server.createDatabase("payments_cli");
    expect(await migratePaymentsFor({ databaseUrl: url, sqlitePath: "/nonexistent/cloud.db" })).toMatchObject({ kind: "postgres", fromVersion: 0, toVersion: POSTGRES_PAYMENTS_SCHEMA_VERSION });
    expect(await migratePaymentsFor({ databaseUrl: url, sqlitePath: "/nonexistent/cloud.db" })).toMatchObject({ fromVersion: POSTGRES_PAYMENTS_SCHEMA_VERSION });
  });
});
