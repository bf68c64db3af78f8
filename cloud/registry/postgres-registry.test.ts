// The PostgreSQL registry: the shared registry contract on a throwaway server (one database per store), plus what
// only a shared server can show: several pools racing on one meter's grants, one tariff's versions and the top-up
// notices; concurrent migrations; the ledger and the registry in one database; connections killed mid-transaction;
// integers beyond the safe range; and open-registry.ts choosing this engine for a postgres:// URL.

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type PostgresServer } from "../../test/harness/postgres.js";
import { hashSecret } from "../broker/secrets.js";
import { openPostgresLedger } from "../ledger/store/postgres-ledger.js";
import { tariffScheduleSchema } from "../ledger/tariff.js";
import { REGISTRY_ERROR_CODES as C } from "./errors.js";
import { migrateRegistryFor, openRegistryFor } from "./open-registry.js";
import { LATEST_POSTGRES_REGISTRY_SCHEMA_VERSION, migratePostgresRegistryOn, POSTGRES_REGISTRY_MIGRATIONS } from "./postgres-registry-migrations.js";
import { openPostgresRegistry, type PostgresRegistry } from "./postgres-registry.js";
import { runRegistryContract } from "./registry.contract.js";
import type { NewGrant, Registry } from "./registry.js";

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server.stop();
});

runRegistryContract("PostgreSQL", () => {
  let url: Promise<string> | undefined;
  const database = (): Promise<string> => (url ??= server.createDatabase("registry_contract"));
  return {
    open: async (now) => openPostgresRegistry({ connectionString: await database(), now, poolSize: 4 }),
    rawSql: async (sql) => {
      await server.sql(sql, databaseName(await database()));
    },
    dispose: () => undefined,
  };
});

// ─── what only a shared server can show ──────────────────────────────────────────────────────────────────────────

const databaseName = (url: string): string => new URL(url).pathname.slice(1);

const grant = (meterId: string, commandId: string): NewGrant => ({ meterId, limitWh: 5_000, registerWh: 100, commandId, gatewayId: "gw-1", issuedAtMs: 1, expiresAtMs: 2 });

/** A fresh database with `count` registries (pools) on it, and one village, household, gateway, tariff and meter m-1. */
async function freshRegistries(count: number, options: { poolSize?: number; applicationName?: string } = {}): Promise<{ url: string; registries: PostgresRegistry[] }> {
  const url = await server.createDatabase("registry_shared");
  const registries: PostgresRegistry[] = [];
  for (let i = 0; i < count; i++) {
    registries.push(await openPostgresRegistry({ connectionString: url, poolSize: options.poolSize ?? 4, ...(options.applicationName ? { applicationName: options.applicationName } : {}) }));
  }
  const [first] = registries;
  if (first === undefined) throw new Error("no registry");
  await first.addVillage({ villageId: "v1", name: "Village" });
  await first.addHousehold({ householdId: "h1", villageId: "v1", name: "Li" });
  await first.addGateway({ gatewayId: "gw-1", villageId: "v1", secretHash: await hashSecret("s") });
  await first.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } });
  await first.addMeter({ meterId: "m-1", gatewayId: "gw-1", householdId: "h1", tariffId: "flat" });
  return { url, registries };
}

async function closeAll(registries: readonly Registry[]): Promise<void> {
  await Promise.all(registries.map((r) => r.close()));
}

/** "ok" for each of `ops` that succeeded, the code of each refused one (anything else is rethrown). */
async function outcomes(ops: readonly Promise<unknown>[]): Promise<string[]> {
  return Promise.all(
    ops.map((op) =>
      op.then(
        () => "ok",
        (error: unknown) => {
          const code = (error as { code?: string }).code;
          if (code === undefined || !code.startsWith("REGISTRY_")) throw error;
          return code;
        },
      ),
    ),
  );
}

