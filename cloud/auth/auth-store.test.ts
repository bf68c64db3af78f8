import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openRegistry, type Registry } from "../registry/registry.js";
import { openAuthStore, type AuthStore } from "./auth-store.js";
import { addUserFromCli } from "./cli-add-user.js";
import { AUTH_ERROR_CODES as C } from "./errors.js";

let dir: string;
let path: string;
let clock: number;
let auth: AuthStore;
const by = { actor: "admin", reason: "test" };

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "auth-store-"));
  path = join(dir, "cloud.db");
  clock = 1_000_000;
  auth = openAuthStore({ path, now: () => clock, sessions: { absoluteTtlMs: 10_000, idleTimeoutMs: 3000, touchEveryMs: 1000 } });
  await auth.createUser({ userId: "officer-1", name: "Zhang", roles: ["village-officer"], villageIds: ["v1"], password: "willow-kettle-17" }, by);
});

afterEach(() => {
  auth.close();
  rmSync(dir, { recursive: true, force: true });
});

const row = (sql: string): unknown => auth.db.prepare(sql).get();

describe("auth store", () => {
  it("keeps the password only as a self-describing scrypt string", async () => {
    const stored = row("SELECT password_hash FROM auth_users") as { password_hash: string };
    expect(stored.password_hash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(await auth.verifyLogin("officer-1", "willow-kettle-17")).toMatchObject({ userId: "officer-1" });
    expect(await auth.verifyLogin("officer-1", "willow-kettle-18")).toBeUndefined();
    expect(await auth.verifyLogin("nobody", "willow-kettle-17")).toBeUndefined();
  });

  it("stores a session as the token's digest only", () => {
    const { token } = auth.startSession("officer-1");
    const dump = JSON.stringify(auth.db.prepare("SELECT * FROM auth_sessions").all());
    expect(dump).not.toContain(token);
    expect(auth.authenticate(token)?.principal.userId).toBe("officer-1");
  });

  it("keeps a session alive by use, but only to its absolute expiry", () => {
    const { token } = auth.startSession("officer-1");
    for (let i = 0; i < 4; i += 1) {
      clock += 2000;
      expect(auth.authenticate(token)).toBeDefined();
    }
    clock += 2000;
    expect(auth.authenticate(token)).toBeUndefined();
  });

  it("applies a narrowed scope to a live session at its next use", () => {
    const { token } = auth.startSession("officer-1");
    auth.updateUser("officer-1", { villageIds: ["v2"] }, by);
    expect(auth.authenticate(token)?.principal.villageIds).toEqual(["v2"]);
  });

  it("ends an API token at its expiry", () => {
    const minted = auth.createApiToken("officer-1", { name: "scale", expiresAtMs: clock + 5000 }, by);
    expect(auth.authenticate(minted.token)?.via).toBe("api-token");
    clock += 5000;
    expect(auth.authenticate(minted.token)).toBeUndefined();
  });

  it("rolls a user change back when its audit entry cannot be written", () => {
    expect(() => auth.updateUser("officer-1", { name: "Changed" }, { actor: "admin", reason: "x".repeat(3000) })).toThrow(/reason/);
    expect(auth.getUser("officer-1")?.name).toBe("Zhang");
    expect(auth.audit.list({ entityId: "officer-1", limit: 10 }).map((e) => e.action)).toEqual(["user.create"]);
  });

  it("refuses an unknown role and an unknown user with their codes", async () => {
    await expect(auth.createUser({ userId: "x-1", name: "X", roles: ["mayor" as never], password: "willow-kettle-17" }, by)).rejects.toMatchObject({ code: C.INVALID });
    expect(() => auth.updateUser("ghost", { name: "G" }, by)).toThrow(expect.objectContaining({ code: C.UNKNOWN }) as Error);
  });

  it("refuses a file migrated by newer auth code", () => {
    auth.db.prepare("INSERT INTO auth_schema_migrations (version, name, applied_at_ms) VALUES (99, 'future', 0)").run();
    auth.close();
    expect(() => (auth = openAuthStore({ path }))).toThrow(expect.objectContaining({ code: C.SCHEMA_TOO_NEW }) as Error);
    auth = openAuthStore({ path: join(dir, "other.db") });
  });
});

describe("agri-cloud user add", () => {
  let registry: Registry;

  beforeEach(() => {
    registry = openRegistry({ path });
    registry.addVillage({ villageId: "v1", name: "East" });
  });

  afterEach(() => {
    registry.close();
  });

  it("creates the first admin from a password file, without its trailing newline, audited as the OS user", async () => {
    const file = join(dir, "pw");
    writeFileSync(file, "plough-river-42\n", { mode: 0o600 });
    const warnings: string[] = [];
    const user = await addUserFromCli(path, registry, { userId: "root-admin", name: "Admin", role: "admin", passwordFile: file }, (m) => warnings.push(m));
    expect(user.roles).toEqual(["admin"]);
    expect(warnings).toEqual([]);
    expect(await auth.verifyLogin("root-admin", "plough-river-42")).toBeDefined();
    expect(auth.audit.list({ entityId: "root-admin", limit: 1 })[0]?.actor).toMatch(/^cli/);
  });

  it("warns when the password file is readable by others", async () => {
    const file = join(dir, "pw");
    writeFileSync(file, "plough-river-42");
    chmodSync(file, 0o644);
    const warnings: string[] = [];
    await addUserFromCli(path, registry, { userId: "off-2", name: "O", role: "village-officer,village-approver", village: "v1", passwordFile: file }, (m) => warnings.push(m));
    expect(warnings).toEqual([expect.stringMatching(/readable by other users/) as string]);
  });

  it("refuses a village that is not in the registry before reading the password", async () => {
    await expect(addUserFromCli(path, registry, { userId: "off-3", name: "O", role: "village-officer", village: "v9", passwordFile: join(dir, "missing") })).rejects.toMatchObject({
      code: C.INVALID,
      message: "--village: no village v9",
    });
  });
});
