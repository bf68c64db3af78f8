// The port every online payment provider implements (issue #4: "an online payment provider interface with a signed
// callback"): open an order the farmer pays through a URL or QR code, and turn the provider's callback — raw bytes
// plus headers, exactly as they arrived — into a typed notice, or a typed refusal when it cannot be verified. The
// cloud never trusts a callback it could not verify, and never needs the network to verify one.

import { z } from "zod";
import type { PaymentError } from "./errors.js";

export const providerNameSchema = z.string().regex(/^[a-z][a-z0-9-]{1,31}$/, "a provider name is a lowercase code such as local or wechat");
export const orderIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, "order ids are 8..64 chars of A-Z, a-z, 0-9, '_' and '-'");
export const providerTxnIdSchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, "provider transaction ids are 1..128 chars of A-Z, a-z, 0-9, '_', '.', ':' and '-'");

export interface CreateOrderInput {
  readonly orderId: string;
  readonly amountFen: number;
  readonly description: string;
  /** Where the provider must POST its callback. */
  readonly notifyUrl: string;
  readonly expiresAtMs: number;
}

export interface CreatedOrder {
  /** Opens the provider's payment page. */
  readonly payUrl: string;
  /** What the farmer's phone scans (WeChat/Alipay style code_url). */
  readonly qrPayload: string;
}

/** A verified callback: the provider says this order was paid (or definitively failed) with this transaction. */
export interface PaymentNotice {
  readonly orderId: string;
  /** The provider's own id of the money movement: the idempotency of the top-up hangs on it. */
  readonly providerTxnId: string;
  readonly amountFen: number;
  readonly status: "paid" | "failed";
  /** When the provider says the payment happened, epoch ms: the posting's atMs, so a replay posts identical content. */
  readonly paidAtMs: number;
}

export const paymentNoticeSchema = z.strictObject({
  orderId: orderIdSchema,
  providerTxnId: providerTxnIdSchema,
  amountFen: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
  status: z.enum(["paid", "failed"]),
  paidAtMs: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
});

export interface CallbackRequest {
  readonly rawBody: Buffer;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export type VerifyResult = { readonly ok: true; readonly notice: PaymentNotice } | { readonly ok: false; readonly error: PaymentError };

export interface PaymentProvider {
  readonly name: string;
  createOrder(input: CreateOrderInput): Promise<CreatedOrder>;
  /** Pure over its inputs and the provider's key: no network, no clock (nowMs comes in, for the staleness check). */
  verifyCallback(request: CallbackRequest, nowMs: number): VerifyResult;
}
