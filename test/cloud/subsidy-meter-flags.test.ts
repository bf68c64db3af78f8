// Meter flags from event uplinks (cloud/subsidy/meter-flags.ts): idempotent recording on (gatewayId, seq, index),
// offline stretches paired and clipped to the window, tamper and bypass told apart, other events ignored.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EventBatch } from "../../protocols/mqtt/messages.js";
import { flagsInWindow, openMeterFlagStore, type MeterFlagStore } from "../../cloud/subsidy/meter-flags.js";

const at = (iso: string): number => Date.parse(iso);
const WINDOW = [at("2026-06-01T00:00:00Z"), at("2026-07-01T00:00:00Z")] as const;

let dir: string;
let db: Database.Database;
let flags: MeterFlagStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "subsidy-flags-"));
  db = new Database(join(dir, "flags.db"));
  flags = openMeterFlagStore(db);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const batch = (seq: number, events: EventBatch["events"]): EventBatch => ({ v: 1, gatewayId: "gw-1", seq, sentAt: "2026-06-10T00:00:00.000Z", events });

describe("recordMeterFlags", () => {
  it("records a redelivered batch once", async () => {
    const b = batch(7, [{ type: "tamper", deviceId: "m1", at: "2026-06-05T00:00:00.000Z", kind: "cover_open", detail: "cover" }]);
    expect(flags.recordMeterFlags("gw-1", b)).toBe(1);
    expect(flags.recordMeterFlags("gw-1", b)).toBe(0);
    expect((await flags.flagsFor(["m1"], ...WINDOW)).get("m1")).toHaveLength(1);
  });

  it("ignores events that say nothing about a meter's billing (alarms, relays, grants)", () => {
    const b = batch(8, [
      { type: "credit.low", meterId: "m1", at: "2026-06-05T00:00:00.000Z", level: 1, remainingWh: 100, grantSeq: 3 },
      { type: "sensor.fault", deviceId: "s1", at: "2026-06-05T00:00:00.000Z", faulted: true },
    ]);
    expect(flags.recordMeterFlags("gw-1", b)).toBe(0);
  });

  it("tells a suspected bypass from other tamper and pairs an offline stretch that began before the window", async () => {
    flags.recordMeterFlags("gw-1", batch(1, [{ type: "device.offline", deviceId: "m1", at: "2026-05-30T00:00:00.000Z", consecutiveFailures: 5 }]));
    flags.recordMeterFlags("gw-1", batch(2, [
      { type: "device.online", deviceId: "m1", at: "2026-06-02T00:00:00.000Z" },
      { type: "tamper", deviceId: "m1", at: "2026-06-03T00:00:00.000Z", kind: "bypass_suspected", detail: "current flows, register still" },
      { type: "tamper", deviceId: "m2", at: "2026-06-04T00:00:00.000Z", kind: "energy_jump", detail: "+900 kWh in 15 min" },
    ]));
    const result = await flags.flagsFor(["m1", "m2", "m3"], ...WINDOW);
    expect(result.get("m1")?.map((f) => [f.kind, f.atMs, f.untilMs])).toEqual([
      ["offline", WINDOW[0], at("2026-06-02T00:00:00Z")],
      ["bypass", at("2026-06-03T00:00:00Z"), undefined],
    ]);
    expect(result.get("m2")?.map((f) => f.kind)).toEqual(["tamper"]);
    expect(result.has("m3")).toBe(false);
  });
});

describe("flagsInWindow", () => {
  it("runs an offline stretch that never ended to the window's end, from a monitoring gap's silentSince", () => {
    expect(flagsInWindow([{ meterId: "m1", eventType: "monitoring.gap", atMs: at("2026-06-20T01:00:00Z"), sinceMs: at("2026-06-20T00:00:00Z"), detail: "silent" }], ...WINDOW)).toEqual([
      { meterId: "m1", kind: "offline", atMs: at("2026-06-20T00:00:00Z"), untilMs: WINDOW[1], detail: "silent" },
    ]);
  });

  it("drops what lies wholly outside the window", () => {
    expect(flagsInWindow([
      { meterId: "m1", eventType: "device.offline", atMs: at("2026-05-01T00:00:00Z"), detail: "x" },
      { meterId: "m1", eventType: "device.online", atMs: at("2026-05-02T00:00:00Z"), detail: "x" },
      { meterId: "m1", eventType: "tamper", atMs: at("2026-07-02T00:00:00Z"), detail: "cover_open: x" },
    ], ...WINDOW)).toEqual([]);
  });
});
