// When a failed webhook delivery is tried again, and when it is given up as undelivered. Pure; the worker
// (webhooks.ts) applies it. Exponential back-off, capped, so a receiver that is down for hours is probed every few
// minutes and gets everything, in order, soon after it is back.

export interface WebhookRetryPolicy {
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** After this many failed attempts the delivery is marked undelivered (and shown so). */
  readonly maxAttempts: number;
  /** ... or once the alert is this old: a fire alert days late helps nobody, but its loss must be visible. */
  readonly maxAgeMs: number;
}

export const WEBHOOK_RETRY_DEFAULTS: WebhookRetryPolicy = { baseDelayMs: 500, maxDelayMs: 5 * 60_000, maxAttempts: 50, maxAgeMs: 24 * 3600_000 };

export type RetryDecision = { readonly kind: "retry"; readonly atMs: number } | { readonly kind: "give_up"; readonly reason: string };

export function afterFailure(policy: WebhookRetryPolicy, attempts: number, createdAtMs: number, nowMs: number): RetryDecision {
  if (attempts >= policy.maxAttempts) return { kind: "give_up", reason: `${attempts} attempts failed` };
  if (nowMs - createdAtMs >= policy.maxAgeMs) return { kind: "give_up", reason: `still failing after ${Math.round((nowMs - createdAtMs) / 1000)} s` };
  const delayMs = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
  return { kind: "retry", atMs: nowMs + delayMs };
}