describe("PostgreSQL registry on a shared server", () => {
  it("allocates distinct, consecutive grant seqs when two pools race to record grants for one meter, losing none", { timeout: 60_000 }, async () => {
    const { registries } = await freshRegistries(2, { poolSize: 5 });
    try {
      const recorded = await Promise.all(Array.from({ length: 60 }, (_, i) => (registries[i % 2] as Registry).recordGrant(grant("m-1", `cmd-race-${String(i).padStart(4, "0")}`))));
      expect(recorded.map((g) => g.grantSeq).sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
      expect(await (registries[1] as Registry).lastGrant("m-1")).toMatchObject({ grantSeq: 60 });
      // Each grant is stored under the seq its caller was told.
      for (const g of recorded) expect((await (registries[0] as Registry).recordCommandAck(g.commandId, "accepted", undefined, 3))?.grantSeq).toBe(g.grantSeq);
    } finally {
      await closeAll(registries);
    }
  });

  it("checks a tariff version against the schedule it joins, even when two pools publish versions of one tariff at once", { timeout: 60_000 }, async () => {
    const { url, registries } = await freshRegistries(2, { poolSize: 5 });
    const [a, b] = registries as [PostgresRegistry, PostgresRegistry];
    try {
      for (let i = 0; i < 20; i++) {
        const tariffId = `t-${i}`;
        await a.addTariff({ tariffId, version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5000 } });
        // Each alone fits [v1]; together v3 would take effect before v2. Exactly one may win.
        const results = await outcomes([
          a.addTariff({ tariffId, version: 2, effectiveFrom: 5_000, prices: { kind: "flat", priceCentiFenPerKwh: 5100 } }),
          b.addTariff({ tariffId, version: 3, effectiveFrom: 4_000, prices: { kind: "flat", priceCentiFenPerKwh: 5200 } }),
        ]);
        expect(results.filter((r) => r === "ok")).toHaveLength(1);
        expect(results.filter((r) => r !== "ok")).toEqual([C.INVALID]);
      }
      const stored = await server.sql("SELECT tariff_id, COUNT(*)::int AS n FROM registry_tariffs WHERE tariff_id LIKE 't-%' GROUP BY tariff_id HAVING COUNT(*) <> 2", databaseName(url));
      expect(stored.rows).toEqual([]);
      for (let i = 0; i < 20; i++) expect(tariffScheduleSchema.safeParse(await b.tariffSchedule(`t-${i}`)).success).toBe(true);
    } finally {
      await closeAll(registries);
    }
  });

  it("lets exactly one of two pools publish a village's next policy version", async () => {
    const { registries } = await freshRegistries(2);
    const [a, b] = registries as [PostgresRegistry, PostgresRegistry];
    try {
      const results = await outcomes([
        a.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 1_000, policy: {} }),
        b.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 2_000, policy: {} }),
      ]);
      expect(results.filter((r) => r === "ok")).toHaveLength(1);
      expect((await a.villagePolicies("v1")).map((p) => p.version)).toEqual([1]);
    } finally {
      await closeAll(registries);
    }
  });

  it("never lets a reader's notice cursor pass a top-up notice that commits late, while two pools note top-ups at once", { timeout: 60_000 }, async () => {
    const { registries } = await freshRegistries(3, { poolSize: 6 });
    const [a, b, reader] = registries as [PostgresRegistry, PostgresRegistry, PostgresRegistry];
    const seen = new Set<number>();
    let writing = true;
    const poll = async (): Promise<void> => {
      let cursor = 0;
      for (;;) {
        const last = !writing;
        for (const n of await reader.topUpNoticesAfter(cursor)) {
          seen.add(n.postingId);
          cursor = n.noticeId;
        }
        if (last) return;
      }
    };
    try {
      const polling = poll();
      await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).noteTopUp("h1", i + 1, i)));
      writing = false;
      await polling;
      expect(seen.size).toBe(200);
    } finally {
      await closeAll(registries);
    }
  });

  it("lets several pools migrate a fresh database at once: one migrates, the others find it done", async () => {
    const url = await server.createDatabase("registry_migrate_race");
    const registries = await Promise.all(Array.from({ length: 5 }, () => openPostgresRegistry({ connectionString: url, poolSize: 1 })));
    try {
      expect(registries.map((r) => r.migration.fromVersion).sort()).toEqual([0, ...Array.from({ length: 4 }, () => LATEST_POSTGRES_REGISTRY_SCHEMA_VERSION)]);
      const rows = await server.sql("SELECT version FROM registry_schema_migrations ORDER BY version", databaseName(url));
      expect(rows.rows.map((r: { version: number }) => r.version)).toEqual(POSTGRES_REGISTRY_MIGRATIONS.map((m) => m.version));
    } finally {
      await closeAll(registries);
    }
  });

  it("refuses a database migrated by newer code, or by other code", async () => {
    const url = await server.createDatabase("registry_too_new");
    await (await openPostgresRegistry({ connectionString: url })).close();
    await server.sql("INSERT INTO registry_schema_migrations (version, name, applied_at_ms) VALUES (99, 'from-the-future', 0)", databaseName(url));
    await expect(openPostgresRegistry({ connectionString: url })).rejects.toMatchObject({ code: C.SCHEMA_TOO_NEW });
    await server.sql("DELETE FROM registry_schema_migrations WHERE version = 99; UPDATE registry_schema_migrations SET name = 'another-branch' WHERE version = 1", databaseName(url));
    await expect(openPostgresRegistry({ connectionString: url })).rejects.toMatchObject({ code: C.SCHEMA_MISMATCH });
  });

  it("applies all pending migrations in one transaction: a failing one leaves the database as it was", async () => {
    const url = await server.createDatabase("registry_half_migrated");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const broken = [...POSTGRES_REGISTRY_MIGRATIONS, { version: LATEST_POSTGRES_REGISTRY_SCHEMA_VERSION + 1, name: "broken", sql: "CREATE TABLE registry_extra (x INT); SELECT no_such_column FROM registry_extra" }];
      await expect(migratePostgresRegistryOn(client, 0, broken)).rejects.toThrow(/no_such_column/);
      expect((await client.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")).rows).toEqual([]);
      expect(await migratePostgresRegistryOn(client, 0)).toEqual({ fromVersion: 0, toVersion: LATEST_POSTGRES_REGISTRY_SCHEMA_VERSION });
    } finally {
      await client.end();
    }
  });

  it("shares one database with the PostgreSQL ledger: no table in common, each with its own migrations table", async () => {
    const url = await server.createDatabase("registry_with_ledger");
    const ledger = await openPostgresLedger({ connectionString: url, poolSize: 2 });
    const registry = await openPostgresRegistry({ connectionString: url, poolSize: 2 });
    try {
      expect(registry.migration.fromVersion).toBe(0);
      await ledger.openAccount({ accountId: "hh-1", kind: "household-prepaid", villageId: "v1", householdId: "h1" });
      await registry.addVillage({ villageId: "v1", name: "Village" });
      const tables = (await server.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name", databaseName(url))).rows.map((r: { table_name: string }) => r.table_name);
      expect(tables).toContain("ledger_schema_migrations");
      expect(tables).toContain("registry_schema_migrations");
      expect(tables.filter((t) => !t.startsWith("ledger_") && !t.startsWith("registry_"))).toEqual(["gateway_status", "uplink_records"]);
    } finally {
      await registry.close();
      await ledger.close();
    }
    const again = await openPostgresRegistry({ connectionString: url, poolSize: 1 });
    const ledgerAgain = await openPostgresLedger({ connectionString: url, poolSize: 1 });
    try {
      expect(again.migration).toEqual({ fromVersion: LATEST_POSTGRES_REGISTRY_SCHEMA_VERSION, toVersion: LATEST_POSTGRES_REGISTRY_SCHEMA_VERSION });
      expect(ledgerAgain.migration.fromVersion).toBe(ledgerAgain.migration.toVersion);
      expect(await again.getVillage("v1")).toEqual({ villageId: "v1", name: "Village" });
      expect(await ledgerAgain.getAccount("hh-1")).toMatchObject({ householdId: "h1" });
    } finally {
      await again.close();
      await ledgerAgain.close();
    }
  });

  it("commits nothing partial and loses nothing acknowledged when connections are killed mid-recordGrant and mid-addPlot", { timeout: 120_000 }, async () => {
    const { url, registries } = await freshRegistries(2, { poolSize: 3, applicationName: "agri-registry-victim" });
    const database = databaseName(url);
    const [a, b] = registries as [PostgresRegistry, PostgresRegistry];
    await a.addMeter({ meterId: "m-2", gatewayId: "gw-1", householdId: "h1", tariffId: "flat" });
    const acknowledged: { meterId: string; commandId: string; grantSeq: number }[] = [];
    const plots: string[] = [];
    let running = true;
    let kills = 0;
    const killer = (async () => {
      while (running) {
        const r = await server.sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'agri-registry-victim' AND datname = '${database}' AND pid <> pg_backend_pid()`);
        kills += r.rowCount ?? 0;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    const granter = async (registry: Registry, meterId: string): Promise<void> => {
      for (let i = 0; i < 120; i++) {
        const commandId = `cmd-${meterId}-${String(i).padStart(4, "0")}`;
        try {
          const g = await registry.recordGrant(grant(meterId, commandId));
          acknowledged.push({ meterId, commandId, grantSeq: g.grantSeq });
        } catch {
          // Killed: not acknowledged, so it may or may not be there; it must not be there in part.
        }
      }
    };
    const planter = async (registry: Registry): Promise<void> => {
      for (let i = 0; i < 80; i++) {
        try {
          await registry.addPlot({ plotId: `p-${i}`, householdId: "h1", name: "x", areaMilliMu: 1000, crop: "rice", recordedBy: "o" });
          plots.push(`p-${i}`);
        } catch {
          // As above.
        }
      }
    };
    try {
      await Promise.all([granter(a, "m-1"), granter(b, "m-1"), granter(b, "m-2"), planter(a), planter(b)]);
    } finally {
      running = false;
      await killer;
    }
    expect(kills).toBeGreaterThan(0);
    expect(acknowledged.length).toBeGreaterThan(0);
    const survivor = await openPostgresRegistry({ connectionString: url, poolSize: 2 });
    try {
      for (const meterId of ["m-1", "m-2"]) {
        const seqs = (await server.sql(`SELECT grant_seq::int AS s FROM registry_grants WHERE meter_id = '${meterId}' ORDER BY grant_seq`, database)).rows.map((r: { s: number }) => r.s);
        expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      }
      for (const g of acknowledged) expect((await survivor.recordCommandAck(g.commandId, "accepted", undefined, 3))?.grantSeq).toBe(g.grantSeq);
      for (const plotId of plots) expect(await survivor.cropAt(plotId, 0)).toBe("rice");
      expect((await server.sql("SELECT plot_id FROM registry_plots p WHERE NOT EXISTS (SELECT 1 FROM registry_plot_crops c WHERE c.plot_id = p.plot_id)", database)).rows).toEqual([]);
    } finally {
      await survivor.close();
      await closeAll(registries);
    }
  });

  it("refuses to read back an int8 outside the safe integer range, naming the value, and reads 2^53 − 1 exactly", async () => {
    const { url, registries } = await freshRegistries(1);
    const [registry] = registries as [PostgresRegistry];
    try {
      await registry.recordGrant({ ...grant("m-1", "cmd-00000001"), limitWh: Number.MAX_SAFE_INTEGER });
      expect(await registry.highestLimitInForceWh("m-1")).toBe(Number.MAX_SAFE_INTEGER);
      await server.sql("UPDATE registry_grants SET limit_wh = 4611686018427387904", databaseName(url));
      await expect(registry.lastGrant("m-1")).rejects.toMatchObject({ code: C.NON_INTEGER, message: expect.stringContaining("4611686018427387904") as unknown });
      // The pool is unharmed: the next query works.
      expect(await registry.getHousehold("h1")).toMatchObject({ householdId: "h1" });
    } finally {
      await closeAll(registries);
    }
  });

  it("lists ids in byte order, as SQLite does, even in a database whose default collation is a language's", async () => {
    const name = `registry_icu_${process.pid}`;
    await server.sql(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`);
    const registry = await openPostgresRegistry({ connectionString: server.url(name), poolSize: 1 });
    try {
      // en-US puts "a-2" before "B-1"; byte order (and SQLite's BINARY) the other way round.
      const ordering = await server.sql("SELECT x FROM (VALUES ('a-2'), ('B-1')) AS t (x) ORDER BY x", name);
      expect(ordering.rows.map((r: { x: string }) => r.x)).toEqual(["a-2", "B-1"]);
      for (const villageId of ["a-2", "B-1"]) await registry.addVillage({ villageId, name: villageId });
      await registry.addHousehold({ householdId: "hh-b", villageId: "a-2", name: "x" });
      await registry.addHousehold({ householdId: "HH-c", villageId: "a-2", name: "y" });
      expect((await registry.listVillages()).map((v) => v.villageId)).toEqual(["B-1", "a-2"]);
      expect((await registry.householdsOfVillage("a-2")).map((h) => h.householdId)).toEqual(["HH-c", "hh-b"]);
    } finally {
      await registry.close();
    }
  });

  it("is the engine openRegistryFor picks for a postgres:// URL, reporting the URL without its password", async () => {
    const url = await server.createDatabase("registry_open_for");
    const withPassword = url.replace("postgres@", "postgres:hunter2@");
    expect(await migrateRegistryFor({ sqlitePath: "/nonexistent/cloud.db", databaseUrl: withPassword })).toMatchObject({ kind: "postgres", fromVersion: 0, toVersion: LATEST_POSTGRES_REGISTRY_SCHEMA_VERSION });
    const registry = await openRegistryFor({ sqlitePath: "/nonexistent/cloud.db", databaseUrl: withPassword, poolSize: 1 });
    try {
      expect(registry.kind).toBe("postgres");
      expect(registry.target).not.toContain("hunter2");
      expect(registry.target).toContain("***");
      expect(await migrateRegistryFor({ sqlitePath: "/nonexistent/cloud.db", databaseUrl: url })).toMatchObject({ fromVersion: LATEST_POSTGRES_REGISTRY_SCHEMA_VERSION });
    } finally {
      await registry.close();
    }
  });
});
