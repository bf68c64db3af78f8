// Provisioning routes through a real fastify instance and real SQLite files: who may change what, the scope of every
// list and get, the rules the registry and the village policy impose, and the audit record every change leaves.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { provisioningRoutes } from "../../cloud/api/routes/provisioning.js";
import { verifySecret } from "../../cloud/broker/secrets.js";
import { ADMIN, APPROVER_V1, call, field, ids, FARMER_LI, FARMER_WANG, OFFICER_V1, OFFICER_V2, openHarness, T0, type Harness } from "./api-domain-harness.js";

let h: Harness;
let gatewayChanges = 0;
const regrants: string[] = [];

const auditOf = async (entityType: string, action: string) => (await h.audit.list({ entityType, limit: 100 })).filter((e) => e.action === action);
const flat = (priceCentiFenPerKwh: number) => ({ kind: "flat", priceCentiFenPerKwh });

async function seed(): Promise<void> {
  for (const villageId of ["v1", "v2"]) expect((await call(h.app, "POST", "/villages", ADMIN, { villageId, name: `Village ${villageId}` })).status).toBe(201);
  expect((await call(h.app, "POST", "/tariffs/t1/versions", ADMIN, { effectiveFrom: 0, prices: flat(5283), reason: "county price 2026" })).status).toBe(201);
  for (const [villageId, gatewayId] of [["v1", "gw-v1"], ["v2", "gw-v2"]] as const) {
    expect((await call(h.app, "POST", `/villages/${villageId}/gateways`, ADMIN, { gatewayId })).status).toBe(201);
  }
  for (const [villageId, householdId, who] of [["v1", "hh-li", OFFICER_V1], ["v1", "hh-wang", OFFICER_V1], ["v2", "hh-zhao", OFFICER_V2]] as const) {
    expect((await call(h.app, "POST", `/villages/${villageId}/households`, who, { householdId, name: householdId })).status).toBe(201);
  }
}

beforeEach(async () => {
  gatewayChanges = 0;
  regrants.length = 0;
  h = await openHarness((app, parts) =>
    provisioningRoutes(app, {
      registry: parts.registry,
      ledger: parts.ledger,
      audit: parts.audit,
      now: () => parts.clock.nowMs,
      onGatewaysChanged: () => {
        gatewayChanges++;
        return Promise.resolve();
      },
      prepaid: {
        regrantHousehold: (householdId) => {
          regrants.push(householdId);
          return Promise.resolve();
        },
      },
    }),
  );
  await seed();
});

afterEach(async () => {
  await h.close();
});

describe("villages", () => {
  it("lets only an admin add a village", async () => {
    const refused = await call(h.app, "POST", "/villages", OFFICER_V1, { villageId: "v3", name: "Village 3" });
    expect(refused.status).toBe(403);
    expect(refused.contentType).toContain("application/problem+json");
    expect(await h.registry.getVillage("v3")).toBeUndefined();
  });

  it("lists only the caller's villages to an officer, and every village to an admin", async () => {
    expect((await call(h.app, "GET", "/villages", OFFICER_V1)).json).toEqual([{ villageId: "v1", name: "Village v1" }]);
    expect(ids(await call(h.app, "GET", "/villages", ADMIN), "villageId")).toEqual(["v1", "v2"]);
  });

  it("answers 403 for another village and 404 for one that does not exist", async () => {
    expect((await call(h.app, "GET", "/villages/v2", OFFICER_V1)).status).toBe(403);
    expect((await call(h.app, "GET", "/villages/v9", ADMIN)).status).toBe(404);
  });

  it("answers 401 to a caller who is not signed in", async () => {
    expect((await call(h.app, "GET", "/villages", undefined)).status).toBe(401);
  });

  it("refuses a farmer the village listing", async () => {
    expect((await call(h.app, "GET", "/villages", FARMER_LI)).status).toBe(403);
  });
});

