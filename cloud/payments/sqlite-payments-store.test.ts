// The SQLite payments store: the shared contract on a temporary cloud.db per test (several handles on one file stand
// in for several processes), plus what only a file shows: a file left by version-1 code upgraded in place (its
// unfinished requests, which carry no claim, may be taken over at once), a file migrated by newer code refused, and
// open-payments-store.ts choosing this engine when no PostgreSQL URL is configured.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PAYMENT_ERROR_CODES as C } from "./errors.js";
import { migratePaymentsFor, openPaymentsStoreFor } from "./open-payments-store.js";
import { openPaymentsStore, PAYMENTS_SQLITE_SCHEMA_VERSION } from "./orders-store.js";
import { runPaymentsStoreContract } from "./payments-store.contract.js";

runPaymentsStoreContract("SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "payments-contract-"));
  const path = join(dir, "cloud.db");
  return {
    open: (now) => Promise.resolve(openPaymentsStore({ path, now })),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "payments-sqlite-"));
  path = join(dir, "cloud.db");
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** cloud.db as version-1 code left it, with one unfinished money request. Raw SQL: the file format is the contract. */
function versionOneFile(): void {
  const db = new Database(path);
  db.exec(`
CREATE TABLE payments_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL) STRICT;
INSERT INTO payments_schema_migrations VALUES (1, 'payment-orders-callbacks-household-money-requests', 1);
CREATE TABLE payment_orders (order_id TEXT PRIMARY KEY, provider TEXT NOT NULL, household_id TEXT NOT NULL, village_id TEXT NOT NULL,
  amount_fen INTEGER NOT NULL CHECK (amount_fen > 0), state TEXT NOT NULL, created_by TEXT NOT NULL, created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL, pay_url TEXT NOT NULL, qr_payload TEXT NOT NULL, provider_txn_id TEXT, posting_id INTEGER, paid_at_ms INTEGER,
  closed_at_ms INTEGER, UNIQUE (provider, provider_txn_id)) STRICT;
CREATE TABLE payment_callbacks (callback_id INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL, provider_txn_id TEXT NOT NULL,
  order_id TEXT NOT NULL, amount_fen INTEGER NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL, received_at_ms INTEGER NOT NULL) STRICT;
CREATE TABLE household_money_requests (household_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, request_json TEXT NOT NULL,
  at_ms INTEGER NOT NULL, posting_id INTEGER, balance_fen INTEGER, PRIMARY KEY (household_id, idempotency_key)) STRICT;
INSERT INTO household_money_requests (household_id, idempotency_key, request_json, at_ms) VALUES ('hh-li', 'old-key', '{"kind":"top-up"}', 5);
`);
  db.close();
}

describe("the SQLite payments file", () => {
  it("upgrades a version-1 file in place, and lets a retry take over its unfinished request with its atMs", async () => {
    versionOneFile();
    const store = openPaymentsStore({ path, now: () => 1_000 });
    try {
      const claim = await store.claimMoneyRequest({ householdId: "hh-li", idempotencyKey: "old-key", requestJson: '{"kind":"top-up"}', atMs: 1_000, claimToken: "t", leaseMs: 30_000 });
      expect(claim).toMatchObject({ outcome: "claimed", atMs: 5 });
    } finally {
      await store.close();
    }
  });

  it("refuses a file migrated by newer code, leaving it as it was", () => {
    versionOneFile();
    const db = new Database(path);
    db.prepare("INSERT INTO payments_schema_migrations VALUES (9, 'from-the-future', 1)").run();
    db.close();
    expect(() => openPaymentsStore({ path })).toThrow(expect.objectContaining({ code: C.STORE_SCHEMA_TOO_NEW }));
    const after = new Database(path, { readonly: true });
    expect(after.prepare("SELECT MAX(version) AS v FROM payments_schema_migrations").get()).toEqual({ v: 9 });
    after.close();
  });

  it("refuses a file whose version 1 was applied by other code", () => {
    const db = new Database(path);
    db.exec("CREATE TABLE payments_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL) STRICT");
    db.prepare("INSERT INTO payments_schema_migrations VALUES (1, 'someone-elses', 1)").run();
    db.close();
    expect(() => openPaymentsStore({ path })).toThrow(expect.objectContaining({ code: C.STORE_SCHEMA_MISMATCH }));
  });
});

describe("open-payments-store.ts without a PostgreSQL URL", () => {
  it("opens the SQLite engine on the given file for no URL or a non-postgres one", async () => {
    for (const databaseUrl of [undefined, "sqlite:///elsewhere.db"]) {
      const store = await openPaymentsStoreFor({ databaseUrl, sqlitePath: path });
      expect([store.kind, store.target]).toEqual(["sqlite", path]);
      await store.close();
    }
  });

  it("migrates a fresh file to this code's version, then has nothing to do", async () => {
    expect(await migratePaymentsFor({ sqlitePath: path })).toEqual({ kind: "sqlite", target: path, fromVersion: 0, toVersion: PAYMENTS_SQLITE_SCHEMA_VERSION });
    expect(await migratePaymentsFor({ sqlitePath: path })).toMatchObject({ fromVersion: PAYMENTS_SQLITE_SCHEMA_VERSION, toVersion: PAYMENTS_SQLITE_SCHEMA_VERSION });
  });
});
