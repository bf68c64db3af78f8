// The embedded SQLite TelemetryStore: the shared contract on temporary files (it has no server to lose, so the
// outage cases do not apply), plus what only it has: the retention window and a file that survives reopening.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openSqliteTelemetryStore } from "./sqlite-store.js";
import { runTelemetryStoreContract } from "./store.contract.js";

const dir = mkdtempSync(join(tmpdir(), "agri-telemetry-sqlite-"));
let files = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runTelemetryStoreContract("SQLite", () => ({
  open: (options) => Promise.resolve(openSqliteTelemetryStore({ ...options, path: join(dir, `t${files++}.db`) })),
}));

describe("SQLite telemetry store", () => {
  const sample = (atMs: number, value: number) => ({ deviceId: "m-1", pointId: "p_active_power", role: "active_power" as const, value, unit: "W" as const, at: new Date(atMs).toISOString() });

  it("deletes samples older than the retention window when it prunes", async () => {
    let nowMs = 1_800_000_000_000;
    const store = openSqliteTelemetryStore({ path: join(dir, "retention.db"), retentionMs: 3_600_000, now: () => nowMs });
    await store.write("gw-1", [sample(nowMs - 7_200_000, 1), sample(nowMs - 1_800_000, 2), sample(nowMs - 1000, 3)]);
    await store.flush({ timeoutMs: 5000 });
    expect(store.prune()).toBe(1);
    nowMs += 1_800_001;
    expect(store.prune()).toBe(1);
    const left = await store.query({ deviceId: "m-1", pointId: "p_active_power", fromMs: 0, toMs: nowMs });
    expect(left.map((p) => p.last)).toEqual([3]);
    await store.close();
  });

  it("keeps what it stored across a close and reopen of the file", async () => {
    const path = join(dir, "reopen.db");
    const first = openSqliteTelemetryStore({ path });
    await first.write("gw-1", [sample(Date.now() - 1000, 42)]);
    await first.close();
    const second = openSqliteTelemetryStore({ path });
    const points = await second.query({ deviceId: "m-1", pointId: "p_active_power", fromMs: 0, toMs: Date.now() });
    expect(points.map((p) => p.last)).toEqual([42]);
    await second.close();
  });

  it("refuses a sample whose time cannot be read, storing nothing of its batch", async () => {
    const store = openSqliteTelemetryStore({ path: join(dir, "bad.db") });
    await expect(store.write("gw-1", [sample(Date.now(), 1), { ...sample(0, 2), at: "yesterday" }])).rejects.toMatchObject({ code: "CLOUD_TELEMETRY_BAD_SAMPLE" });
    expect(store.stats().buffered).toBe(0);
    await store.close();
  });
});
