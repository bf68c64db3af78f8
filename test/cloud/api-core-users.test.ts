import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { bearer, PASSWORDS, startApiCore, type ApiCore } from "./api-core.fixture.js";

let core: ApiCore;
let admin: string;
let officer: string;

beforeEach(async () => {
  core = await startApiCore();
  admin = await core.login("admin", PASSWORDS.admin);
  officer = await core.login("officer-v1", PASSWORDS.officer);
});

afterEach(async () => {
  await core.close();
});

const post = (token: string, url: string, payload: unknown) => core.inject({ method: "POST", url, headers: bearer(token), payload: payload as Record<string, unknown> });
const patch = (token: string, url: string, payload: unknown) => core.inject({ method: "PATCH", url, headers: bearer(token), payload: payload as Record<string, unknown> });
const get = (token: string, url: string) => core.inject({ method: "GET", url, headers: bearer(token) });

const farmer = (over: Record<string, unknown> = {}) => ({ userId: "farmer-zhao", name: "Zhao", roles: ["farmer"], householdId: "h1", password: "sorghum-field-77", ...over });

describe("creating users", () => {
  it("lets an officer create a farmer of a household in their village, audited with who, why and the village", async () => {
    const res = await post(officer, "/users", { ...farmer(), reason: "new pump contract" });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toEqual({ userId: "farmer-zhao", name: "Zhao", roles: ["farmer"], villageIds: [], householdId: "h1", jurisdictionIds: [], disabled: false, createdAtMs: core.nowMs(), updatedAtMs: core.nowMs() });
    expect(JSON.stringify(res.json())).not.toMatch(/scrypt|password/);
    const [entry] = await core.auth.audit.list({ entityId: "farmer-zhao", limit: 10 });
    expect(entry).toMatchObject({ actor: "officer-v1", action: "user.create", villageId: "v1", reason: "new pump contract", after: { roles: ["farmer"], householdId: "h1" } });
    expect(JSON.stringify(entry)).not.toMatch(/scrypt/);
  });

  it("refuses an officer creating a farmer in another village, and creates nothing", async () => {
    const res = await post(officer, "/users", farmer({ householdId: "h2" }));
    expect(res.statusCode).toBe(403);
    expect(await core.auth.getUser("farmer-zhao")).toBeUndefined();
  });

  it("refuses an officer creating an admin or another officer", async () => {
    expect((await post(officer, "/users", farmer({ roles: ["admin"], householdId: undefined }))).statusCode).toBe(403);
    expect((await post(officer, "/users", farmer({ roles: ["village-officer"], villageIds: ["v1"], householdId: undefined }))).statusCode).toBe(403);
    expect((await post(officer, "/users", farmer({ roles: ["farmer", "village-officer"], villageIds: ["v1"] }))).statusCode).toBe(403);
  });

  it("lets an admin create a dispatcher with jurisdictions", async () => {
    const res = await post(admin, "/users", { userId: "dispatch-1", name: "Dispatcher", roles: ["police-dispatcher"], jurisdictionIds: ["county-7"], password: "fire-watch-tower-3" });
    expect(res.statusCode).toBe(201);
  });

  it("refuses a password under 10 characters with 400 AUTH_WEAK_PASSWORD", async () => {
    const res = await post(admin, "/users", farmer({ password: "short-pw" }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: "AUTH_WEAK_PASSWORD" });
  });

  it("refuses a farmer without a household, naming the field", async () => {
    const res = await post(admin, "/users", farmer({ householdId: undefined }));
    expect(res.statusCode).toBe(400);
    expect(res.json<{ detail: string }>().detail).toMatch(/householdId: a farmer needs the household/);
  });

  it("refuses a scope naming a household or village that does not exist", async () => {
    const res = await post(admin, "/users", { userId: "off-9", name: "O", roles: ["village-officer"], villageIds: ["v9"], password: "sorghum-field-77" });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ errors: [{ path: "body.villageIds", message: "no village v9" }] });
  });

  it("refuses a user id that is taken with 409", async () => {
    expect((await post(admin, "/users", farmer({ userId: "FARMER-LI" }))).statusCode).toBe(409);
  });
});

describe("changing users", () => {
  it("requires a reason", async () => {
    const res = await patch(admin, "/users/farmer-li", { name: "Li W." });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ errors: [{ path: "body.reason" }] });
  });

  it("records before and after of a scope change", async () => {
    const res = await patch(admin, "/users/officer-v1", { villageIds: ["v1", "v2"], reason: "covers West Village too" });
    expect(res.json()).toMatchObject({ villageIds: ["v1", "v2"] });
    const last = (await core.auth.audit.list({ entityId: "officer-v1", limit: 10 })).at(-1);
    expect(last).toMatchObject({ action: "user.update", actor: "admin", reason: "covers West Village too", before: { villageIds: ["v1"] }, after: { villageIds: ["v1", "v2"] } });
  });

  it("lets an officer disable a farmer of their village, ending the farmer's sessions", async () => {
    const farmerToken = await core.login("farmer-li", PASSWORDS.farmer);
    const res = await patch(officer, "/users/farmer-li", { disabled: true, reason: "household moved" });
    expect(res.json()).toMatchObject({ disabled: true });
    expect((await get(farmerToken, "/auth/me")).statusCode).toBe(401);
    expect((await core.auth.audit.list({ entityId: "farmer-li", limit: 10 })).at(-1)).toMatchObject({ action: "user.disable", actor: "officer-v1" });
  });

  it("refuses an officer making a farmer an officer", async () => {
    expect((await patch(officer, "/users/farmer-li", { roles: ["village-officer"], villageIds: ["v1"], householdId: null, reason: "promotion" })).statusCode).toBe(403);
  });

  it("refuses an officer changing an admin", async () => {
    expect((await patch(officer, "/users/admin", { disabled: true, reason: "coup" })).statusCode).toBe(403);
  });

  it("refuses to disable the last enabled admin", async () => {
    const res = await patch(admin, "/users/admin", { disabled: true, reason: "going on leave" });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: "API_LAST_ADMIN" });
  });

  it("answers 404 for an unknown user", async () => {
    expect((await patch(admin, "/users/nobody", { disabled: true, reason: "cleanup" })).statusCode).toBe(404);
  });
});

