// The SQLite meter flags: the shared contract on a temporary cloud.db per test (several connections on one file stand
// in for several processes), plus meter-flags-open.ts choosing this engine without a PostgreSQL URL, on a path it
// opens itself or on a connection the caller keeps.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EventBatch } from "../../protocols/mqtt/messages.js";
import { runMeterFlagsContract } from "./meter-flags.contract.js";
import { migrateMeterFlagsFor, openMeterFlagStoreFor } from "./meter-flags-open.js";

runMeterFlagsContract("SQLite", () => {
  const dir = mkdtempSync(join(tmpdir(), "meter-flags-contract-"));
  const sqlitePath = join(dir, "cloud.db");
  return {
    open: () => openMeterFlagStoreFor({ sqlitePath }),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
});

let dir: string;
let sqlitePath: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "meter-flags-sqlite-"));
  sqlitePath = join(dir, "cloud.db");
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const tamper: EventBatch = { v: 1, gatewayId: "gw-1", seq: 1, sentAt: "2026-06-10T00:00:00.000Z", events: [{ type: "tamper", deviceId: "m1", at: "2026-06-05T00:00:00.000Z", kind: "cover_open", detail: "c" }] };

describe("meter-flags-open.ts without a PostgreSQL URL", () => {
  it("leaves a caller's connection open when the store closes", async () => {
    const db = new Database(sqlitePath);
    try {
      const store = await openMeterFlagStoreFor({ db, databaseUrl: "sqlite:///x" });
      await store.recordMeterFlags("gw-1", tamper);
      await store.close();
      expect(db.prepare("SELECT COUNT(*) AS n FROM subsidy_meter_flags").get()).toEqual({ n: 1 });
    } finally {
      db.close();
    }
  });

  it("migrates a fresh file to version 1, then has nothing to do", async () => {
    expect(await migrateMeterFlagsFor({ sqlitePath })).toEqual({ kind: "sqlite", target: sqlitePath, fromVersion: 0, toVersion: 1 });
    expect(await migrateMeterFlagsFor({ sqlitePath })).toMatchObject({ fromVersion: 1, toVersion: 1 });
  });
});
