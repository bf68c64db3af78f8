// `agri-cloud user add`: the one way to create the first admin (the HTTP API needs a logged-in admin to create
// anyone). The password comes from a file, never from argv (which other local users can read in /proc) nor a
// prompt (the CLI runs in scripts); the file's trailing newline is not part of it. The change is audited with the
// operating-system user as actor ("cli:<name>"), like every other user change.

import { readFileSync, statSync } from "node:fs";
import { userInfo } from "node:os";
import { resolve } from "node:path";
import type { Registry } from "../registry/registry.js";
import { AuthError, AUTH_ERROR_CODES as C } from "./errors.js";
import { openAuthAndAuditFor, type OpenAuthOptions } from "./open-auth.js";
import type { Role } from "./principal.js";
import type { UserView } from "./user-schema.js";

export interface CliUserFlags {
  readonly userId: string;
  readonly name: string;
  /** One role or several, comma-separated: "village-officer,village-approver". */
  readonly role: string;
  /** Comma-separated village ids (officers, approvers). */
  readonly village?: string | undefined;
  readonly household?: string | undefined;
  /** Comma-separated jurisdiction ids (dispatchers). */
  readonly jurisdiction?: string | undefined;
  readonly passwordFile: string;
  readonly reason?: string | undefined;
}

const list = (text: string | undefined): string[] =>
  (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return "cli";
  }
}

/** Reads the password file; warns (through `warn`) when other users may read it. */
export function readPasswordFile(path: string, warn: (message: string) => void = () => undefined): string {
  const full = resolve(path);
  let text: string;
  try {
    text = readFileSync(full, "utf8");
  } catch (error) {
    throw new AuthError(C.INVALID, `--password-file ${full}: cannot read it (${error instanceof Error ? error.message : String(error)})`);
  }
  if ((statSync(full).mode & 0o077) !== 0) warn(`--password-file ${full} is readable by other users; chmod 600 it or delete it now`);
  return text.replace(/\r?\n$/, "");
}

/** Where the user goes: cloud.db, or PostgreSQL when databaseUrl is postgres:// (as `agri-cloud serve` chooses). */
export type CliAuthTarget = Pick<OpenAuthOptions, "databaseUrl" | "sqlitePath">;

/** Creates the user after checking their village/household against the registry. */
export async function addUserFromCli(target: CliAuthTarget, registry: Registry, flags: CliUserFlags, warn: (message: string) => void = () => undefined): Promise<UserView> {
  const villageIds = list(flags.village);
  const jurisdictionIds = list(flags.jurisdiction);
  for (const villageId of villageIds) if ((await registry.getVillage(villageId)) === undefined) throw new AuthError(C.INVALID, `--village: no village ${villageId}`);
  if (flags.household !== undefined && (await registry.getHousehold(flags.household)) === undefined) throw new AuthError(C.INVALID, `--household: no household ${flags.household}`);
  const password = readPasswordFile(flags.passwordFile, warn);
  const { auth } = await openAuthAndAuditFor({ ...target, villageOfHousehold: async (id) => (await registry.getHousehold(id))?.villageId });
  try {
    return await auth.createUser(
      {
        userId: flags.userId,
        name: flags.name,
        // Unchecked here on purpose: createUser validates every role name and reports the bad one.
        roles: list(flags.role) as Role[],
        villageIds,
        jurisdictionIds,
        password,
        ...(flags.household === undefined ? {} : { householdId: flags.household }),
      },
      { actor: cliActor(), reason: flags.reason ?? "agri-cloud user add" },
    );
  } finally {
    await auth.close();
  }
}