describe("village policies", () => {
  const policy = { maxBalanceFen: 50_000, maxOverdraftFen: 300, lowCredit: { stage1Fen: 1_000, stage2Fen: 200 } };

  it("publishes numbered versions, each audited with its reason", async () => {
    const v1 = await call(h.app, "POST", "/villages/v1/policies", ADMIN, { effectiveFrom: 0, policy, reason: "committee meeting 2026-10" });
    expect(v1.status).toBe(201);
    h.clock.nowMs = T0 + 1000;
    const v2 = await call(h.app, "POST", "/villages/v1/policies", ADMIN, { effectiveFrom: T0 + 86_400_000, policy: { ...policy, maxOverdraftFen: 500 }, reason: "winter pumping" });
    expect(v2.json).toMatchObject({ villageId: "v1", version: 2 });
    const audit = await h.audit.list({ entityType: "village-policy", limit: 10 });
    expect(audit.map((e) => [e.entityId, e.actor, e.reason])).toEqual([
      ["v1@v1", "admin-1", "committee meeting 2026-10"],
      ["v1@v2", "admin-1", "winter pumping"],
    ]);
  });

  it("refuses a later version that would take effect in the past", async () => {
    await call(h.app, "POST", "/villages/v1/policies", ADMIN, { effectiveFrom: 0, policy, reason: "first policy" });
    const refused = await call(h.app, "POST", "/villages/v1/policies", ADMIN, { effectiveFrom: T0 - 1, policy, reason: "backdated" });
    expect(refused.status).toBe(422);
    expect(await h.registry.villagePolicies("v1")).toHaveLength(1);
  });

  it("refuses a policy without a reason, or with stage 2 above stage 1", async () => {
    expect((await call(h.app, "POST", "/villages/v1/policies", ADMIN, { effectiveFrom: 0, policy })).status).toBe(400);
    const bad = await call(h.app, "POST", "/villages/v1/policies", ADMIN, { effectiveFrom: 0, policy: { ...policy, lowCredit: { stage1Fen: 100, stage2Fen: 200 } }, reason: "typo" });
    expect(bad.status).toBe(400);
    expect(field(bad, "code")).toBe("API_INVALID_INPUT");
  });

  it("lets an officer read their own village's policies but not publish one", async () => {
    expect((await call(h.app, "POST", "/villages/v1/policies", OFFICER_V1, { effectiveFrom: 0, policy, reason: "officer tries" })).status).toBe(403);
    expect((await call(h.app, "GET", "/villages/v1/policies", OFFICER_V1)).status).toBe(200);
    expect((await call(h.app, "GET", "/villages/v1/policies", OFFICER_V2)).status).toBe(403);
  });
});

describe("households", () => {
  it("refuses an overdraft above the village policy's maxOverdraftFen and accepts one at it", async () => {
    await call(h.app, "POST", "/villages/v1/policies", ADMIN, { effectiveFrom: 0, policy: { maxOverdraftFen: 300 }, reason: "allow small overdrafts" });
    const over = await call(h.app, "POST", "/villages/v1/households", OFFICER_V1, { householdId: "hh-sun", name: "Sun", overdraftFen: 301, reason: "old customer" });
    expect(over.status).toBe(422);
    expect(field(over, "code")).toBe("API_OVERDRAFT_OVER_POLICY");
    const at = await call(h.app, "POST", "/villages/v1/households", OFFICER_V1, { householdId: "hh-sun", name: "Sun", overdraftFen: 300, reason: "old customer" });
    expect(at.json).toEqual({ householdId: "hh-sun", villageId: "v1", name: "Sun", overdraftFen: 300 });
  });

  it("refuses any overdraft where the village policy allows none (the default)", async () => {
    expect((await call(h.app, "POST", "/villages/v1/households", OFFICER_V1, { householdId: "hh-sun", name: "Sun", overdraftFen: 1, reason: "please" })).status).toBe(422);
  });

  it("needs a reason for an overdraft", async () => {
    const refused = await call(h.app, "POST", "/villages/v1/households", OFFICER_V1, { householdId: "hh-sun", name: "Sun", overdraftFen: 100 });
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({ errors: [{ path: "body.reason" }] });
  });

  it("refuses an officer of v1 a household in v2, and a duplicate id with 409", async () => {
    expect((await call(h.app, "POST", "/villages/v2/households", OFFICER_V1, { householdId: "hh-x", name: "X" })).status).toBe(403);
    expect((await call(h.app, "POST", "/villages/v1/households", OFFICER_V1, { householdId: "hh-li", name: "Li again" })).status).toBe(409);
  });

  it("shows a farmer their own household and refuses them another", async () => {
    expect((await call(h.app, "GET", "/households/hh-li", FARMER_LI)).json).toMatchObject({ householdId: "hh-li", villageId: "v1" });
    expect((await call(h.app, "GET", "/households/hh-wang", FARMER_LI)).status).toBe(403);
    expect((await call(h.app, "GET", "/households/hh-nobody", FARMER_LI)).status).toBe(404);
  });

  it("lists a village's households to its officers and approvers only", async () => {
    expect(ids(await call(h.app, "GET", "/villages/v1/households", APPROVER_V1), "householdId")).toEqual(["hh-li", "hh-wang"]);
    expect((await call(h.app, "GET", "/villages/v1/households", OFFICER_V2)).status).toBe(403);
  });

  it("records who added each household", async () => {
    const entries = await h.audit.list({ entityType: "household", limit: 10 });
    expect(entries.map((e) => [e.entityId, e.actor, e.action, e.villageId])).toEqual([
      ["hh-li", "officer-v1", "household.create", "v1"],
      ["hh-wang", "officer-v1", "household.create", "v1"],
      ["hh-zhao", "officer-v2", "household.create", "v2"],
    ]);
  });
});

