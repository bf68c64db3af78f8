// The online payment routes (issue #4): a farmer (for their own household) or an officer opens a payment order; the
// provider calls back to POST /payments/:provider/callback; anyone allowed to see the household reads the order.
//
// The callback is public, and only a correctly signed body counts: the signature covers the RAW bytes, so the
// callback route lives in its own encapsulated fastify context whose content-type parser keeps the body as a Buffer
// (every content type), leaving the JSON parser of every other route untouched. An authentic callback is answered
// 200 with what became of it (posted, duplicate, unknown-order, amount-mismatch, …) so the provider stops retrying;
// one that cannot be verified is a 401/400 problem and is not recorded as a notice (it proves nothing).

import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { CALLBACK_OUTCOMES, ORDER_STATES, type PaymentOrder } from "../../payments/orders-store.js";
import type { PaymentService } from "../../payments/payment-service.js";
import { orderIdSchema, providerNameSchema } from "../../payments/provider.js";
import type { Registry } from "../../registry/registry.js";
import { HttpProblem, notFound } from "../problem.js";
import { addRoute } from "../route.js";
import { asProblem } from "./domain-errors.js";
import { amountFenSchema, householdParamsSchema } from "./schemas.js";
import { requireHousehold } from "./scope.js";

export interface PaymentRouteDeps {
  readonly registry: Registry;
  readonly payments: PaymentService;
  /** The provider used when an order does not name one; default "local". */
  readonly defaultProvider?: string;
}

export const CALLBACK_BODY_LIMIT_BYTES = 16 * 1024;

const orderSchema = z.object({
  orderId: z.string(),
  provider: z.string(),
  householdId: z.string(),
  amountFen: z.int(),
  state: z.enum(ORDER_STATES),
  createdAtMs: z.int(),
  expiresAtMs: z.int(),
  payUrl: z.string(),
  qrPayload: z.string(),
  providerTxnId: z.string().optional(),
  postingId: z.int().optional(),
  paidAtMs: z.int().optional(),
});

const view = (o: PaymentOrder): z.input<typeof orderSchema> => ({
  orderId: o.orderId,
  provider: o.provider,
  householdId: o.householdId,
  amountFen: o.amountFen,
  state: o.state,
  createdAtMs: o.createdAtMs,
  expiresAtMs: o.expiresAtMs,
  payUrl: o.payUrl,
  qrPayload: o.qrPayload,
  ...(o.providerTxnId === undefined ? {} : { providerTxnId: o.providerTxnId }),
  ...(o.postingId === undefined ? {} : { postingId: o.postingId }),
  ...(o.paidAtMs === undefined ? {} : { paidAtMs: o.paidAtMs }),
});

export async function paymentRoutes(app: FastifyInstance, deps: PaymentRouteDeps): Promise<void> {
  const { registry, payments } = deps;

  addRoute(app, {
    method: "POST",
    url: "/households/:householdId/payment-orders",
    summary: "Open an online payment order for a top-up (the farmer of the household, or an officer of its village)",
    tags: ["payments"],
    access: ["farmer", "village-officer"],
    params: householdParamsSchema,
    body: z.strictObject({ amountFen: amountFenSchema, provider: providerNameSchema.optional() }),
    response: orderSchema,
    status: 201,
    bodyLimitBytes: 4096,
    handler: ({ principal, params, body }) =>
      asProblem(async () => {
        const household = await requireHousehold(registry, principal, params.householdId);
        const order = await payments.createOrder({ householdId: household.householdId, provider: body.provider ?? deps.defaultProvider ?? "local", amountFen: body.amountFen, actor: principal.userId });
        return view(order);
      }),
  });

  addRoute(app, {
    method: "GET",
    url: "/payment-orders/:orderId",
    summary: "A payment order's state (created, paid, expired, failed)",
    tags: ["payments"],
    access: ["farmer", "village-officer", "village-approver"],
    params: z.strictObject({ orderId: orderIdSchema }),
    response: orderSchema,
    handler: ({ principal, params }) =>
      asProblem(async () => {
        const order = await payments.getOrder(params.orderId);
        if (order === undefined) throw notFound(`payment order ${params.orderId}`);
        await requireHousehold(registry, principal, order.householdId);
        return view(order);
      }),
  });

  await app.register((raw, _options, done) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: CALLBACK_BODY_LIMIT_BYTES }, (_request, body, done) => done(null, body));
    addRoute(raw, {
      method: "POST",
      url: "/payments/:provider/callback",
      summary: "The payment provider's signed callback (public; only a correctly signed raw body counts)",
      tags: ["payments"],
      access: "public",
      params: z.strictObject({ provider: providerNameSchema }),
      response: z.object({ outcome: z.enum(CALLBACK_OUTCOMES), orderId: z.string(), postingId: z.int().optional() }),
      bodyLimitBytes: CALLBACK_BODY_LIMIT_BYTES,
      handler: ({ params, request }) =>
        asProblem(async () => {
          const rawBody = request.body;
          if (!Buffer.isBuffer(rawBody)) throw new HttpProblem(400, "PAYMENT_MALFORMED_CALLBACK", "the callback needs a body");
          return payments.handleCallback(params.provider, { rawBody, headers: request.headers });
        }),
    });
    done();
  });
}
