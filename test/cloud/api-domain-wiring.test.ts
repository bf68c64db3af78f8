// The domain plugins wired into the real buildApp exactly as the report asks cloud/server.ts to (api-core.fixture.ts
// is the real app with real auth): a signed-in officer provisions and tops up through bearer tokens, the payment
// callback is verified over its raw bytes although the app refuses text/plain and parses JSON everywhere else, and
// every domain route lands in the OpenAPI document without breaking its structural rules.

import { randomBytes, randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RoutePlugin } from "../../cloud/api/app.js";
import { paymentRoutes } from "../../cloud/api/routes/payments.js";
import { prepaidRoutes } from "../../cloud/api/routes/prepaid.js";
import { provisioningRoutes } from "../../cloud/api/routes/provisioning.js";
import { telemetryRoutes } from "../../cloud/api/routes/telemetry.js";
import { createLocalProvider } from "../../cloud/payments/local-provider.js";
import { openPaymentsStore, type PaymentsStore } from "../../cloud/payments/orders-store.js";
import { createPaymentService } from "../../cloud/payments/payment-service.js";
import type { PaymentProvider } from "../../cloud/payments/provider.js";
import { bearer, openApiProblems, PASSWORDS, startApiCore, type ApiCore } from "./api-core.fixture.js";

const provider = createLocalProvider({ key: randomBytes(32) });
let core: ApiCore;
let store: PaymentsStore | undefined;

/** The wiring of cloud/server.ts, with the payments store opened on the registry's cloud.db. */
function domainRoutes(publicUrl: string): RoutePlugin[] {
  const paymentsStore = (path: string): PaymentsStore => (store ??= openPaymentsStore({ path }));
  const providers = new Map<string, PaymentProvider>([["local", provider]]);
  return [
    (app, d) => provisioningRoutes(app, { registry: d.registry, ledger: d.ledger, audit: d.audit, now: d.now, prepaid: d.prepaid }),
    (app, d) => prepaidRoutes(app, { registry: d.registry, ledger: d.ledger, audit: d.audit, prepaid: d.prepaid, requests: paymentsStore(d.registry.target), telemetry: d.telemetry, now: d.now }),
    (app, d) => telemetryRoutes(app, { registry: d.registry, telemetry: d.telemetry }),
    (app, d) =>
      paymentRoutes(app, {
        registry: d.registry,
        payments: createPaymentService({
          store: paymentsStore(d.registry.target),
          ledger: d.ledger,
          registry: d.registry,
          providers,
          prepaid: d.prepaid,
          audit: d.audit,
          now: d.now,
          newOrderId: randomUUID,
          notifyUrl: (name) => `${publicUrl}/payments/${name}/callback`,
        }),
      }),
  ];
}

beforeEach(async () => {
  store = undefined;
  core = await startApiCore({ routes: domainRoutes("https://cloud.example.invalid") });
});

afterEach(async () => {
  await core.close();
  await store?.close();
});

describe("the domain routes in the real app", () => {
  it("lets a signed-in officer top up a household of their village, and refuses them the other village", async () => {
    const token = await core.login("officer-v1", PASSWORDS.officer);
    const ok = await core.inject({ method: "POST", url: "/households/h1/top-ups", headers: bearer(token), payload: { amountFen: 1_000, receiptId: "r-1", idempotencyKey: "wiring-key-0001" } });
    expect(ok.statusCode).toBe(201);
    const refused = await core.inject({ method: "POST", url: "/households/h2/top-ups", headers: bearer(token), payload: { amountFen: 1_000, receiptId: "r-2", idempotencyKey: "wiring-key-0002" } });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers["content-type"]).toContain("application/problem+json");
    const anonymous = await core.inject({ method: "GET", url: "/households/h1/balance" });
    expect(anonymous.statusCode).toBe(401);
  });

  it("settles a farmer's online order through a signed callback on the raw body", async () => {
    const token = await core.login("farmer-li", PASSWORDS.farmer);
    const opened = await core.inject({ method: "POST", url: "/households/h1/payment-orders", headers: bearer(token), payload: { amountFen: 2_500 } });
    expect(opened.statusCode).toBe(201);
    const { orderId } = opened.json<{ orderId: string }>();
    const { body, headers } = provider.signCallback({ orderId, providerTxnId: "txn-wiring-1", amountFen: 2_500, status: "paid", paidAtMs: core.nowMs() }, core.nowMs());
    const answer = await core.inject({ method: "POST", url: "/payments/local/callback", headers: { ...headers, "content-type": "text/plain" }, payload: body });
    expect(answer.json()).toMatchObject({ outcome: "posted", orderId });
    const balance = await core.inject({ method: "GET", url: "/households/h1/balance", headers: bearer(token) });
    expect(balance.json()).toMatchObject({ balanceFen: 2_500 });
    // Elsewhere the app still refuses text/plain (a cross-site form cannot post there).
    const form = await core.inject({ method: "POST", url: "/households/h1/payment-orders", headers: { ...bearer(token), "content-type": "text/plain" }, payload: "amountFen=1" });
    expect(form.statusCode).toBe(415);
  });

  it("documents every domain route in a structurally valid OpenAPI document", async () => {
    const doc = (await core.inject({ method: "GET", url: "/docs/openapi.json" })).json<Record<string, unknown>>();
    expect(openApiProblems(doc)).toEqual([]);
    const paths = Object.keys(doc.paths as Record<string, unknown>);
    for (const path of ["/households/{householdId}/top-ups", "/households/{householdId}/statement", "/villages/{villageId}/gateways", "/meters/{meterId}/power", "/payments/{provider}/callback", "/payment-orders/{orderId}"]) {
      expect(paths).toContain(path);
    }
  });

  it("writes an admin's correction to the app's audit log, and the statement shows it", async () => {
    const token = await core.login("admin", PASSWORDS.admin);
    const corrected = await core.inject({ method: "POST", url: "/households/h1/corrections", headers: bearer(token), payload: { amountFen: 300, idempotencyKey: "wiring-corr-01", reason: "goodwill" } });
    expect(corrected.statusCode).toBe(201);
    const from = core.nowMs() - 86_400_000;
    const statement = await core.inject({ method: "GET", url: `/households/h1/statement?fromMs=${from}&toMs=${core.nowMs() + 1}`, headers: bearer(token) });
    expect(statement.json()).toMatchObject({ openingBalanceFen: 0, closingBalanceFen: 300, lines: [{ kind: "correction", amountFen: 300, actor: "officer:admin" }] });
    const entries = await core.auth.audit.list({ entityType: "household", entityId: "h1", limit: 10 });
    expect(entries).toMatchObject([{ actor: "admin", action: "ledger.correction", reason: "goodwill", villageId: "v1" }]);
  });
});