describe("gateways", () => {
  it("returns a generated secret once and stores only a scrypt hash that verifies it", async () => {
    const created = await call(h.app, "POST", "/villages/v1/gateways", ADMIN, { gatewayId: "gw-new", reason: "second pump house" });
    expect(created.status).toBe(201);
    const secret = field<string>(created, "secret");
    expect(secret.length).toBeGreaterThanOrEqual(32);
    const stored = (await h.registry.snapshot()).gateways.get("gw-new")?.secretHash ?? "";
    expect(stored.startsWith("scrypt$")).toBe(true);
    expect(stored).not.toContain(secret);
    expect(await verifySecret(secret, stored)).toBe(true);
    const read = await call(h.app, "GET", "/gateways/gw-new", OFFICER_V1);
    expect(read.json).toEqual({ gatewayId: "gw-new", villageId: "v1", enabled: true });
  });

  it("rotates a secret: the old one stops verifying, the new one verifies", async () => {
    const created = await call(h.app, "POST", "/villages/v1/gateways", ADMIN, { gatewayId: "gw-rot" });
    const rotated = await call(h.app, "POST", "/gateways/gw-rot/secret", ADMIN, { reason: "SD card lost" });
    expect(rotated.status).toBe(200);
    const stored = (await h.registry.snapshot()).gateways.get("gw-rot")?.secretHash ?? "";
    expect(await verifySecret(field<string>(created, "secret"), stored)).toBe(false);
    expect(await verifySecret(field<string>(rotated, "secret"), stored)).toBe(true);
    expect((await h.audit.list({ entityType: "gateway", entityId: "gw-rot", limit: 10 })).map((e) => [e.action, e.reason ?? null])).toEqual([
      ["gateway.create", null],
      ["gateway.rotate-secret", "SD card lost"],
    ]);
  });

  it("tells the broker's snapshot every time a gateway changes", async () => {
    const before = gatewayChanges;
    await call(h.app, "PATCH", "/gateways/gw-v1", OFFICER_V1, { enabled: false, reason: "stolen" });
    await call(h.app, "POST", "/gateways/gw-v1/secret", ADMIN, { reason: "stolen" });
    expect(gatewayChanges).toBe(before + 2);
  });

  it("lets an officer disable their village's gateway with a reason, audited before and after", async () => {
    const answer = await call(h.app, "PATCH", "/gateways/gw-v1", OFFICER_V1, { enabled: false, reason: "cabinet flooded" });
    expect(answer.json).toEqual({ gatewayId: "gw-v1", villageId: "v1", enabled: false });
    expect((await h.registry.snapshot()).gateways.get("gw-v1")?.enabled).toBe(false);
    const [entry] = await auditOf("gateway", "gateway.disable");
    expect(entry).toMatchObject({ actor: "officer-v1", reason: "cabinet flooded", before: { enabled: true }, after: { enabled: false } });
  });

  it("refuses an officer another village's gateway, the creation of a gateway, and a secret rotation", async () => {
    expect((await call(h.app, "PATCH", "/gateways/gw-v2", OFFICER_V1, { enabled: false, reason: "not mine" })).status).toBe(403);
    expect((await call(h.app, "POST", "/villages/v1/gateways", OFFICER_V1, { gatewayId: "gw-mine" })).status).toBe(403);
    expect((await call(h.app, "POST", "/gateways/gw-v1/secret", OFFICER_V1, { reason: "curious" })).status).toBe(403);
    expect((await h.registry.snapshot()).gateways.get("gw-v2")?.enabled).toBe(true);
  });

  it("refuses a duplicate gateway id with 409 and a malformed one with 400", async () => {
    expect((await call(h.app, "POST", "/villages/v1/gateways", ADMIN, { gatewayId: "gw-v2" })).status).toBe(409);
    expect((await call(h.app, "POST", "/villages/v1/gateways", ADMIN, { gatewayId: "GW UPPER" })).status).toBe(400);
  });
});

