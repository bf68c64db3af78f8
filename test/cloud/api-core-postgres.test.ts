// Two cloud workers, one PostgreSQL: each runs its own API core (its own app and auth pool) with users, sessions and
// the audit log in one shared database, as `agri-cloud serve` does with DATABASE_URL=postgres://. What one worker
// changes — a logout, a disabled user, an audited change — the other sees at its next request.

import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openPostgresAuthStore } from "../../cloud/auth/postgres-auth-store.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { bearer, PASSWORDS, startApiCore, type ApiCore } from "./api-core.fixture.js";

let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server.stop();
});

let first: ApiCore;
let second: ApiCore;

beforeEach(async () => {
  const url = await server.createDatabase("api_core");
  first = await startApiCore({ openAuth: (options) => openPostgresAuthStore({ connectionString: url, poolSize: 2, ...options }) });
  second = await startApiCore({ openAuth: (options) => openPostgresAuthStore({ connectionString: url, poolSize: 2, ...options }), seedUsers: false });
});

afterEach(async () => {
  await first.close();
  await second.close();
});

const me = (core: ApiCore, token: string) => core.inject({ method: "GET", url: "/auth/me", headers: bearer(token) });

describe("two workers on one PostgreSQL", () => {
  it("accepts a session from either worker and refuses it on both after a logout on one", async () => {
    const token = await first.login("farmer-li", PASSWORDS.farmer);
    expect((await me(second, token)).json()).toMatchObject({ userId: "farmer-li", via: "session" });
    expect((await second.inject({ method: "POST", url: "/auth/logout", headers: bearer(token) })).json()).toEqual({ loggedOut: true });
    expect((await me(first, token)).statusCode).toBe(401);
    expect((await me(second, token)).statusCode).toBe(401);
  });

  it("refuses a farmer at the other worker's next request once an officer disables them on one", async () => {
    const farmer = await second.login("farmer-li", PASSWORDS.farmer);
    const officer = await first.login("officer-v1", PASSWORDS.officer);
    const res = await first.inject({ method: "PATCH", url: "/users/farmer-li", headers: bearer(officer), payload: { disabled: true, reason: "household moved" } });
    expect(res.json()).toMatchObject({ disabled: true });
    expect((await me(second, farmer)).statusCode).toBe(401);
  });

  it("shows on one worker's GET /audit the user changes made through the other, in order", async () => {
    const admin = await first.login("admin", PASSWORDS.admin);
    await first.inject({ method: "POST", url: "/users", headers: bearer(admin), payload: { userId: "farmer-wang", name: "Wang", roles: ["farmer"], householdId: "h2", password: "sorghum-field-77" } });
    const officer = await second.login("officer-v1", PASSWORDS.officer);
    const seen = (await second.inject({ method: "GET", url: "/audit", headers: bearer(officer) })).json<{ entries: { entityId: string; villageId?: string }[] }>().entries;
    expect(seen.map((e) => e.entityId)).toEqual(["officer-v1", "farmer-li"]);
    const all = (await second.inject({ method: "GET", url: "/audit", headers: bearer(admin) })).json<{ entries: { entityId: string; villageId?: string }[] }>().entries;
    expect(all.map((e) => [e.entityId, e.villageId])).toEqual([["admin", undefined], ["officer-v1", "v1"], ["farmer-li", "v1"], ["farmer-wang", "v2"]]);
  });
});
