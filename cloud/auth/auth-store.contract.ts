// The one contract every AuthStore engine must pass (ARCHITECTURE.md §5), run by sqlite-auth-store.test.ts and
// postgres-auth-store.test.ts: secrets stored only as hashes and digests, session lifetime (absolute, idle, touch),
// revocation and disabling seen at once by a second handle on the same data (another worker), a user change and its
// audit entry committed or rolled back together, and every kind of bad input refused with its code.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AuthStore, SessionPolicy, VillageOfHousehold } from "./auth-store.js";
import { AUTH_ERROR_CODES as C } from "./errors.js";
import type { NewUserInput } from "./user-schema.js";

export interface AuthContractOpenOptions {
  readonly now: () => number;
  readonly sessions: Partial<SessionPolicy>;
  readonly villageOfHousehold: VillageOfHousehold;
}

/** Fresh, empty data that several handles can open at once (each open is another worker on the same data). */
export interface AuthContractStore {
  open(options: AuthContractOpenOptions): Promise<AuthStore>;
  /** Test hook: the rows of one SELECT through a connection of its own, bypassing the port. */
  rawRows(sql: string): Promise<Record<string, unknown>[]>;
  dispose(): Promise<void> | void;
}

const POLICY = { absoluteTtlMs: 10_000, idleTimeoutMs: 3000, touchEveryMs: 1000 };
const HOUSEHOLD_VILLAGES: Readonly<Record<string, string>> = { h1: "v1", h2: "v2" };
const by = { actor: "admin", reason: "test" };
const OFFICER: NewUserInput = { userId: "officer-1", name: "Zhang", roles: ["village-officer"], villageIds: ["v1"], password: "willow-kettle-17" };
const FARMER: NewUserInput = { userId: "farmer-li", name: "Li", roles: ["farmer"], householdId: "h1", password: "millet-harvest-9" };