describe("tariffs", () => {
  it("publishes a later version that takes effect in the future, never editing the first", async () => {
    const v2 = await call(h.app, "POST", "/tariffs/t1/versions", ADMIN, { effectiveFrom: T0 + 86_400_000, prices: flat(6000), reason: "county price 2027" });
    expect(v2.status).toBe(201);
    expect(v2.json).toMatchObject({ tariffId: "t1", version: 2 });
    const versions = (await call(h.app, "GET", "/tariffs/t1", FARMER_LI)).json as { version: number; prices: unknown }[];
    expect(versions.map((v) => [v.version, v.prices])).toEqual([
      [1, flat(5283)],
      [2, flat(6000)],
    ]);
  });

  it("refuses a later version backdated into the past", async () => {
    const refused = await call(h.app, "POST", "/tariffs/t1/versions", ADMIN, { effectiveFrom: T0 - 1, prices: flat(1), reason: "retroactive discount" });
    expect(refused.status).toBe(422);
    expect(await h.registry.tariffSchedule("t1")).toHaveLength(1);
  });

  it("needs a reason, an admin, and an integer price", async () => {
    expect((await call(h.app, "POST", "/tariffs/t1/versions", ADMIN, { effectiveFrom: T0 + 1, prices: flat(6000) })).status).toBe(400);
    expect((await call(h.app, "POST", "/tariffs/t1/versions", OFFICER_V1, { effectiveFrom: T0 + 1, prices: flat(6000), reason: "officer" })).status).toBe(403);
    expect((await call(h.app, "POST", "/tariffs/t1/versions", ADMIN, { effectiveFrom: T0 + 1, prices: flat(52.83), reason: "float" })).status).toBe(400);
  });

  it("re-grants the households whose meters are on the tariff", async () => {
    await call(h.app, "POST", "/households/hh-li/meters", OFFICER_V1, { meterId: "pump-li", gatewayId: "gw-v1", tariffId: "t1", reason: "new pump" });
    await call(h.app, "POST", "/tariffs/t1/versions", ADMIN, { effectiveFrom: T0 + 1, prices: flat(6000), reason: "price rise" });
    expect(regrants).toEqual(["hh-li"]);
  });

  it("answers 404 for a tariff that does not exist", async () => {
    expect((await call(h.app, "GET", "/tariffs/nope", OFFICER_V1)).status).toBe(404);
  });
});

