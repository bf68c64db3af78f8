import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashSecret } from "../broker/secrets.js";
import { openSqliteLedger } from "../ledger/store/sqlite-ledger.js";
import { openRegistry, type Registry } from "./registry.js";

let dir: string;
let registry: Registry;
let hash: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "registry-"));
  registry = openRegistry({ path: join(dir, "cloud.db") });
  hash ??= await hashSecret("secret-1");
  registry.addVillage({ villageId: "v1", name: "Village" });
  registry.addHousehold({ householdId: "h1", villageId: "v1", name: "Li", overdraftFen: 50 });
  registry.addGateway({ gatewayId: "gw-1", villageId: "v1", secretHash: hash });
  registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 0, prices: { kind: "flat", priceCentiFenPerKwh: 5283 } });
});

afterEach(() => {
  registry.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("registry", () => {
  it("shares one file with the ledger, each with its own migrations", async () => {
    const ledger = openSqliteLedger({ path: join(dir, "cloud.db") });
    await ledger.openAccount({ accountId: "a", kind: "village-cash", villageId: "v1" });
    await ledger.close();
    registry.close();
    registry = openRegistry({ path: join(dir, "cloud.db") });
    expect(registry.getHousehold("h1")).toEqual({ householdId: "h1", villageId: "v1", name: "Li", overdraftFen: 50 });
  });

  it("builds the broker's snapshot: gateways with hash and enabled flag, cloud clients with roles", () => {
    registry.putCloudClient({ username: "ops-command", role: "command", secretHash: hash });
    registry.setGatewayEnabled("gw-1", false);
    const snap = registry.snapshot();
    expect(snap.gateways.get("gw-1")).toEqual({ secretHash: hash, enabled: false });
    expect(snap.cloudClients.get("ops-command")).toEqual({ secretHash: hash, role: "command" });
  });

  it("refuses a plaintext secret, a duplicate id and a meter of an unknown gateway, naming what is wrong", () => {
    expect(() => registry.addGateway({ gatewayId: "gw-2", secretHash: "plaintext" })).toThrow(/secretHash/);
    expect(() => registry.addGateway({ gatewayId: "gw-1", secretHash: hash })).toThrow(/already exists/);
    expect(() => registry.addMeter({ meterId: "m1", gatewayId: "gw-9", householdId: "h1", tariffId: "flat" })).toThrow(/no gateway gw-9/);
    expect(() => registry.addGateway({ gatewayId: "GW#1", secretHash: hash })).toThrow(/gatewayId/);
  });

  it("keeps tariff versions immutable and the schedule valid", () => {
    expect(() => registry.addTariff({ tariffId: "flat", version: 1, effectiveFrom: 10, prices: { kind: "flat", priceCentiFenPerKwh: 9999 } })).toThrow();
    registry.addTariff({ tariffId: "flat", version: 2, effectiveFrom: 1000, prices: { kind: "flat", priceCentiFenPerKwh: 6000 } });
    expect(registry.tariffSchedule("flat").map((t) => t.version)).toEqual([1, 2]);
  });

  it("allocates a rising grant sequence per meter and records the final ack", () => {
    registry.addMeter({ meterId: "m1", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", initialWh: 100 });
    const g = { meterId: "m1", limitWh: 200, registerWh: 100, gatewayId: "gw-1", issuedAtMs: 1, expiresAtMs: 2 };
    expect(registry.recordGrant({ ...g, commandId: "cmd-00000001" }).grantSeq).toBe(1);
    expect(registry.recordGrant({ ...g, commandId: "cmd-00000002" }).grantSeq).toBe(2);
    registry.recordCommandAck("cmd-00000002", "done", undefined, 3);
    registry.recordCommandAck("cmd-00000002", "accepted", undefined, 4);
    expect(registry.lastGrant("m1")).toMatchObject({ grantSeq: 2, ackStatus: "done" });
    expect(registry.recordCommandAck("cmd-unknown-1", "done", undefined, 5)).toBeUndefined();
  });

  it("answers the highest limit a gateway may still enforce: the last grant confirmed done and any sent after it", () => {
    registry.addMeter({ meterId: "m1", gatewayId: "gw-1", householdId: "h1", tariffId: "flat", initialWh: 100 });
    expect(registry.highestLimitInForceWh("m1")).toBeUndefined();
    const g = { meterId: "m1", registerWh: 100, gatewayId: "gw-1", issuedAtMs: 1, expiresAtMs: 2 };
    registry.recordGrant({ ...g, limitWh: 500, commandId: "cmd-00000001" });
    registry.recordCommandAck("cmd-00000001", "done", undefined, 3);
    registry.recordGrant({ ...g, limitWh: 900, commandId: "cmd-00000002" });
    registry.recordGrant({ ...g, limitWh: 600, commandId: "cmd-00000003" });
    // The 900 grant may have arrived and the lowered 600 not yet (the gateway is offline).
    expect(registry.highestLimitInForceWh("m1")).toBe(900);
    registry.recordCommandAck("cmd-00000003", "done", undefined, 4);
    expect(registry.highestLimitInForceWh("m1")).toBe(600);
  });
});
