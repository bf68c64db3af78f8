// The one contract every registry engine must pass (ARCHITECTURE.md §5: one shared contract suite per interface, run
// against SQLite and PostgreSQL): what each operation of the `Registry` port stores and answers, which input it
// refuses with which code (INVALID for bad input, UNKNOWN for a missing village / household / gateway / tariff /
// plot / meter, EXISTS for a taken id), and the rules that make grants safe: a rising sequence per meter, the final
// ack wins, the highest limit a gateway may still enforce. An engine's test file calls runRegistryContract with a
// factory for fresh, empty stores.

import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { hashSecret } from "../broker/secrets.js";
import type { Tariff } from "../ledger/tariff.js";
import { DEFAULT_VILLAGE_POLICY } from "../prepaid/village-policy.js";
import { REGISTRY_ERROR_CODES as C } from "./errors.js";
import type { NewGrant, Registry } from "./registry.js";
import { refusal } from "../../test/harness/refusal.js";

/** A fresh, empty store that can be opened, closed and opened again, seeing what the previous open left. */
export interface RegistryContractStore {
  open(now: () => number): Promise<Registry>;
  /** Test hook: one SQL statement on the store's database, bypassing the port (portable SQL only). */
  rawSql(sql: string): Promise<void>;
  /** Remove whatever the store left behind. */
  dispose(): Promise<void> | void;
}

const CREATED_AT_MS = 1_750_000_000_000;
const FLAT = { tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } } as const;

const grant = (more: Partial<NewGrant> = {}): NewGrant => ({
  meterId: "m1",
  limitWh: 200,
  registerWh: 100,
  commandId: "cmd-00000001",
  gatewayId: "gw-1",
  issuedAtMs: 1_000,
  expiresAtMs: 2_000,
  ...more,
});