describe("meters and plots", () => {
  beforeEach(async () => {
    expect((await call(h.app, "POST", "/households/hh-li/plots", OFFICER_V1, { plotId: "plot-li-1", name: "east paddy", areaMilliMu: 3500, crop: "rice" })).status).toBe(201);
  });

  it("adds a meter bound to the household's plot, with a reason in the audit", async () => {
    const added = await call(h.app, "POST", "/households/hh-li/meters", OFFICER_V1, { meterId: "pump-li", gatewayId: "gw-v1", tariffId: "t1", plotId: "plot-li-1", litresPerKwh: 900, reason: "new pump" });
    expect(added.status).toBe(201);
    expect(added.json).toMatchObject({ meterId: "pump-li", householdId: "hh-li", plotId: "plot-li-1", litresPerKwh: 900 });
    const [entry] = await h.audit.list({ entityType: "meter", entityId: "pump-li", limit: 1 });
    expect(entry).toMatchObject({ actor: "officer-v1", action: "meter.create", reason: "new pump", villageId: "v1" });
  });

  it("records the meter's Modbus unit, profile and relay binding, and refuses a unit outside 1..247", async () => {
    const body = { meterId: "pump-li", gatewayId: "gw-v1", tariffId: "t1", unitId: 5, profileId: "chint-ddsu666", relay: { kind: "contactor", deviceId: "relay-board-1", channel: 3 }, reason: "new pump" };
    expect((await call(h.app, "POST", "/households/hh-li/meters", OFFICER_V1, { ...body, unitId: 248 })).status).toBe(400);
    const added = await call(h.app, "POST", "/households/hh-li/meters", OFFICER_V1, body);
    expect(added.status).toBe(201);
    expect(added.json).toMatchObject({ unitId: 5, profileId: "chint-ddsu666", relay: { kind: "contactor", deviceId: "relay-board-1", channel: 3 } });
  });

  it("refuses a meter without a reason, on another village's gateway, or on another household's plot", async () => {
    expect((await call(h.app, "POST", "/households/hh-li/meters", OFFICER_V1, { meterId: "pump-li", gatewayId: "gw-v1", tariffId: "t1" })).status).toBe(400);
    expect((await call(h.app, "POST", "/households/hh-li/meters", OFFICER_V1, { meterId: "pump-li", gatewayId: "gw-v2", tariffId: "t1", reason: "wrong gw" })).status).toBe(422);
    expect((await call(h.app, "POST", "/households/hh-wang/meters", OFFICER_V1, { meterId: "pump-w", gatewayId: "gw-v1", tariffId: "t1", plotId: "plot-li-1", reason: "wrong plot" })).status).toBe(422);
    expect((await call(h.app, "POST", "/households/hh-li/meters", OFFICER_V1, { meterId: "pump-li", gatewayId: "gw-v1", tariffId: "nope", reason: "unknown tariff" })).status).toBe(404);
    expect(await h.registry.getMeter("pump-li")).toBeUndefined();
  });

  it("shows a farmer their own meter and refuses them a neighbour's", async () => {
    await call(h.app, "POST", "/households/hh-li/meters", OFFICER_V1, { meterId: "pump-li", gatewayId: "gw-v1", tariffId: "t1", reason: "new pump" });
    await call(h.app, "POST", "/households/hh-wang/meters", OFFICER_V1, { meterId: "pump-wang", gatewayId: "gw-v1", tariffId: "t1", reason: "new pump" });
    expect((await call(h.app, "GET", "/meters/pump-li", FARMER_LI)).status).toBe(200);
    expect((await call(h.app, "GET", "/meters/pump-li", FARMER_WANG)).status).toBe(403);
    expect((await call(h.app, "GET", "/meters/pump-nope", FARMER_WANG)).status).toBe(404);
    expect(ids(await call(h.app, "GET", "/villages/v1/meters", OFFICER_V1), "meterId")).toEqual(["pump-li", "pump-wang"]);
  });

  it("binds an existing meter to a plot later, audited with before and after", async () => {
    await call(h.app, "POST", "/households/hh-li/meters", OFFICER_V1, { meterId: "pump-li", gatewayId: "gw-v1", tariffId: "t1", reason: "new pump" });
    const bound = await call(h.app, "PUT", "/meters/pump-li/plot", OFFICER_V1, { plotId: "plot-li-1", reason: "pump moved to the paddy" });
    expect(field(bound, "plotId")).toBe("plot-li-1");
    const [entry] = await auditOf("meter", "meter.bind-plot");
    expect(entry?.before).not.toHaveProperty("plotId");
    expect(entry?.after).toMatchObject({ plotId: "plot-li-1" });
  });

  it("keeps a plot's crops as history and audits each change", async () => {
    const changed = await call(h.app, "POST", "/plots/plot-li-1/crops", OFFICER_V1, { crop: "wheat", effectiveFromMs: T0, reason: "winter wheat" });
    expect(changed.status).toBe(201);
    expect(field<{ crop: string }[]>(changed, "crops").map((c) => c.crop)).toEqual(["rice", "wheat"]);
    expect((await call(h.app, "POST", "/plots/plot-li-1/crops", OFFICER_V1, { crop: "maize", effectiveFromMs: T0 })).status).toBe(409);
    const [entry] = await auditOf("plot", "plot.crop-change");
    expect(entry).toMatchObject({ before: { crop: "rice" }, after: { crop: "wheat", recordedBy: "officer-v1" } });
  });

  it("lets a farmer read their plots but not change them, and an officer of v2 neither", async () => {
    expect((await call(h.app, "GET", "/households/hh-li/plots", FARMER_LI)).json).toHaveLength(1);
    expect((await call(h.app, "POST", "/plots/plot-li-1/crops", FARMER_LI, { crop: "tea", effectiveFromMs: T0 })).status).toBe(403);
    expect((await call(h.app, "GET", "/plots/plot-li-1", OFFICER_V2)).status).toBe(403);
    expect((await call(h.app, "GET", "/plots/plot-li-1", FARMER_WANG)).status).toBe(403);
  });
});

describe("bad input", () => {
  it("refuses an unknown field, a fractional area and an oversized body", async () => {
    expect((await call(h.app, "POST", "/villages", ADMIN, { villageId: "v3", name: "V3", extra: 1 })).status).toBe(400);
    expect((await call(h.app, "POST", "/households/hh-li/plots", OFFICER_V1, { plotId: "p2", name: "x", areaMilliMu: 1.5, crop: "rice" })).status).toBe(400);
    const huge = await call(h.app, "POST", "/villages", ADMIN, { villageId: "v3", name: "x".repeat(20_000) });
    expect(huge.status).toBe(413);
    expect(await h.registry.getVillage("v3")).toBeUndefined();
  });
});
