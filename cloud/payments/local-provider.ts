// A local test payment provider (issue #4: "a local test provider is fine, no real payment network"), shaped like
// the real ones: it signs its callback with HMAC-SHA256 over `<timestampMs>.<raw body>` under a shared key and
// sends the signature in one header, `X-Local-Pay-Signature: t=<timestampMs>,v1=<hex>` (the scheme Stripe
// documents for its webhooks). The cloud verifies the MAC over the raw bytes before parsing anything, compares in
// constant time, and refuses a timestamp outside the tolerance so a captured callback cannot be replayed later.
// `pay` plays the farmer's phone and the provider's server: it POSTs the signed callback to the cloud over HTTP.

import { createHmac, timingSafeEqual } from "node:crypto";
import { PaymentError, PAYMENT_ERROR_CODES as C } from "./errors.js";
import { paymentNoticeSchema, type CallbackRequest, type CreatedOrder, type CreateOrderInput, type PaymentNotice, type PaymentProvider, type VerifyResult } from "./provider.js";

export const LOCAL_SIGNATURE_HEADER = "x-local-pay-signature";
/** Five minutes either way, as Stripe's default tolerance: longer than any retry delay, short for a replay. */
export const DEFAULT_CALLBACK_TOLERANCE_MS = 5 * 60_000;
const SIGNATURE_PATTERN = /^t=(\d{1,16}),v1=([0-9a-f]{64})$/;

export interface LocalProviderOptions {
  /** The shared HMAC key; at least 32 bytes. */
  readonly key: Buffer;
  readonly name?: string;
  readonly toleranceMs?: number;
}

export interface LocalPaymentProvider extends PaymentProvider {
  /** The body and headers of a signed callback for this notice, signed at timestampMs. */
  signCallback(notice: PaymentNotice, timestampMs: number): { body: string; headers: Record<string, string> };
  /** "Pay": POST the signed callback to notifyUrl; resolves with the cloud's HTTP status and body text. */
  pay(notifyUrl: string, notice: PaymentNotice, timestampMs: number): Promise<{ status: number; body: string }>;
}

function mac(key: Buffer, timestampMs: string, rawBody: Buffer): Buffer {
  return createHmac("sha256", key).update(`${timestampMs}.`).update(rawBody).digest();
}

function headerValue(headers: CallbackRequest["headers"], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? undefined : value;
}

export function createLocalProvider(options: LocalProviderOptions): LocalPaymentProvider {
  if (options.key.length < 32) throw new PaymentError(C.PROVIDER_FAILED, "the local provider's key must be at least 32 bytes");
  const name = options.name ?? "local";
  const toleranceMs = options.toleranceMs ?? DEFAULT_CALLBACK_TOLERANCE_MS;
  const refuse = (code: (typeof C)[keyof typeof C], message: string): VerifyResult => ({ ok: false, error: new PaymentError(code, message) });

  const signCallback = (notice: PaymentNotice, timestampMs: number): { body: string; headers: Record<string, string> } => {
    const body = JSON.stringify(notice);
    const t = String(timestampMs);
    return { body, headers: { "content-type": "application/json", [LOCAL_SIGNATURE_HEADER]: `t=${t},v1=${mac(options.key, t, Buffer.from(body)).toString("hex")}` } };
  };

  return {
    name,
    createOrder(input: CreateOrderInput): Promise<CreatedOrder> {
      const query = new URLSearchParams({ order: input.orderId, amountFen: String(input.amountFen), notify: input.notifyUrl });
      const payUrl = `https://pay.local.invalid/${name}?${query.toString()}`;
      return Promise.resolve({ payUrl, qrPayload: `local-pay://${name}/${input.orderId}?amountFen=${input.amountFen}` });
    },
    verifyCallback(request: CallbackRequest, nowMs: number): VerifyResult {
      const header = headerValue(request.headers, LOCAL_SIGNATURE_HEADER);
      const match = header === undefined ? null : SIGNATURE_PATTERN.exec(header);
      if (match === null) return refuse(C.BAD_SIGNATURE, `missing or malformed ${LOCAL_SIGNATURE_HEADER} header`);
      const [, t = "", hex = ""] = match;
      // Both 32 bytes by the pattern, so timingSafeEqual never throws and leaks nothing but "wrong".
      if (!timingSafeEqual(mac(options.key, t, request.rawBody), Buffer.from(hex, "hex"))) return refuse(C.BAD_SIGNATURE, "the callback's signature does not match its body");
      if (Math.abs(nowMs - Number(t)) > toleranceMs) return refuse(C.STALE_CALLBACK, `the callback was signed at ${t}, more than ${toleranceMs} ms from now`);
      let json: unknown;
      try {
        json = JSON.parse(request.rawBody.toString("utf8"));
      } catch {
        return refuse(C.MALFORMED_CALLBACK, "the callback body is not JSON");
      }
      const parsed = paymentNoticeSchema.safeParse(json);
      if (!parsed.success) return refuse(C.MALFORMED_CALLBACK, `the callback body is not a payment notice: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      return { ok: true, notice: parsed.data };
    },
    signCallback,
    async pay(notifyUrl, notice, timestampMs) {
      const { body, headers } = signCallback(notice, timestampMs);
      const response = await fetch(notifyUrl, { method: "POST", headers, body });
      return { status: response.status, body: await response.text() };
    },
  };
}
