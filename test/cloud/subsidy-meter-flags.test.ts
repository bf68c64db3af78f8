// Meter flags from event uplinks (cloud/subsidy/meter-flags-rows.ts): the pure pairing of one meter's events into
// offline stretches clipped to the window. What the stores record and answer (idempotency, tamper vs bypass, bad
// batches, several workers) is the engine contract, cloud/subsidy/meter-flags.contract.ts, run on SQLite and
// PostgreSQL by cloud/subsidy/meter-flags-{sqlite,postgres}.test.ts.

import { describe, expect, it } from "vitest";
import { flagsInWindow } from "../../cloud/subsidy/meter-flags.js";

const at = (iso: string): number => Date.parse(iso);
const WINDOW = [at("2026-06-01T00:00:00Z"), at("2026-07-01T00:00:00Z")] as const;

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
