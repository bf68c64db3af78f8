// Users over HTTP (issue #4): an admin provisions anyone; a village officer provisions and looks after the farmers
// of their own villages only — never an officer, an approver, a dispatcher or an admin, and never a farmer whose
// household is in another village. Every change carries who (the principal) and why (`reason`, required for
// changes to an existing user) into the audit log, in the auth store's transaction. A farmer's village is the
// registry's village of their household, so it cannot drift from the registry.

import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { isAdmin, ROLES, type Principal } from "../../auth/principal.js";
import { userPatchSchema, type UserView } from "../../auth/user-schema.js";
import type { CoreRouteDeps } from "../app.js";
import { AuthError, AUTH_ERROR_CODES } from "../../auth/errors.js";
import { forbidden, HttpProblem, notFound } from "../problem.js";
import { addRoute } from "../route.js";
import { meSchema } from "./auth.js";

const TAGS = ["users"];
const USER_BODY_LIMIT_BYTES = 8192;

/** A user as the API shows one: who they are and their scope (auth.ts's meSchema), plus the account's state. */
export const userViewSchema = meSchema.extend({
  disabled: z.boolean(),
  createdAtMs: z.int(),
  updatedAtMs: z.int(),
});

const reason = z.string().trim().min(3, "say why, in at least 3 characters").max(500);
const idList = z.array(z.string()).max(200);

const newUserBody = z.strictObject({
  userId: z.string().min(1).max(100),
  name: z.string().min(1).max(200),
  roles: z.array(z.enum(ROLES)).min(1).max(ROLES.length),
  villageIds: idList.optional(),
  householdId: z.string().min(1).max(64).optional(),
  jurisdictionIds: idList.optional(),
  password: z.string().max(1024),
  reason: reason.optional(),
});

const patchBody = userPatchSchema.extend({ reason });
const userParams = z.strictObject({ userId: z.string().min(1).max(100) });

const passwordBody = z.strictObject({
  password: z.string().max(1024),
  /** Required when changing your own password. */
  currentPassword: z.string().max(1024).optional(),
  reason: reason.optional(),
});

const view = (user: UserView): z.input<typeof userViewSchema> => ({
  ...user,
  roles: [...user.roles],
  villageIds: [...user.villageIds],
  jurisdictionIds: [...user.jurisdictionIds],
  ...(user.householdId === undefined ? {} : { householdId: user.householdId }),
});