export function runRegistryContract(name: string, factory: () => RegistryContractStore): void {
  describe(`Registry contract: ${name}`, () => {
    let store: RegistryContractStore;
    let registry: Registry;
    let hash: string;
    let otherHash: string;
    const clock = (): number => CREATED_AT_MS;

    beforeAll(async () => {
      hash = await hashSecret("secret-1");
      otherHash = await hashSecret("secret-2");
    });

    beforeEach(async () => {
      store = factory();
      registry = await store.open(clock);
      await registry.addVillage({ villageId: "v1", name: "Hongmiao" });
      await registry.addVillage({ villageId: "v2", name: "Other" });
      await registry.addHousehold({ householdId: "h1", villageId: "v1", name: "陈德伯", overdraftFen: 50 });
      await registry.addHousehold({ householdId: "h2", villageId: "v1", name: "李明" });
      await registry.addGateway({ gatewayId: "gw-1", villageId: "v1", secretHash: hash });
      await registry.addTariff(FLAT);
      await registry.addMeter({ meterId: "m1", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", initialWh: 100 });
    });

    afterEach(async () => {
      await registry.close();
      await store.dispose();
    });

    describe("villages and households", () => {
      it("reads back villages and households as stored, listed in id order", async () => {
        await registry.addVillage({ villageId: "V0", name: "Upper-case sorts first" });
        expect(await registry.getHousehold("h1")).toEqual({ householdId: "h1", villageId: "v1", name: "陈德伯", overdraftFen: 50 });
        expect(await registry.getVillage("v1")).toEqual({ villageId: "v1", name: "Hongmiao" });
        expect((await registry.listVillages()).map((v) => v.villageId)).toEqual(["V0", "v1", "v2"]);
        expect(await registry.householdsOfVillage("v1")).toEqual([
          { householdId: "h1", villageId: "v1", name: "陈德伯", overdraftFen: 50 },
          { householdId: "h2", villageId: "v1", name: "李明", overdraftFen: 0 },
        ]);
        expect(await registry.householdsOfVillage("v2")).toEqual([]);
      });

      it("answers undefined for a village, household, gateway, meter or plot it does not know", async () => {
        expect(await registry.getVillage("nowhere")).toBeUndefined();
        expect(await registry.getHousehold("nobody")).toBeUndefined();
        expect(await registry.getGateway("gw-9")).toBeUndefined();
        expect(await registry.getMeter("m9")).toBeUndefined();
        expect(await registry.getPlot("p9")).toBeUndefined();
        expect(await registry.meterPlot("m9")).toBeUndefined();
        expect(await registry.lastGrant("m9")).toBeUndefined();
        expect(await registry.gatewayStatus("gw-9")).toBeUndefined();
      });

      it("refuses a duplicate village or household id, and a household of an unknown village", async () => {
        expect(await refusal(registry.addVillage({ villageId: "v1", name: "Again" }))).toBe(C.EXISTS);
        expect(await refusal(registry.addHousehold({ householdId: "h1", villageId: "v2", name: "Again" }))).toBe(C.EXISTS);
        expect(await refusal(registry.addHousehold({ householdId: "h3", villageId: "nowhere", name: "Wang" }))).toBe(C.UNKNOWN);
        expect(await registry.getHousehold("h3")).toBeUndefined();
        expect(await registry.getVillage("v1")).toEqual({ villageId: "v1", name: "Hongmiao" });
      });

      it("refuses a malformed id, an empty name and a negative or fractional overdraft", async () => {
        expect(await refusal(registry.addVillage({ villageId: "v#1", name: "x" }))).toBe(C.INVALID);
        expect(await refusal(registry.addVillage({ villageId: "v3", name: "" }))).toBe(C.INVALID);
        expect(await refusal(registry.addHousehold({ householdId: "h3", villageId: "v1", name: "x", overdraftFen: -1 }))).toBe(C.INVALID);
        expect(await refusal(registry.addHousehold({ householdId: "h3", villageId: "v1", name: "x", overdraftFen: 1.5 }))).toBe(C.INVALID);
        expect(await refusal(registry.addHousehold({ householdId: "h3", villageId: "v1", name: "x", extra: 1 } as never))).toBe(C.INVALID);
        expect(await registry.getHousehold("h3")).toBeUndefined();
      });

      it("keeps what it stored across close and reopen", async () => {
        await registry.close();
        registry = await store.open(clock);
        expect(await registry.getHousehold("h1")).toMatchObject({ overdraftFen: 50 });
        expect((await registry.getMeter("m1"))?.initialWh).toBe(100);
      });
    });

    describe("gateways and cloud clients", () => {
      it("builds the broker's snapshot: every gateway with hash and enabled flag, cloud clients with roles", async () => {
        await registry.addGateway({ gatewayId: "gw-2", secretHash: otherHash, enabled: false });
        await registry.putCloudClient({ username: "ops-command", role: "command", secretHash: hash });
        await registry.putCloudClient({ username: "ingest-1", role: "ingest", secretHash: otherHash });
        const snap = await registry.snapshot();
        expect([...snap.gateways.entries()].sort()).toEqual([
          ["gw-1", { secretHash: hash, enabled: true }],
          ["gw-2", { secretHash: otherHash, enabled: false }],
        ]);
        expect([...snap.cloudClients.entries()].sort()).toEqual([
          ["ingest-1", { secretHash: otherHash, role: "ingest" }],
          ["ops-command", { secretHash: hash, role: "command" }],
        ]);
      });

      it("disables a gateway and replaces its secret, as the snapshot then shows", async () => {
        await registry.setGatewayEnabled("gw-1", false);
        await registry.setGatewaySecret("gw-1", otherHash);
        expect((await registry.snapshot()).gateways.get("gw-1")).toEqual({ secretHash: otherHash, enabled: false });
        expect(await registry.getGateway("gw-1")).toEqual({ gatewayId: "gw-1", villageId: "v1", enabled: false });
        await registry.setGatewayEnabled("gw-1", true);
        expect((await registry.getGateway("gw-1"))?.enabled).toBe(true);
      });

      it("lists a village's gateways in id order, and a gateway without a village in none", async () => {
        await registry.addGateway({ gatewayId: "gw-0", villageId: "v1", secretHash: hash });
        await registry.addGateway({ gatewayId: "gw-loose", secretHash: hash });
        expect((await registry.gatewaysOfVillage("v1")).map((g) => g.gatewayId)).toEqual(["gw-0", "gw-1"]);
        expect(await registry.getGateway("gw-loose")).toEqual({ gatewayId: "gw-loose", enabled: true });
        expect(await registry.gatewaysOfVillage("v2")).toEqual([]);
      });

      it("refuses a plaintext secret, a duplicate gateway, a malformed gateway id and an unknown village, naming what is wrong", async () => {
        await expect(registry.addGateway({ gatewayId: "gw-2", secretHash: "plaintext" })).rejects.toMatchObject({ code: C.INVALID, message: expect.stringMatching(/secretHash/) as unknown });
        await expect(registry.addGateway({ gatewayId: "gw-1", secretHash: hash })).rejects.toMatchObject({ code: C.EXISTS, message: expect.stringMatching(/already exists/) as unknown });
        await expect(registry.addGateway({ gatewayId: "GW#1", secretHash: hash })).rejects.toMatchObject({ code: C.INVALID, message: expect.stringMatching(/gatewayId/) as unknown });
        await expect(registry.addGateway({ gatewayId: "gw-3", villageId: "nowhere", secretHash: hash })).rejects.toMatchObject({ code: C.UNKNOWN });
        expect((await registry.snapshot()).gateways.size).toBe(1);
      });

      it("refuses to change an unknown gateway, or to give one a plaintext secret", async () => {
        expect(await refusal(registry.setGatewayEnabled("gw-9", false))).toBe(C.UNKNOWN);
        expect(await refusal(registry.setGatewaySecret("gw-9", hash))).toBe(C.UNKNOWN);
        expect(await refusal(registry.setGatewaySecret("gw-1", "plaintext"))).toBe(C.INVALID);
        expect((await registry.snapshot()).gateways.get("gw-1")).toEqual({ secretHash: hash, enabled: true });
      });

      it("replaces a cloud client's role and secret on a second put, and refuses an unknown role", async () => {
        await registry.putCloudClient({ username: "ops", role: "ingest", secretHash: hash });
        await registry.putCloudClient({ username: "ops", role: "command", secretHash: otherHash });
        expect((await registry.snapshot()).cloudClients.get("ops")).toEqual({ secretHash: otherHash, role: "command" });
        expect(await refusal(registry.putCloudClient({ username: "ops", role: "admin" as never, secretHash: hash }))).toBe(C.INVALID);
        expect(await refusal(registry.putCloudClient({ username: "ops", role: "ingest", secretHash: "plaintext" }))).toBe(C.INVALID);
        expect((await registry.snapshot()).cloudClients.get("ops")?.role).toBe("command");
      });
    });

    describe("tariffs", () => {
      it("keeps tariff versions immutable and publishes the next one", async () => {
        expect(await refusal(registry.addTariff({ ...FLAT, effectiveFrom: 10, prices: { kind: "flat", priceCentiFenPerKwh: 9999 } }))).toBe(C.INVALID);
        await registry.addTariff({ tariffId: "flat", version: 2, effectiveFrom: 1000, prices: { kind: "flat", priceCentiFenPerKwh: 6000 } });
        expect(await registry.tariffSchedule("flat")).toEqual([FLAT, { tariffId: "flat", version: 2, effectiveFrom: 1000, prices: { kind: "flat", priceCentiFenPerKwh: 6000 } }]);
      });

      it("refuses a version taking effect with or before an earlier one, and a price of zero", async () => {
        await registry.addTariff({ ...FLAT, version: 2, effectiveFrom: 5000 });
        expect(await refusal(registry.addTariff({ ...FLAT, version: 3, effectiveFrom: 5000 }))).toBe(C.INVALID);
        expect(await refusal(registry.addTariff({ ...FLAT, version: 3, effectiveFrom: 4000 }))).toBe(C.INVALID);
        expect(await refusal(registry.addTariff({ ...FLAT, version: 3, effectiveFrom: 6000, prices: { kind: "flat", priceCentiFenPerKwh: 0 } }))).toBe(C.INVALID);
        expect((await registry.tariffSchedule("flat")).map((t) => t.version)).toEqual([1, 2]);
      });

      it("reads a time-of-use tariff back exactly, and an unknown tariff as an empty schedule", async () => {
        const tou: Tariff = {
          tariffId: "tou",
          version: 1,
          effectiveFrom: 0,
          prices: {
            kind: "time-of-use",
            periods: [
              { rate: "peak", from: "08:00", to: "22:00", priceCentiFenPerKwh: 6000 },
              { rate: "valley", from: "22:00", to: "08:00", priceCentiFenPerKwh: 3000 },
            ],
          },
        };
        await registry.addTariff(tou);
        expect(await registry.tariffSchedule("tou")).toEqual([tou]);
        expect(await registry.tariffSchedule("none")).toEqual([]);
      });
    });

    describe("meters", () => {
      it("returns the meter as getMeter reads it back, and lists a household's meters in id order", async () => {
        const added = await registry.addMeter({ meterId: "m0", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", reconnect: "manual" });
        expect(added).toEqual({ meterId: "m0", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", reconnect: "manual" });
        expect(await registry.getMeter("m0")).toEqual(added);
        expect((await registry.metersOfHousehold("h1")).map((m) => m.meterId)).toEqual(["m0", "m1"]);
        expect(await registry.metersOfHousehold("h2")).toEqual([]);
      });

      it("refuses a meter of an unknown gateway, household or tariff, and a duplicate meter id", async () => {
        await expect(registry.addMeter({ meterId: "m2", gatewayId: "gw-9", householdId: "h1", tariffId: "flat" })).rejects.toMatchObject({ code: C.UNKNOWN, message: expect.stringMatching(/no gateway gw-9/) as unknown });
        expect(await refusal(registry.addMeter({ meterId: "m2", gatewayId: "gw-1", householdId: "nobody", tariffId: "flat" }))).toBe(C.UNKNOWN);
        expect(await refusal(registry.addMeter({ meterId: "m2", gatewayId: "gw-1", householdId: "h1", tariffId: "none" }))).toBe(C.UNKNOWN);
        expect(await refusal(registry.addMeter({ meterId: "m1", gatewayId: "gw-1", householdId: "h2", tariffId: "flat" }))).toBe(C.EXISTS);
        expect(await registry.getMeter("m2")).toBeUndefined();
        expect((await registry.getMeter("m1"))?.householdId).toBe("h1");
      });

      it("records a meter's Modbus unit, profile and relay binding and reads them back", async () => {
        await registry.addMeter({ meterId: "m2", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", unitId: 3, profileId: "eastron-sdm630-v2", relay: { kind: "contactor", deviceId: "relay-board-1", channel: 2 } });
        expect(await registry.getMeter("m2")).toMatchObject({ unitId: 3, profileId: "eastron-sdm630-v2", relay: { kind: "contactor", deviceId: "relay-board-1", channel: 2 } });
        await registry.addMeter({ meterId: "m3", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", relay: { kind: "meter-relay" } });
        expect(await registry.getMeter("m3")).toEqual({ meterId: "m3", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", reconnect: "automatic", relay: { kind: "meter-relay" } });
      });

      it("refuses unit 0 or 248, a fire sensor's profile for a meter, a contactor without a channel and a negative register", async () => {
        const add = (more: Record<string, unknown>) => refusal(registry.addMeter({ meterId: "mx", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", ...more }));
        expect(await add({ unitId: 0 })).toBe(C.INVALID);
        expect(await add({ unitId: 248 })).toBe(C.INVALID);
        expect(await add({ profileId: "agri-fire-node" })).toBe(C.INVALID);
        expect(await add({ relay: { kind: "contactor", deviceId: "relay-board-1" } })).toBe(C.INVALID);
        expect(await add({ initialWh: -1 })).toBe(C.INVALID);
        expect(await registry.getMeter("mx")).toBeUndefined();
        // A profile the cloud does not ship (an edge's --profile-file) is recorded as given.
        expect(await add({ profileId: "acme-custom-meter" })).toBeUndefined();
      });
    });

    describe("credit grants", () => {
      it("allocates a rising grant sequence per meter, each meter from 1", async () => {
        await registry.addMeter({ meterId: "m2", gatewayId: "gw-1", householdId: "h1", tariffId: "flat" });
        expect((await registry.recordGrant(grant({ commandId: "cmd-00000001" }))).grantSeq).toBe(1);
        expect((await registry.recordGrant(grant({ commandId: "cmd-00000002" }))).grantSeq).toBe(2);
        expect((await registry.recordGrant(grant({ meterId: "m2", commandId: "cmd-00000003" }))).grantSeq).toBe(1);
        expect((await registry.recordGrant(grant({ commandId: "cmd-00000004" }))).grantSeq).toBe(3);
      });

      it("answers a recorded grant exactly as lastGrant reads it back, friendly periods and warning stages included", async () => {
        const recorded = await registry.recordGrant(grant({ friendlyPeriods: [{ from: "22:00", to: "06:00", days: [1, 2] }], warnAtWh: [3785, 946] }));
        expect(recorded).toEqual({ ...grant(), grantSeq: 1, friendlyPeriods: [{ from: "22:00", to: "06:00", days: [1, 2] }], warnAtWh: [3785, 946] });
        expect(await registry.lastGrant("m1")).toEqual(recorded);
      });

      it("records a grant without friendly periods or stages (or with an empty list) as carrying none", async () => {
        const recorded = await registry.recordGrant(grant({ friendlyPeriods: [] }));
        expect(recorded).toEqual({ ...grant(), grantSeq: 1 });
        expect(await registry.lastGrant("m1")).toEqual(recorded);
      });

      it("refuses a grant for an unknown meter, a reused command id and bad numbers, storing nothing", async () => {
        await registry.recordGrant(grant());
        expect(await refusal(registry.recordGrant(grant({ meterId: "m9", commandId: "cmd-00000002" })))).toBe(C.UNKNOWN);
        expect(await refusal(registry.recordGrant(grant({ commandId: "cmd-00000001" })))).toBe(C.EXISTS);
        expect(await refusal(registry.recordGrant(grant({ commandId: "cmd-00000003", limitWh: -1 })))).toBe(C.INVALID);
        expect(await refusal(registry.recordGrant(grant({ commandId: "cmd-00000004", registerWh: 10.5 })))).toBe(C.INVALID);
        expect(await refusal(registry.recordGrant(grant({ commandId: "cmd-00000005", warnAtWh: [100, 500] })))).toBe(C.INVALID);
        expect(await refusal(registry.recordGrant(grant({ commandId: "" })))).toBe(C.INVALID);
        expect(await registry.lastGrant("m1")).toMatchObject({ grantSeq: 1, commandId: "cmd-00000001" });
        expect((await registry.recordGrant(grant({ commandId: "cmd-00000006" }))).grantSeq).toBe(2);
      });

      it("keeps the final ack: a late 'accepted' never overwrites 'done', and a final word replaces 'accepted'", async () => {
        await registry.recordGrant(grant({ commandId: "cmd-00000001" }));
        await registry.recordGrant(grant({ commandId: "cmd-00000002" }));
        expect(await registry.recordCommandAck("cmd-00000002", "done", undefined, 3)).toMatchObject({ grantSeq: 2, ackStatus: "done" });
        expect(await registry.recordCommandAck("cmd-00000002", "accepted", undefined, 4)).toMatchObject({ grantSeq: 2, ackStatus: "done" });
        expect(await registry.lastGrant("m1")).toMatchObject({ grantSeq: 2, ackStatus: "done" });
        await registry.recordCommandAck("cmd-00000001", "accepted", undefined, 5);
        const rejected = await registry.recordCommandAck("cmd-00000001", "rejected", "stale grant", 6);
        expect(rejected).toMatchObject({ grantSeq: 1, ackStatus: "rejected", ackReason: "stale grant" });
      });

      it("answers undefined for an ack of a command that is not a grant's, and refuses a malformed ack", async () => {
        expect(await registry.recordCommandAck("cmd-unknown-1", "done", undefined, 5)).toBeUndefined();
        await registry.recordGrant(grant());
        expect(await refusal(registry.recordCommandAck("cmd-00000001", "", undefined, 5))).toBe(C.INVALID);
        expect(await refusal(registry.recordCommandAck("cmd-00000001", "done", undefined, 5.5))).toBe(C.INVALID);
        expect(await registry.lastGrant("m1")).not.toHaveProperty("ackStatus");
      });

      it("answers the highest limit a gateway may still enforce: the last grant confirmed done and any sent after it", async () => {
        expect(await registry.highestLimitInForceWh("m1")).toBeUndefined();
        await registry.recordGrant(grant({ limitWh: 500, commandId: "cmd-00000001" }));
        expect(await registry.highestLimitInForceWh("m1")).toBe(500);
        await registry.recordCommandAck("cmd-00000001", "done", undefined, 3);
        await registry.recordGrant(grant({ limitWh: 900, commandId: "cmd-00000002" }));
        await registry.recordGrant(grant({ limitWh: 600, commandId: "cmd-00000003" }));
        // The 900 grant may have arrived and the lowered 600 not yet (the gateway is offline).
        expect(await registry.highestLimitInForceWh("m1")).toBe(900);
        await registry.recordCommandAck("cmd-00000003", "done", undefined, 4);
        expect(await registry.highestLimitInForceWh("m1")).toBe(600);
      });

      it("does not count a rejected grant as confirmed: the limits sent since the last 'done' stay in force", async () => {
        await registry.recordGrant(grant({ limitWh: 500, commandId: "cmd-00000001" }));
        await registry.recordCommandAck("cmd-00000001", "done", undefined, 3);
        await registry.recordGrant(grant({ limitWh: 900, commandId: "cmd-00000002" }));
        await registry.recordGrant(grant({ limitWh: 300, commandId: "cmd-00000003" }));
        await registry.recordCommandAck("cmd-00000003", "rejected", "relay fault", 4);
        expect(await registry.highestLimitInForceWh("m1")).toBe(900);
      });

      it("refuses to read back stored stages that break the protocol's rule, rather than send them", async () => {
        await registry.recordGrant(grant({ warnAtWh: [500, 100] }));
        await store.rawSql("UPDATE registry_grants SET warn_json = '[100, 500]' WHERE grant_seq = 1");
        await expect(registry.lastGrant("m1")).rejects.toThrow(/stage 2/);
      });
    });

    describe("top-up notices", () => {
      it("answers the notices after a cursor in the order they were noted, each posting once", async () => {
        await registry.noteTopUp("h1", 41, 10);
        await registry.noteTopUp("h2", 7, 11);
        await registry.noteTopUp("h1", 41, 12);
        await registry.noteTopUp("h1", 99, 13);
        const all = await registry.topUpNoticesAfter(0);
        expect(all.map((n) => [n.householdId, n.postingId])).toEqual([
          ["h1", 41],
          ["h2", 7],
          ["h1", 99],
        ]);
        expect(all.map((n) => n.noticeId)).toEqual([...all.map((n) => n.noticeId)].sort((a, b) => a - b));
        const [first] = all;
        if (first === undefined) throw new Error("no notice");
        expect((await registry.topUpNoticesAfter(first.noticeId)).map((n) => n.postingId)).toEqual([7, 99]);
        expect(await registry.topUpNoticesAfter(all.at(-1)?.noticeId ?? 0)).toEqual([]);
      });

      it("refuses a notice with a posting id of 0 or a fractional time, and a negative cursor", async () => {
        expect(await refusal(registry.noteTopUp("h1", 0, 10))).toBe(C.INVALID);
        expect(await refusal(registry.noteTopUp("h1", 5, 10.5))).toBe(C.INVALID);
        expect(await refusal(registry.topUpNoticesAfter(-1))).toBe(C.INVALID);
        expect(await registry.topUpNoticesAfter(0)).toEqual([]);
      });
    });

    describe("uplinks and gateway status", () => {
      it("records each uplink once per (gateway, kind, seq), however often ingest delivers it", async () => {
        await registry.recordUplink("gw-1", "alarm", 1, { type: "alarm" }, 10);
        await registry.recordUplink("gw-1", "alarm", 1, { type: "alarm", again: true }, 11);
        await registry.recordUplink("gw-1", "alarm", 2, { type: "alarm" }, 12);
        await registry.recordUplink("gw-1", "birth", 1, { type: "birth" }, 13);
        await registry.recordUplink("gw-2", "alarm", 1, { type: "alarm" }, 14);
        expect(await registry.countUplinks("gw-1", "alarm")).toBe(2);
        expect(await registry.countUplinks("gw-1", "birth")).toBe(1);
        expect(await registry.countUplinks("gw-1", "events")).toBe(0);
      });

      it("refuses an uplink with a negative sequence or an empty kind", async () => {
        expect(await refusal(registry.recordUplink("gw-1", "alarm", -1, {}, 10))).toBe(C.INVALID);
        expect(await refusal(registry.recordUplink("gw-1", "", 1, {}, 10))).toBe(C.INVALID);
        expect(await registry.countUplinks("gw-1", "alarm")).toBe(0);
      });

      it("keeps the latest status of each gateway, with its own timestamp when it sent one", async () => {
        await registry.setGatewayStatus("gw-1", "online", "2026-05-01T08:00:00Z", undefined, 10);
        expect(await registry.gatewayStatus("gw-1")).toEqual({ state: "online", at: "2026-05-01T08:00:00Z" });
        await registry.setGatewayStatus("gw-1", "offline", undefined, "lwt", 11);
        expect(await registry.gatewayStatus("gw-1")).toEqual({ state: "offline" });
        expect(await refusal(registry.setGatewayStatus("gw-1", "", undefined, undefined, 12))).toBe(C.INVALID);
        expect(await registry.gatewayStatus("gw-1")).toEqual({ state: "offline" });
      });
    });

    describe("plots and crops", () => {
      it("stores a plot with its area in thousandths of a mu and lists it by household and village", async () => {
        const plot = await registry.addPlot({ plotId: "p1", householdId: "h1", name: "东田", areaMilliMu: 3500, crop: "rice", recordedBy: "officer-1", latE6: 30_123_456, lonE6: 120_654_321 });
        expect(plot).toEqual({ plotId: "p1", householdId: "h1", villageId: "v1", name: "东田", areaMilliMu: 3500, latE6: 30_123_456, lonE6: 120_654_321 });
        expect(await registry.getPlot("p1")).toEqual(plot);
        expect((await registry.plotsOfHousehold("h1")).map((p) => p.plotId)).toEqual(["p1"]);
        expect((await registry.plotsOfVillage("v1")).map((p) => p.plotId)).toEqual(["p1"]);
        expect(await registry.plotsOfVillage("v2")).toEqual([]);
        expect(await registry.cropHistory("p1")).toEqual([{ plotId: "p1", effectiveFromMs: 0, crop: "rice", recordedBy: "officer-1" }]);
      });

      it("refuses a plot of an unknown household, a duplicate id, a fractional area and a crop that is not a code", async () => {
        expect(await refusal(registry.addPlot({ plotId: "p1", householdId: "nobody", name: "x", areaMilliMu: 1, crop: "rice", recordedBy: "o" }))).toBe(C.UNKNOWN);
        await registry.addPlot({ plotId: "p1", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "rice", recordedBy: "o" });
        expect(await refusal(registry.addPlot({ plotId: "p1", householdId: "h2", name: "y", areaMilliMu: 1000, crop: "wheat", recordedBy: "o" }))).toBe(C.EXISTS);
        expect(await refusal(registry.addPlot({ plotId: "p2", householdId: "h1", name: "x", areaMilliMu: 1.5, crop: "rice", recordedBy: "o" }))).toBe(C.INVALID);
        expect(await refusal(registry.addPlot({ plotId: "p3", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "Rice; DROP", recordedBy: "o" }))).toBe(C.INVALID);
        expect(await registry.getPlot("p2")).toBeUndefined();
        expect(await registry.getPlot("p1")).toMatchObject({ householdId: "h1" });
        expect((await registry.cropHistory("p1")).map((c) => c.crop)).toEqual(["rice"]);
      });

      it("keeps the crop as a history and answers which crop grew at a given time", async () => {
        await registry.addPlot({ plotId: "p1", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "seedlings", cropFrom: 100, recordedBy: "o" });
        expect(await registry.setPlotCrop("p1", "rice", 5_000, "officer-2")).toEqual({ plotId: "p1", effectiveFromMs: 5_000, crop: "rice", recordedBy: "officer-2" });
        expect(await registry.cropAt("p1", 50)).toBeUndefined();
        expect(await registry.cropAt("p1", 4_999)).toBe("seedlings");
        expect(await registry.cropAt("p1", 5_000)).toBe("rice");
        expect((await registry.cropHistory("p1")).map((c) => [c.crop, c.recordedBy])).toEqual([
          ["seedlings", "o"],
          ["rice", "officer-2"],
        ]);
      });

      it("refuses a second crop from the same moment, a crop of an unknown plot and a malformed crop record", async () => {
        await registry.addPlot({ plotId: "p1", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "rice", cropFrom: 5_000, recordedBy: "o" });
        expect(await refusal(registry.setPlotCrop("p1", "wheat", 5_000, "o"))).toBe(C.EXISTS);
        expect(await refusal(registry.setPlotCrop("p9", "wheat", 6_000, "o"))).toBe(C.UNKNOWN);
        expect(await refusal(registry.setPlotCrop("p1", "Wheat!", 6_000, "o"))).toBe(C.INVALID);
        expect(await refusal(registry.setPlotCrop("p1", "wheat", -1, "o"))).toBe(C.INVALID);
        expect(await refusal(registry.setPlotCrop("p1", "wheat", 6_000, ""))).toBe(C.INVALID);
        expect((await registry.cropHistory("p1")).map((c) => c.crop)).toEqual(["rice"]);
      });

      it("binds a meter only to a plot of the meter's own household", async () => {
        await registry.addPlot({ plotId: "p1", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "rice", recordedBy: "o" });
        await registry.addPlot({ plotId: "p2", householdId: "h2", name: "y", areaMilliMu: 1000, crop: "rice", recordedBy: "o" });
        expect(await registry.meterPlot("m1")).toEqual({});
        expect(await refusal(registry.bindMeterToPlot("m1", "p2"))).toBe(C.INVALID);
        await registry.bindMeterToPlot("m1", "p1", 18_000);
        expect(await registry.meterPlot("m1")).toEqual({ plotId: "p1", litresPerKwh: 18_000 });
        expect(await registry.meterIdsOfVillage("v1")).toEqual(["m1"]);
        expect(await registry.meterIdsOfVillage("v2")).toEqual([]);
      });

      it("refuses a binding to an unknown plot or meter, and a non-positive or fractional pump rating", async () => {
        await registry.addPlot({ plotId: "p1", householdId: "h1", name: "x", areaMilliMu: 1000, crop: "rice", recordedBy: "o" });
        expect(await refusal(registry.bindMeterToPlot("m1", "p9"))).toBe(C.UNKNOWN);
        expect(await refusal(registry.bindMeterToPlot("m9", "p1"))).toBe(C.UNKNOWN);
        expect(await refusal(registry.bindMeterToPlot("m1", "p1", 0))).toBe(C.INVALID);
        expect(await refusal(registry.bindMeterToPlot("m1", "p1", 1.5))).toBe(C.INVALID);
        expect(await registry.meterPlot("m1")).toEqual({});
      });
    });

    describe("village policies", () => {
      it("applies the defaults until a version takes effect, then the version in force at each time", async () => {
        expect(await registry.villagePolicyAt("v1", 0)).toEqual(DEFAULT_VILLAGE_POLICY);
        await registry.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 1_000, policy: { maxBalanceFen: 500_000, friendlyPeriods: [{ from: "22:00", to: "06:00" }] } });
        await registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: 2_000, policy: { maxBalanceFen: 300_000, maxOverdraftFen: 2_000 } });
        expect((await registry.villagePolicyAt("v1", 999)).maxBalanceFen).toBe(DEFAULT_VILLAGE_POLICY.maxBalanceFen);
        expect(await registry.villagePolicyAt("v1", 1_500)).toMatchObject({ maxBalanceFen: 500_000, friendlyPeriods: [{ from: "22:00", to: "06:00" }] });
        expect(await registry.villagePolicyAt("v1", 2_000)).toMatchObject({ maxBalanceFen: 300_000, maxOverdraftFen: 2_000, friendlyPeriods: [] });
        expect(await registry.villagePolicyAt("v2", 2_000)).toEqual(DEFAULT_VILLAGE_POLICY);
        expect((await registry.villagePolicies("v1")).map((p) => [p.version, p.effectiveFrom])).toEqual([
          [1, 1_000],
          [2, 2_000],
        ]);
      });

      it("returns the stored version with its defaults filled in, as villagePolicies reads it back", async () => {
        const stored = await registry.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 0, policy: { maxOverdraftFen: 1_000 } });
        expect(stored).toEqual({ villageId: "v1", version: 1, effectiveFrom: 0, policy: { ...DEFAULT_VILLAGE_POLICY, maxOverdraftFen: 1_000 } });
        expect(await registry.villagePolicies("v1")).toEqual([stored]);
      });

      it("refuses a version gap, a version that takes effect before its predecessor, stage 2 above stage 1 and an unknown village", async () => {
        expect(await refusal(registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: 1, policy: {} }))).toBe(C.INVALID);
        await registry.addVillagePolicy({ villageId: "v1", version: 1, effectiveFrom: 1_000, policy: {} });
        expect(await refusal(registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: 500, policy: {} }))).toBe(C.INVALID);
        expect(await refusal(registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: 2_000, policy: { lowCredit: { stage1Fen: 100, stage2Fen: 200 } } }))).toBe(C.INVALID);
        expect(await refusal(registry.addVillagePolicy({ villageId: "nowhere", version: 1, effectiveFrom: 0, policy: {} }))).toBe(C.UNKNOWN);
        expect(await refusal(registry.addVillagePolicy({ villageId: "v1", version: 2, effectiveFrom: 2_000, policy: { maxBalanceFen: -1 } }))).toBe(C.INVALID);
        expect((await registry.villagePolicies("v1")).map((p) => p.version)).toEqual([1]);
      });
    });

    describe("household locks", () => {
      /** A holder that records when it starts and ends, and finishes only when the test lets it. */
      function holder(log: string[], name: string): { work: () => Promise<string>; finish: () => void; started: Promise<void> } {
        let finish = (): void => undefined;
        let started = (): void => undefined;
        const startedP = new Promise<void>((r) => (started = r));
        const done = new Promise<void>((r) => (finish = r));
        return {
          work: async () => {
            log.push(`${name} start`);
            started();
            await done;
            log.push(`${name} end`);
            return name;
          },
          finish: () => finish(),
          started: startedP,
        };
      }

      it("runs the holders of one household one after another, in the order they asked", async () => {
        const log: string[] = [];
        const a = holder(log, "a");
        const b = holder(log, "b");
        const first = registry.withHouseholdLock("h1", a.work);
        await a.started;
        const second = registry.withHouseholdLock("h1", b.work);
        await new Promise((r) => setTimeout(r, 50));
        expect(log).toEqual(["a start"]);
        a.finish();
        await b.started;
        b.finish();
        expect(await Promise.all([first, second])).toEqual(["a", "b"]);
        expect(log).toEqual(["a start", "a end", "b start", "b end"]);
      });

      it("lets different households run side by side", async () => {
        const log: string[] = [];
        const a = holder(log, "a");
        const b = holder(log, "b");
        const both = Promise.all([registry.withHouseholdLock("h1", a.work), registry.withHouseholdLock("h2", b.work)]);
        await Promise.all([a.started, b.started]);
        a.finish();
        b.finish();
        expect(await both).toEqual(["a", "b"]);
      });

      it("passes a holder's failure on and releases the lock for the next one", async () => {
        await expect(registry.withHouseholdLock("h1", () => Promise.reject(new Error("refund refused")))).rejects.toThrow("refund refused");
        expect(await registry.withHouseholdLock("h1", () => Promise.resolve("next"))).toBe("next");
      });
    });
  });
}