describe("listing users", () => {
  it("shows an officer the users of their villages only, an admin everyone", async () => {
    await post(admin, "/users", farmer({ userId: "farmer-wang", householdId: "h2" }));
    const ids = async (token: string) => (await get(token, "/users")).json<{ users: { userId: string }[] }>().users.map((u) => u.userId);
    expect(await ids(officer)).toEqual(["farmer-li", "officer-v1"]);
    expect(await ids(admin)).toEqual(["admin", "farmer-li", "farmer-wang", "officer-v1"]);
  });

  it("refuses an officer another village's user by id (403) and lets a farmer read themselves", async () => {
    await post(admin, "/users", farmer({ userId: "farmer-wang", householdId: "h2" }));
    expect((await get(officer, "/users/farmer-wang")).statusCode).toBe(403);
    const farmerToken = await core.login("farmer-li", PASSWORDS.farmer);
    expect((await get(farmerToken, "/users/farmer-li")).statusCode).toBe(200);
    expect((await get(farmerToken, "/users/officer-v1")).statusCode).toBe(403);
  });
});

describe("passwords", () => {
  it("lets a user change their own password with the current one; the old one stops working", async () => {
    const farmerToken = await core.login("farmer-li", PASSWORDS.farmer);
    const res = await post(farmerToken, "/users/farmer-li/password", { password: "new-millet-field-2", currentPassword: PASSWORDS.farmer });
    expect(res.statusCode).toBe(200);
    expect((await get(farmerToken, "/auth/me")).statusCode).toBe(401);
    expect((await core.inject({ method: "POST", url: "/auth/login", payload: { userId: "farmer-li", password: PASSWORDS.farmer } })).statusCode).toBe(401);
    expect((await core.inject({ method: "POST", url: "/auth/login", payload: { userId: "farmer-li", password: "new-millet-field-2" } })).statusCode).toBe(200);
    expect((await core.auth.audit.list({ entityId: "farmer-li", limit: 10 })).at(-1)).toMatchObject({ action: "user.password", actor: "farmer-li" });
  });

  it("refuses an own change with a wrong current password (403)", async () => {
    const farmerToken = await core.login("farmer-li", PASSWORDS.farmer);
    expect((await post(farmerToken, "/users/farmer-li/password", { password: "new-millet-field-2", currentPassword: "wrong-one-here" })).statusCode).toBe(403);
  });

  it("lets an officer reset their farmer's password only with a reason", async () => {
    expect((await post(officer, "/users/farmer-li/password", { password: "reset-by-office-1" })).statusCode).toBe(400);
    expect((await post(officer, "/users/farmer-li/password", { password: "reset-by-office-1", reason: "forgot it" })).statusCode).toBe(200);
  });
});

describe("GET /audit", () => {
  it("shows an admin every entry and an officer only their villages' entries", async () => {
    await post(admin, "/users", farmer({ userId: "farmer-wang", householdId: "h2" }));
    const entityIds = async (token: string) => (await get(token, "/audit")).json<{ entries: { entityId: string }[] }>().entries.map((e) => e.entityId);
    expect(await entityIds(admin)).toEqual(["admin", "officer-v1", "farmer-li", "farmer-wang"]);
    expect(await entityIds(officer)).toEqual(["officer-v1", "farmer-li"]);
  });

  it("refuses an officer another village's entries by name (403) and a farmer altogether (403)", async () => {
    expect((await get(officer, "/audit?villageId=v2")).statusCode).toBe(403);
    const farmerToken = await core.login("farmer-li", PASSWORDS.farmer);
    expect((await get(farmerToken, "/audit")).statusCode).toBe(403);
  });

  it("pages with limit and afterId", async () => {
    const first = (await get(admin, "/audit?limit=2")).json<{ entries: { auditId: number }[]; nextAfterId: number }>();
    expect(first.entries).toHaveLength(2);
    const second = (await get(admin, `/audit?limit=2&afterId=${first.nextAfterId}`)).json<{ entries: { auditId: number }[]; nextAfterId?: number }>();
    expect(second.entries.map((e) => e.auditId)).toEqual([3]);
    expect(second.nextAfterId).toBeUndefined();
  });

  it("refuses a limit that is not plain digits", async () => {
    expect((await get(admin, "/audit?limit=1e3")).statusCode).toBe(400);
  });
});