export function runAuthStoreContract(name: string, factory: () => AuthContractStore): void {
  describe(`AuthStore contract: ${name}`, () => {
    let store: AuthContractStore;
    let clock: number;
    let auth: AuthStore;
    const opened: AuthStore[] = [];
    const open = async (): Promise<AuthStore> => {
      const handle = await store.open({ now: () => clock, sessions: POLICY, villageOfHousehold: async (id) => Promise.resolve(HOUSEHOLD_VILLAGES[id]) });
      opened.push(handle);
      return handle;
    };
    const actions = async (entityId: string): Promise<string[]> => (await auth.audit.list({ entityId, limit: 100 })).map((e) => e.action);

    beforeEach(async () => {
      store = factory();
      clock = 1_000_000;
      auth = await open();
      await auth.createUser(OFFICER, by);
    });

    afterEach(async () => {
      for (const handle of opened.splice(0)) await handle.close();
      await store.dispose();
    });

    describe("secrets", () => {
      it("keeps the password only as a self-describing scrypt string", async () => {
        const [stored] = (await store.rawRows("SELECT password_hash FROM auth_users")) as { password_hash: string }[];
        expect(stored?.password_hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
        expect(await auth.verifyLogin("officer-1", "willow-kettle-17")).toMatchObject({ userId: "officer-1" });
        expect(await auth.verifyLogin("officer-1", "willow-kettle-18")).toBeUndefined();
        expect(await auth.verifyLogin("nobody", "willow-kettle-17")).toBeUndefined();
      });

      it("stores sessions and API tokens as their digests only", async () => {
        const { token } = await auth.startSession("officer-1");
        const minted = await auth.createApiToken("officer-1", { name: "scale" }, by);
        const dump = JSON.stringify([...(await store.rawRows("SELECT * FROM auth_sessions")), ...(await store.rawRows("SELECT * FROM auth_api_tokens"))]);
        expect(dump).not.toContain(token);
        expect(dump).not.toContain(minted.token);
        expect((await auth.authenticate(token))?.principal.userId).toBe("officer-1");
        expect(JSON.stringify(await auth.audit.list({ limit: 100 }))).not.toContain(minted.token);
      });

      it("refuses a disabled user's right password and an over-long password like a wrong one", async () => {
        expect(await auth.verifyLogin("officer-1", "x".repeat(1025))).toBeUndefined();
        await auth.updateUser("officer-1", { disabled: true }, by);
        expect(await auth.verifyLogin("officer-1", "willow-kettle-17")).toBeUndefined();
      });
    });

    describe("sessions", () => {
      it("keeps a session alive by use, but only to its absolute expiry", async () => {
        const { token } = await auth.startSession("officer-1");
        for (let i = 0; i < 4; i += 1) {
          clock += 2000;
          expect(await auth.authenticate(token)).toBeDefined();
        }
        clock += 2000;
        expect(await auth.authenticate(token)).toBeUndefined();
      });

      it("ends a session left idle for the idle timeout, and the refused use does not touch it", async () => {
        const { token } = await auth.startSession("officer-1");
        clock += 3000;
        expect(await auth.authenticate(token)).toBeUndefined();
        clock -= 1;
        expect(await auth.authenticate(token)).toBeDefined();
      });

      it("answers the session's expiry at login and ends it once on logout", async () => {
        const { token, expiresAtMs } = await auth.startSession("OFFICER-1");
        expect(expiresAtMs).toBe(clock + 10_000);
        expect(await auth.endSession(token)).toBe(true);
        expect(await auth.endSession(token)).toBe(false);
        expect(await auth.authenticate(token)).toBeUndefined();
      });

      it("applies a narrowed scope to a live session at its next use", async () => {
        const { token } = await auth.startSession("officer-1");
        await auth.updateUser("officer-1", { villageIds: ["v2"] }, by);
        expect((await auth.authenticate(token))?.principal.villageIds).toEqual(["v2"]);
      });

      it("refuses a session for an unknown user", async () => {
        await expect(auth.startSession("ghost")).rejects.toMatchObject({ code: C.UNKNOWN });
        await expect(auth.startSession("not a user id!")).rejects.toMatchObject({ code: C.UNKNOWN });
      });

      it("treats tokens that are not ours, unknown or malformed as anonymous", async () => {
        for (const token of ["", "garbage", "agses_" + "A".repeat(43), "agtok_" + "B".repeat(43), "agses_short", "Bearer agses_x"]) {
          expect(await auth.authenticate(token)).toBeUndefined();
          expect(await auth.endSession(token)).toBe(false);
        }
      });
    });

    describe("another worker on the same data", () => {
      it("refuses at once a session ended through the other handle", async () => {
        const other = await open();
        const { token } = await auth.startSession("officer-1");
        expect(await other.authenticate(token)).toBeDefined();
        expect(await auth.endSession(token)).toBe(true);
        expect(await other.authenticate(token)).toBeUndefined();
      });

      it("refuses at once the sessions and tokens of a user disabled through the other handle", async () => {
        const other = await open();
        const { token } = await other.startSession("officer-1");
        const minted = await other.createApiToken("officer-1", { name: "scale" }, by);
        expect(await auth.authenticate(minted.token)).toBeDefined();
        await auth.updateUser("officer-1", { disabled: true }, by);
        expect(await other.authenticate(token)).toBeUndefined();
        expect(await other.authenticate(minted.token)).toBeUndefined();
      });

      it("refuses at once an API token revoked through the other handle", async () => {
        const other = await open();
        const minted = await auth.createApiToken("officer-1", { name: "scale" }, by);
        expect((await other.authenticate(minted.token))?.tokenId).toBe(minted.tokenId);
        await auth.revokeApiToken(minted.tokenId, by);
        expect(await other.authenticate(minted.token)).toBeUndefined();
      });

      it("keeps a session alive for one handle through use on the other", async () => {
        const other = await open();
        const { token } = await auth.startSession("officer-1");
        clock += 2000;
        expect(await other.authenticate(token)).toBeDefined();
        clock += 2000;
        expect(await auth.authenticate(token)).toBeDefined();
        expect(await other.authenticate(token)).toBeDefined();
      });

      it("applies two concurrent changes to one user from two handles, each audited", async () => {
        const other = await open();
        await Promise.all([auth.updateUser("officer-1", { name: "Zhang Wei" }, by), other.updateUser("officer-1", { villageIds: ["v1", "v2"] }, by)]);
        expect(await auth.getUser("officer-1")).toMatchObject({ name: "Zhang Wei", villageIds: ["v1", "v2"] });
        expect(await actions("officer-1")).toEqual(["user.create", "user.update", "user.update"]);
      });
    });

    describe("a login racing a reset", () => {
      it("starts no session for a password check that began before a reset or a disable, and one for a check after it", async () => {
        const began = clock;
        clock += 10;
        await auth.setPassword("officer-1", "birch-lantern-2026", by);
        await expect(auth.startSession("officer-1", { unchangedSinceMs: began })).rejects.toMatchObject({ code: "AUTH_ACCOUNT_CHANGED" });
        expect((await auth.startSession("officer-1", { unchangedSinceMs: clock })).token).toMatch(/./);
        clock += 10;
        await auth.updateUser("officer-1", { disabled: true }, by);
        await expect(auth.startSession("officer-1", { unchangedSinceMs: clock })).rejects.toMatchObject({ code: "AUTH_ACCOUNT_CHANGED" });
        await expect(auth.startSession("nobody", { unchangedSinceMs: clock })).rejects.toMatchObject({ code: "AUTH_UNKNOWN_ENTITY" });
      });
    });

    describe("the last enabled admin", () => {
      const admin = (userId: string): NewUserInput => ({ userId, name: userId, roles: ["admin"], password: "granary-lantern-42" });

      it("refuses to disable the last enabled admin or take the role away, and changes nothing", async () => {
        await auth.createUser(admin("admin-1"), by);
        await expect(auth.updateUser("admin-1", { disabled: true }, by)).rejects.toMatchObject({ code: "AUTH_LAST_ADMIN" });
        await expect(auth.updateUser("admin-1", { roles: ["village-officer"], villageIds: ["v1"] }, by)).rejects.toMatchObject({ code: "AUTH_LAST_ADMIN" });
        expect(await auth.getUser("admin-1")).toMatchObject({ roles: ["admin"], disabled: false });
        expect(await actions("admin-1")).toEqual(["user.create"]);
        // Renaming the last admin takes nothing away.
        expect(await auth.updateUser("admin-1", { name: "County admin" }, by)).toMatchObject({ name: "County admin" });
      });

      it("leaves one enabled admin when two admins disable each other at once from two handles", async () => {
        await auth.createUser(admin("admin-1"), by);
        await auth.createUser(admin("admin-2"), by);
        const other = await open();
        const outcomes = await Promise.allSettled([auth.updateUser("admin-1", { disabled: true }, by), other.updateUser("admin-2", { disabled: true }, by)]);
        expect(outcomes.map((o) => o.status).sort()).toEqual(["fulfilled", "rejected"]);
        expect(outcomes.find((o) => o.status === "rejected")).toMatchObject({ reason: { code: "AUTH_LAST_ADMIN" } });
        const enabled = (await auth.listUsers()).filter((u) => u.roles.includes("admin") && !u.disabled);
        expect(enabled).toHaveLength(1);
      });
    });

    describe("user changes and their audit entries", () => {
      it("audits a farmer's creation under the village of their household", async () => {
        await auth.createUser(FARMER, by);
        const [entry] = await auth.audit.list({ entityId: "farmer-li", limit: 10 });
        expect(entry).toMatchObject({ action: "user.create", actor: "admin", reason: "test", villageId: "v1", after: { userId: "farmer-li", householdId: "h1", disabled: false } });
        expect(JSON.stringify(entry)).not.toContain("scrypt");
      });

      it("files a change of household under the new household's village", async () => {
        await auth.createUser(FARMER, by);
        await auth.updateUser("farmer-li", { householdId: "h2" }, by);
        expect((await auth.audit.list({ entityId: "farmer-li", limit: 10 })).map((e) => e.villageId)).toEqual(["v1", "v2"]);
      });

      it("rolls a user change back when its audit entry cannot be written", async () => {
        await expect(auth.updateUser("officer-1", { name: "Changed" }, { actor: "admin", reason: "x".repeat(3000) })).rejects.toThrow(/reason/);
        expect((await auth.getUser("officer-1"))?.name).toBe("Zhang");
        expect(await actions("officer-1")).toEqual(["user.create"]);
      });

      it("rolls a new user back when its audit entry cannot be written", async () => {
        await expect(auth.createUser(FARMER, { actor: "" })).rejects.toThrow(/actor/);
        expect(await auth.getUser("farmer-li")).toBeUndefined();
      });

      it("records disable and enable as such, ending sessions and tokens so a re-enable revives neither", async () => {
        const { token } = await auth.startSession("officer-1");
        const minted = await auth.createApiToken("officer-1", { name: "scale" }, by);
        await auth.updateUser("officer-1", { disabled: true }, by);
        await auth.updateUser("officer-1", { disabled: false }, by);
        expect(await auth.authenticate(token)).toBeUndefined();
        expect(await auth.authenticate(minted.token)).toBeUndefined();
        expect((await auth.getApiToken(minted.tokenId))?.revokedAtMs).toBe(clock);
        expect(await actions("officer-1")).toEqual(["user.create", "api-token.create", "user.disable", "user.enable"]);
      });

      it("ends sessions and tokens with a password change; the new password works and the old does not", async () => {
        const { token } = await auth.startSession("officer-1");
        const minted = await auth.createApiToken("officer-1", { name: "scale" }, by);
        await auth.setPassword("officer-1", "another long passphrase", by);
        expect(await auth.authenticate(token)).toBeUndefined();
        expect(await auth.authenticate(minted.token)).toBeUndefined();
        expect(await auth.verifyLogin("officer-1", "willow-kettle-17")).toBeUndefined();
        expect(await auth.verifyLogin("officer-1", "another long passphrase")).toBeDefined();
        expect((await actions("officer-1")).at(-1)).toBe("user.password");
      });

      it("records token creation and revocation; revoking twice answers the same and records once", async () => {
        const minted = await auth.createApiToken("officer-1", { name: "scale", expiresAtMs: clock + 5000 }, by);
        const first = await auth.revokeApiToken(minted.tokenId, by);
        clock += 10;
        expect(await auth.revokeApiToken(minted.tokenId, by)).toEqual(first);
        expect(first).toMatchObject({ tokenId: minted.tokenId, userId: "officer-1", name: "scale", createdBy: "admin", expiresAtMs: clock - 10 + 5000, revokedAtMs: clock - 10 });
        const entries = await auth.audit.list({ entityId: "officer-1", limit: 10 });
        expect(entries.map((e) => e.action)).toEqual(["user.create", "api-token.create", "api-token.revoke"]);
        expect(entries.at(-1)).toMatchObject({ villageId: "v1", before: { tokenId: minted.tokenId }, after: { revokedAtMs: clock - 10 } });
      });

      it("lists users in id order and a user's tokens without their secrets", async () => {
        await auth.createUser(FARMER, by);
        const minted = await auth.createApiToken("officer-1", { name: "scale" }, by);
        expect((await auth.listUsers()).map((u) => u.userId)).toEqual(["farmer-li", "officer-1"]);
        expect(await auth.listApiTokens("officer-1")).toEqual([{ tokenId: minted.tokenId, userId: "officer-1", name: "scale", createdAtMs: clock, createdBy: "admin" }]);
        expect(await auth.listApiTokens("farmer-li")).toEqual([]);
      });

      it("ends an API token at its expiry and notes its last use", async () => {
        const minted = await auth.createApiToken("officer-1", { name: "scale", expiresAtMs: clock + 5000 }, by);
        expect((await auth.authenticate(minted.token))?.via).toBe("api-token");
        expect((await auth.getApiToken(minted.tokenId))?.lastUsedAtMs).toBe(clock);
        clock += 5000;
        expect(await auth.authenticate(minted.token)).toBeUndefined();
      });

      it("keeps users across a reopen", async () => {
        await auth.close();
        auth = await open();
        expect(await auth.getUser("officer-1")).toMatchObject({ name: "Zhang", roles: ["village-officer"], createdAtMs: 1_000_000 });
      });
    });

    describe("bad input", () => {
      it("refuses an unknown role, and an unknown user for a change, a password or a token", async () => {
        await expect(auth.createUser({ userId: "x-1", name: "X", roles: ["mayor" as never], password: "willow-kettle-17" }, by)).rejects.toMatchObject({ code: C.INVALID });
        await expect(auth.updateUser("ghost", { name: "G" }, by)).rejects.toMatchObject({ code: C.UNKNOWN });
        await expect(auth.setPassword("ghost", "long enough password", by)).rejects.toMatchObject({ code: C.UNKNOWN });
        await expect(auth.createApiToken("ghost", { name: "t" }, by)).rejects.toMatchObject({ code: C.UNKNOWN });
        await expect(auth.revokeApiToken("tok-000000000000", by)).rejects.toMatchObject({ code: C.UNKNOWN });
        expect(await auth.getApiToken("tok-000000000000")).toBeUndefined();
      });

      it("refuses a taken user id in any case, keeping the first user", async () => {
        await expect(auth.createUser({ ...OFFICER, userId: "OFFICER-1", name: "Other" }, by)).rejects.toMatchObject({ code: C.EXISTS });
        expect((await auth.getUser("officer-1"))?.name).toBe("Zhang");
        expect(await actions("officer-1")).toEqual(["user.create"]);
      });

      it("creates a user once when two handles race to create the same id, the other refused as taken", async () => {
        const other = await open();
        const results = await Promise.allSettled([auth.createUser(FARMER, by), other.createUser({ ...FARMER, name: "Li 2" }, by)]);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        expect(results.find((r) => r.status === "rejected")).toMatchObject({ reason: { code: C.EXISTS } });
        expect(await actions("farmer-li")).toEqual(["user.create"]);
      });

      it("refuses user ids that cannot be one", async () => {
        for (const userId of ["a", "-dash-first", "has space", "x".repeat(65), "中文"]) {
          await expect(auth.createUser({ ...OFFICER, userId }, by)).rejects.toMatchObject({ code: C.INVALID });
          expect(await auth.getUser(userId)).toBeUndefined();
        }
      });

      it("refuses scopes that break the role rules, on create and on change", async () => {
        await expect(auth.createUser({ ...FARMER, householdId: undefined }, by)).rejects.toMatchObject({ code: C.INVALID, message: expect.stringMatching(/householdId/) as string });
        await expect(auth.createUser({ ...OFFICER, userId: "officer-2", villageIds: [] }, by)).rejects.toMatchObject({ code: C.INVALID });
        await expect(auth.createUser({ ...FARMER, villageIds: ["v1"] }, by)).rejects.toMatchObject({ code: C.INVALID });
        await expect(auth.updateUser("officer-1", { villageIds: [] }, by)).rejects.toMatchObject({ code: C.INVALID });
        await expect(auth.updateUser("officer-1", { roles: ["farmer"] }, by)).rejects.toMatchObject({ code: C.INVALID });
        expect(await actions("officer-1")).toEqual(["user.create"]);
      });

      it("refuses weak passwords on create and on change", async () => {
        await expect(auth.createUser({ ...FARMER, password: "short-pw" }, by)).rejects.toMatchObject({ code: C.WEAK_PASSWORD });
        await expect(auth.createUser({ ...FARMER, password: "farmer-li-is-me" }, by)).rejects.toMatchObject({ code: C.WEAK_PASSWORD });
        await expect(auth.setPassword("officer-1", "short", by)).rejects.toMatchObject({ code: C.WEAK_PASSWORD });
        expect(await auth.verifyLogin("officer-1", "willow-kettle-17")).toBeDefined();
      });

      it("refuses a patch with an unknown field or a repeated village", async () => {
        await expect(auth.updateUser("officer-1", { password: "x" } as never, by)).rejects.toMatchObject({ code: C.INVALID });
        await expect(auth.updateUser("officer-1", { villageIds: ["v1", "v1"] }, by)).rejects.toMatchObject({ code: C.INVALID });
      });

      it("refuses a token without a name, with an expiry in the past or a fractional one", async () => {
        await expect(auth.createApiToken("officer-1", { name: "  " }, by)).rejects.toMatchObject({ code: C.INVALID });
        await expect(auth.createApiToken("officer-1", { name: "t", expiresAtMs: clock }, by)).rejects.toMatchObject({ code: C.INVALID });
        await expect(auth.createApiToken("officer-1", { name: "t", expiresAtMs: clock + 0.5 }, by)).rejects.toMatchObject({ code: C.INVALID });
        expect(await auth.listApiTokens("officer-1")).toEqual([]);
      });
    });
  });
}