export function userRoutes(app: FastifyInstance, deps: CoreRouteDeps): void {
  const { auth, registry, loginLimiter, now } = deps;

  const villageOfHousehold = async (householdId: string | undefined): Promise<string | undefined> =>
    householdId === undefined ? undefined : (await registry.getHousehold(householdId))?.villageId;

  /** An officer manages a user who is only a farmer, of a household in one of the officer's villages. */
  const manages = async (principal: Principal, user: UserView): Promise<boolean> => {
    if (isAdmin(principal)) return true;
    if (!principal.roles.includes("village-officer")) return false;
    const village = await villageOfHousehold(user.householdId);
    return user.roles.length === 1 && user.roles[0] === "farmer" && village !== undefined && principal.villageIds.includes(village);
  };

  /** Who may see a user: admins, the user, and officers/approvers sharing a village with them. */
  const sees = async (principal: Principal, user: UserView): Promise<boolean> => {
    if (isAdmin(principal) || principal.userId === user.userId) return true;
    if (!principal.roles.includes("village-officer") && !principal.roles.includes("village-approver")) return false;
    const villages = new Set([...user.villageIds, ...[await villageOfHousehold(user.householdId)].filter((v): v is string => v !== undefined)]);
    return principal.villageIds.some((v) => villages.has(v));
  };

  const checkScopeExists = async (scope: { villageIds?: readonly string[] | undefined; householdId?: string | null | undefined }): Promise<void> => {
    const errors: { path: string; message: string }[] = [];
    for (const villageId of scope.villageIds ?? []) if ((await registry.getVillage(villageId)) === undefined) errors.push({ path: "body.villageIds", message: `no village ${villageId}` });
    if (typeof scope.householdId === "string" && (await registry.getHousehold(scope.householdId)) === undefined) errors.push({ path: "body.householdId", message: `no household ${scope.householdId}` });
    if (errors.length > 0) throw new HttpProblem(400, "API_INVALID_INPUT", errors.map((e) => e.message).join("; "), errors);
  };


  const findUser = async (principal: Principal, userId: string): Promise<UserView> => {
    const user = await auth.getUser(userId);
    if (user === undefined) throw notFound(`user ${userId}`);
    if (!(await sees(principal, user))) throw forbidden(`user ${userId} is not in one of your villages`);
    return user;
  };

  addRoute(app, {
    method: "POST",
    url: "/users",
    summary: "Create a user with roles and scope; an officer may create farmers of households in their own villages only",
    tags: TAGS,
    access: ["village-officer"],
    body: newUserBody,
    response: userViewSchema,
    status: 201,
    bodyLimitBytes: USER_BODY_LIMIT_BYTES,
    handler: async ({ principal, body }) => {
      const { reason: why, ...input } = body;
      if (!isAdmin(principal)) {
        if (input.roles.length !== 1 || input.roles[0] !== "farmer") throw forbidden("a village officer creates farmer users only");
        const village = await villageOfHousehold(input.householdId);
        if (input.householdId !== undefined && village === undefined) throw notFound(`household ${input.householdId}`);
        if (village === undefined || !principal.villageIds.includes(village)) throw forbidden(`household ${input.householdId ?? "(none)"} is not in one of your villages`);
      }
      await checkScopeExists(input);
      const user = await auth.createUser(input, { actor: principal.userId, ...(why === undefined ? {} : { reason: why }) });
      return view(user);
    },
  });

  addRoute(app, {
    method: "GET",
    url: "/users",
    summary: "Users: all for an admin; for an officer or approver, those sharing one of their villages",
    tags: TAGS,
    access: ["village-officer", "village-approver"],
    query: z.strictObject({ villageId: z.string().min(1).max(64).optional() }),
    response: z.object({ users: z.array(userViewSchema) }),
    handler: async ({ principal, query }) => {
      if (query.villageId !== undefined && !isAdmin(principal) && !principal.villageIds.includes(query.villageId)) throw forbidden(`village ${query.villageId} is not one of yours`);
      const inVillage = async (u: UserView): Promise<boolean> => query.villageId === undefined || u.villageIds.includes(query.villageId) || (await villageOfHousehold(u.householdId)) === query.villageId;
      // Each farmer's village is a registry lookup: asked for all users at once, not one after another.
      const users = await auth.listUsers();
      const shown = await Promise.all(users.map(async (u) => (await sees(principal, u)) && (await inVillage(u))));
      return { users: users.filter((_, i) => shown[i] === true).map(view) };
    },
  });

  addRoute(app, {
    method: "GET",
    url: "/users/:userId",
    summary: "One user: yourself, or one you may see",
    tags: TAGS,
    access: "authenticated",
    params: userParams,
    response: userViewSchema,
    handler: async ({ principal, params }) => view(await findUser(principal, params.userId)),
  });

  addRoute(app, {
    method: "PATCH",
    url: "/users/:userId",
    summary: "Change a user's name, roles, scope or disabled flag, saying why; disabling ends their sessions",
    tags: TAGS,
    access: ["village-officer"],
    params: userParams,
    body: patchBody,
    response: userViewSchema,
    bodyLimitBytes: USER_BODY_LIMIT_BYTES,
    handler: async ({ principal, params, body }) => {
      const { reason: why, ...patch } = body;
      const user = await findUser(principal, params.userId);
      if (!(await manages(principal, user))) throw forbidden(`you do not manage user ${user.userId}`);
      if (!isAdmin(principal)) {
        if (patch.roles !== undefined && (patch.roles.length !== 1 || patch.roles[0] !== "farmer")) throw forbidden("a village officer cannot grant roles other than farmer");
        if (patch.villageIds !== undefined || patch.jurisdictionIds !== undefined) throw forbidden("a village officer cannot give a farmer village or jurisdiction scopes");
        if (patch.householdId !== undefined) {
          const village = patch.householdId === null ? undefined : await villageOfHousehold(patch.householdId);
          if (village === undefined || !principal.villageIds.includes(village)) throw forbidden(`household ${patch.householdId ?? "(none)"} is not in one of your villages`);
        }
      }
      await checkScopeExists(patch);
      try {
        return view(await auth.updateUser(user.userId, patch, { actor: principal.userId, reason: why }));
      } catch (error) {
        // The store counts the admins left inside the change's transaction (two admins disabling each other at once,
        // on two workers, cannot leave none).
        if (error instanceof AuthError && error.code === AUTH_ERROR_CODES.LAST_ADMIN) throw new HttpProblem(409, "API_LAST_ADMIN", "this is the last enabled admin; make another admin first");
        throw error;
      }
    },
  });

  addRoute(app, {
    method: "POST",
    url: "/users/:userId/password",
    summary: "Set a password: your own (with the current one), or as an admin / the farmer's village officer (saying why); ends the user's sessions",
    tags: TAGS,
    access: "authenticated",
    params: userParams,
    body: passwordBody,
    response: userViewSchema,
    bodyLimitBytes: USER_BODY_LIMIT_BYTES,
    handler: async ({ principal, params, body, request }) => {
      const user = await findUser(principal, params.userId);
      if (user.userId === principal.userId) {
        // The current password is a login in all but name: the same limits apply, or this route would be the way round them.
        const beganAtMs = now();
        const verdict = loginLimiter.begin(user.userId, request.ip, beganAtMs);
        if (!verdict.allowed) {
          const retryAfterS = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
          throw new HttpProblem(429, "AUTH_RATE_LIMITED", `too many failed attempts; try again in ${retryAfterS} s`, undefined, { "retry-after": String(retryAfterS) });
        }
        if (body.currentPassword === undefined || (await auth.verifyLogin(user.userId, body.currentPassword)) === undefined) {
          throw forbidden("the current password is wrong or missing");
        }
        loginLimiter.succeeded(user.userId, request.ip, beganAtMs);
        return view(await auth.setPassword(user.userId, body.password, { actor: principal.userId, reason: body.reason ?? "own password change" }));
      }
      if (!(await manages(principal, user))) throw forbidden(`you do not manage user ${user.userId}`);
      if (body.reason === undefined) throw new HttpProblem(400, "API_INVALID_INPUT", "say why you set another user's password", [{ path: "body.reason", message: "required when setting another user's password" }]);
      return view(await auth.setPassword(user.userId, body.password, { actor: principal.userId, reason: body.reason }));
    },
  });
}
