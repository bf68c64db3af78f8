// The one contract every MeterFlagStore engine must pass (ARCHITECTURE.md §5), so that settlement sees the same flags
// whichever engine recorded them: idempotent recording on (gatewayId, seq, index), events that say nothing about
// billing ignored, a batch that is not an event batch refused (SUBSIDY_INVALID_INPUT) with nothing recorded, offline
// stretches paired and clipped, ties at one instant broken in (gateway, seq, index) order, meters answered in the
// order asked — one literal expected answer per scenario, the same for every engine — and several stores on one
// database (several workers) recording the same batch at once, each seeing what the others recorded.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EventBatch } from "../../protocols/mqtt/messages.js";
import { SUBSIDY_ERROR_CODES as C } from "./errors.js";
import type { MeterFlagStore } from "./meter-flags.js";
import { refusal } from "../../test/harness/refusal.js";

export interface MeterFlagsContractStore {
  /** A store on this backing's database; several may be open side by side. */
  open(): Promise<MeterFlagStore>;
  dispose(): Promise<void> | void;
}

const at = (iso: string): number => Date.parse(iso);
const WINDOW = [at("2026-06-01T00:00:00Z"), at("2026-07-01T00:00:00Z")] as const;

const batch = (seq: number, events: EventBatch["events"], gatewayId = "gw-1"): EventBatch => ({ v: 1, gatewayId, seq, sentAt: "2026-06-10T00:00:00.000Z", events });


