// GET /audit: the audit log over HTTP. An admin reads everything; a village officer or approver reads the entries
// recorded with one of their villages (audit_log.village_id: the writer names the entity's village — a farmer's
// household's village, a meter's household's village, a village's own id). An entry recorded without a village
// (a tariff, a gateway without a village, an admin user) is visible to admins only: scope by construction, not by
// filtering rows after reading them.

import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { coversVillage, isAdmin } from "../auth/principal.js";
import { forbidden } from "../api/problem.js";
import { addRoute } from "../api/route.js";
import type { AuditLog } from "./audit-log.js";

const digits = (max: number) =>
  z
    .string()
    .regex(/^\d{1,15}$/, "digits only")
    .transform(Number)
    .pipe(z.int().min(0).max(max));

const idText = z.string().min(1).max(200);

export const AUDIT_PAGE_DEFAULT = 100;

const auditQuery = z.strictObject({
  entityType: idText.optional(),
  entityId: idText.optional(),
  actor: idText.optional(),
  villageId: idText.optional(),
  fromMs: digits(Number.MAX_SAFE_INTEGER).optional(),
  toMs: digits(Number.MAX_SAFE_INTEGER).optional(),
  limit: digits(1000).optional(),
  afterId: digits(Number.MAX_SAFE_INTEGER).optional(),
});

const entrySchema = z.object({
  auditId: z.int(),
  atMs: z.int(),
  actor: z.string(),
  action: z.string(),
  entityType: z.string(),
  entityId: z.string(),
  villageId: z.string().optional(),
  reason: z.string().optional(),
  before: z.unknown().optional(),
  after: z.unknown().optional(),
});

export function auditRoutes(app: FastifyInstance, deps: { readonly audit: AuditLog }): void {
  addRoute(app, {
    method: "GET",
    url: "/audit",
    summary: "The audit log (who, when, what, why), oldest first, paged by afterId; officers and approvers see their villages' entries",
    tags: ["audit"],
    access: ["village-officer", "village-approver"],
    query: auditQuery,
    response: z.object({ entries: z.array(entrySchema), nextAfterId: z.int().optional() }),
    handler: async ({ principal, query }) => {
      const { villageId, limit, ...filters } = query;
      if (villageId !== undefined && !coversVillage(principal, villageId)) throw forbidden(`village ${villageId} is not one of yours`);
      const villageIds = villageId !== undefined ? [villageId] : isAdmin(principal) ? undefined : [...principal.villageIds];
      const pageSize = limit ?? AUDIT_PAGE_DEFAULT;
      const entries = await deps.audit.list({ ...filters, limit: pageSize === 0 ? 1 : pageSize, ...(villageIds === undefined ? {} : { villageIds }) });
      const last = entries.at(-1);
      return { entries, ...(entries.length === pageSize && last !== undefined ? { nextAfterId: last.auditId } : {}) };
    },
  });
}
