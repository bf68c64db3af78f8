// Every schema the domain plugins declare today goes through the OpenAPI generator: the plugins are registered on a
// bare fastify with empty deps (only their declarations run; no handler is called), and the document must be
// structurally sound with one operation per declared route and no placeholder for a failed conversion.

import Fastify, { type FastifyInstance } from "fastify";
import { describe, expect, it } from "vitest";
import { collectRoutes, openApiDocument } from "../../cloud/api/openapi.js";
import { paymentRoutes } from "../../cloud/api/routes/payments.js";
import { prepaidRoutes } from "../../cloud/api/routes/prepaid.js";
import { provisioningRoutes } from "../../cloud/api/routes/provisioning.js";
import { openApiProblems } from "./api-core.fixture.js";
import { telemetryRoutes } from "../../cloud/api/routes/telemetry.js";
import { alertsRoutes } from "../../cloud/alerts/routes.js";
import { subsidyRoutes } from "../../cloud/subsidy/routes.js";

const PLUGINS: Record<string, (app: FastifyInstance) => Promise<void> | void> = {
  prepaid: (app) => prepaidRoutes(app, {} as never),
  provisioning: (app) => provisioningRoutes(app, {} as never),
  telemetry: (app) => telemetryRoutes(app, {} as never),
  payments: (app) => paymentRoutes(app, {} as never),
  alerts: (app) => alertsRoutes(app, {} as never),
  subsidy: (app) => subsidyRoutes(app, {} as never),
};

describe("the OpenAPI document of the domain plugins", () => {
  for (const [name, plugin] of Object.entries(PLUGINS)) {
    it(`documents every ${name} route with schemas that convert`, async () => {
      const app = Fastify();
      const routes = collectRoutes(app);
      await app.register(async (scope) => plugin(scope));
      await app.ready();
      expect(routes.length).toBeGreaterThan(0);
      const doc = openApiDocument(routes, { title: name, version: "1" }) as { openapi: string; paths: Record<string, Record<string, unknown>> };
      const operations = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
      expect(operations).toBe(routes.length);
      expect(openApiProblems(doc)).toEqual([]);
      expect(JSON.stringify(doc)).not.toContain("not representable in JSON Schema");
      await app.close();
    });
  }
});