export function runMeterFlagsContract(name: string, factory: () => MeterFlagsContractStore): void {
  describe(`MeterFlagStore contract: ${name}`, () => {
    let backing: MeterFlagsContractStore;
    let flags: MeterFlagStore;
    const opened: MeterFlagStore[] = [];
    const another = async (): Promise<MeterFlagStore> => {
      const s = await backing.open();
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      backing = factory();
      flags = await another();
    });

    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
      await backing.dispose();
    });

    it("records a redelivered batch once", async () => {
      const b = batch(7, [{ type: "tamper", deviceId: "m1", at: "2026-06-05T00:00:00.000Z", kind: "cover_open", detail: "cover" }]);
      expect(await flags.recordMeterFlags("gw-1", b)).toBe(1);
      expect(await flags.recordMeterFlags("gw-1", b)).toBe(0);
      expect((await flags.flagsFor(["m1"], ...WINDOW)).get("m1")).toHaveLength(1);
    });

    it("ignores events that say nothing about a meter's billing (alarms, relays, grants)", async () => {
      const b = batch(8, [
        { type: "credit.low", meterId: "m1", at: "2026-06-05T00:00:00.000Z", level: 1, remainingWh: 100, grantSeq: 3 },
        { type: "sensor.fault", deviceId: "s1", at: "2026-06-05T00:00:00.000Z", faulted: true },
      ]);
      expect(await flags.recordMeterFlags("gw-1", b)).toBe(0);
      expect(await flags.flagsFor(["m1", "s1"], ...WINDOW)).toEqual(new Map());
    });

    it("tells a suspected bypass from other tamper and pairs an offline stretch that began before the window", async () => {
      await flags.recordMeterFlags("gw-1", batch(1, [{ type: "device.offline", deviceId: "m1", at: "2026-05-30T00:00:00.000Z", consecutiveFailures: 5 }]));
      await flags.recordMeterFlags(
        "gw-1",
        batch(2, [
          { type: "device.online", deviceId: "m1", at: "2026-06-02T00:00:00.000Z" },
          { type: "tamper", deviceId: "m1", at: "2026-06-03T00:00:00.000Z", kind: "bypass_suspected", detail: "current flows, register still" },
          { type: "tamper", deviceId: "m2", at: "2026-06-04T00:00:00.000Z", kind: "energy_jump", detail: "+900 kWh in 15 min" },
        ]),
      );
      expect(await flags.flagsFor(["m1", "m2", "m3"], ...WINDOW)).toEqual(
        new Map([
          [
            "m1",
            [
              { meterId: "m1", kind: "offline", atMs: WINDOW[0], untilMs: at("2026-06-02T00:00:00Z"), detail: "device.offline" },
              { meterId: "m1", kind: "bypass", atMs: at("2026-06-03T00:00:00Z"), detail: "bypass_suspected: current flows, register still" },
            ],
          ],
          ["m2", [{ meterId: "m2", kind: "tamper", atMs: at("2026-06-04T00:00:00Z"), detail: "energy_jump: +900 kWh in 15 min" }]],
        ]),
      );
    });

    it("runs a monitoring gap from its silentSince to the restore, and one never restored to the window's end", async () => {
      await flags.recordMeterFlags(
        "gw-1",
        batch(3, [
          { type: "monitoring.gap", deviceId: "m1", at: "2026-06-10T01:00:00.000Z", silentSinceAt: "2026-06-10T00:00:00.000Z", missedPolls: 4 },
          { type: "monitoring.restored", deviceId: "m1", at: "2026-06-11T00:00:00.000Z", silentSinceAt: "2026-06-10T00:00:00.000Z", gapReportedAt: "2026-06-10T01:00:00.000Z" },
          { type: "monitoring.gap", deviceId: "m1", at: "2026-06-20T01:00:00.000Z", silentSinceAt: "2026-06-20T00:00:00.000Z", missedPolls: 4 },
        ]),
      );
      expect((await flags.flagsFor(["m1"], ...WINDOW)).get("m1")?.map((f) => [f.kind, f.atMs, f.untilMs])).toEqual([
        ["offline", at("2026-06-10T00:00:00Z"), at("2026-06-11T00:00:00Z")],
        ["offline", at("2026-06-20T00:00:00Z"), WINDOW[1]],
      ]);
    });

    it("breaks a tie at one instant in gateway, sequence and index order", async () => {
      // Both at 06-05: gw-a's online sorts before gw-b's offline, so the meter is offline from then to the end.
      await flags.recordMeterFlags("gw-b", batch(1, [{ type: "device.offline", deviceId: "m1", at: "2026-06-05T00:00:00.000Z" }], "gw-b"));
      await flags.recordMeterFlags("gw-a", batch(9, [{ type: "device.offline", deviceId: "m1", at: "2026-06-04T00:00:00.000Z" }, { type: "device.online", deviceId: "m1", at: "2026-06-05T00:00:00.000Z" }], "gw-a"));
      expect((await flags.flagsFor(["m1"], ...WINDOW)).get("m1")?.map((f) => [f.atMs, f.untilMs])).toEqual([
        [at("2026-06-04T00:00:00Z"), at("2026-06-05T00:00:00Z")],
        [at("2026-06-05T00:00:00Z"), WINDOW[1]],
      ]);
    });

    it("answers the meters in the order asked, each once however often asked", async () => {
      for (const [seq, meterId] of [[1, "m1"], [2, "m2"], [3, "m3"]] as const) {
        await flags.recordMeterFlags("gw-1", batch(seq, [{ type: "tamper", deviceId: meterId, at: "2026-06-05T00:00:00.000Z", kind: "cover_open", detail: "c" }]));
      }
      const result = await flags.flagsFor(["m3", "m1", "m3", "m2"], ...WINDOW);
      expect([...result.keys()]).toEqual(["m3", "m1", "m2"]);
      expect(result.get("m3")).toHaveLength(1);
    });

    it("answers an empty map when asked about no meters", async () => {
      await flags.recordMeterFlags("gw-1", batch(1, [{ type: "tamper", deviceId: "m1", at: "2026-06-05T00:00:00.000Z", kind: "cover_open", detail: "c" }]));
      expect(await flags.flagsFor([], ...WINDOW)).toEqual(new Map());
    });

    it.each([
      ["an empty gateway id", "", batch(1, [{ type: "tamper", deviceId: "m1", at: "2026-06-05T00:00:00.000Z", kind: "cover_open", detail: "c" }])],
      ["a timestamp that is not a date", "gw-1", batch(1, [{ type: "tamper", deviceId: "m1", at: "yesterday", kind: "cover_open", detail: "c" }])],
      ["no events", "gw-1", batch(1, [])],
      ["a fractional sequence", "gw-1", batch(1.5, [{ type: "tamper", deviceId: "m1", at: "2026-06-05T00:00:00.000Z", kind: "cover_open", detail: "c" }])],
      ["an unknown event type", "gw-1", batch(1, [{ type: "meter.exploded", deviceId: "m1", at: "2026-06-05T00:00:00.000Z" } as unknown as EventBatch["events"][number]])],
    ])("refuses a batch with %s as SUBSIDY_INVALID_INPUT and records nothing", async (_what, gatewayId, bad) => {
      expect(await refusal(flags.recordMeterFlags(gatewayId, bad))).toBe(C.INVALID);
      expect(await flags.flagsFor(["m1"], ...WINDOW)).toEqual(new Map());
    });

    it("records a batch redelivered to four stores at once exactly once", async () => {
      const stores = [flags, await another(), await another(), await another()];
      const b = batch(5, [
        { type: "tamper", deviceId: "m1", at: "2026-06-05T00:00:00.000Z", kind: "cover_open", detail: "c" },
        { type: "device.offline", deviceId: "m2", at: "2026-06-06T00:00:00.000Z" },
        { type: "device.online", deviceId: "m2", at: "2026-06-07T00:00:00.000Z" },
      ]);
      const added = await Promise.all(stores.map((s) => s.recordMeterFlags("gw-1", b)));
      expect(added.reduce((a, n) => a + n, 0)).toBe(3);
      expect((await flags.flagsFor(["m1", "m2"], ...WINDOW)).size).toBe(2);
    });

    it("shows a flag recorded through one store to a settlement reading through another", async () => {
      const other = await another();
      await other.recordMeterFlags("gw-1", batch(6, [{ type: "tamper", deviceId: "m1", at: "2026-06-05T00:00:00.000Z", kind: "reverse_flow", detail: "r" }]));
      expect((await flags.flagsFor(["m1"], ...WINDOW)).get("m1")?.map((f) => f.kind)).toEqual(["tamper"]);
    });
  });
}
