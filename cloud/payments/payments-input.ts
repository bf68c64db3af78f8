// What the payments store accepts, checked the same way by both engines before anything is written (invariant 9):
// integer fen within the safe range, ids in their documented shapes, epoch ms as safe integers. A bad argument is a
// caller's bug, refused as PAYMENT_INVALID_INPUT with the field's path — never a driver's constraint error that the
// two engines would word differently. Pure: zod only.

import { z } from "zod";
import { PaymentError, PAYMENT_ERROR_CODES as C } from "./errors.js";
import { orderIdSchema, providerNameSchema, providerTxnIdSchema } from "./provider.js";

const epochMs = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
const positiveFen = z.int().min(1).max(Number.MAX_SAFE_INTEGER);
const id = z.string().min(1).max(200);

export const CALLBACK_OUTCOMES = ["posted", "duplicate", "failed", "unknown-order", "amount-mismatch", "already-paid"] as const;

export const newOrderSchema = z.strictObject({
  orderId: orderIdSchema,
  provider: providerNameSchema,
  householdId: id,
  villageId: id,
  amountFen: positiveFen,
  createdBy: id,
  createdAtMs: epochMs,
  expiresAtMs: epochMs,
  payUrl: z.string().min(1).max(2048),
  qrPayload: z.string().min(1).max(2048),
});

/** How many orders one listing may return. */
export const listLimitSchema = z.int().min(1).max(1000);

export const reservationSchema = z.strictObject({ orderId: orderIdSchema, providerTxnId: providerTxnIdSchema });

export const markPaidSchema = z.strictObject({
  orderId: orderIdSchema,
  providerTxnId: providerTxnIdSchema,
  postingId: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
  paidAtMs: epochMs,
  nowMs: epochMs,
});

/** A callback is recorded as it arrived, even for an order id no order has: only its shape is checked. */
export const newCallbackSchema = z.strictObject({
  provider: providerNameSchema,
  providerTxnId: providerTxnIdSchema,
  orderId: orderIdSchema,
  amountFen: positiveFen,
  outcome: z.enum(CALLBACK_OUTCOMES),
  detail: z.string().max(4000),
  receivedAtMs: epochMs,
});

export const newMoneyRequestSchema = z.strictObject({
  householdId: id,
  idempotencyKey: id,
  requestJson: z.string().min(2).max(16_384),
  atMs: epochMs,
  claimToken: z.string().min(1).max(200).optional(),
  /** How long this claim shuts out another attempt; 0 (the default) lets the next attempt take it over at once. */
  leaseMs: z.int().min(0).max(24 * 3_600_000).optional(),
});

export const finishMoneyRequestSchema = z.strictObject({
  householdId: id,
  idempotencyKey: id,
  postingId: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
  balanceFen: z.int().min(Number.MIN_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER),
});

/** The parsed value, or PAYMENT_INVALID_INPUT naming each bad field. */
export function parsePaymentsInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const why = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
  throw new PaymentError(C.INVALID_INPUT, `${what} refused: ${why}`);
}

/** A BIGINT as a number when it is a safe integer, else PAYMENT_NON_INTEGER_VALUE — never rounded. */
export function safeIntegerText(text: string): number {
  const n = Number(text);
  if (/^-?\d+$/.test(text) && Number.isSafeInteger(n)) return n;
  throw new PaymentError(C.NON_INTEGER, `stored value ${text} is not an integer within ±(2^53 − 1); refusing to round it`);
}
