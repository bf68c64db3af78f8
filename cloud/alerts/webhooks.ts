// The webhook worker: delivers the durable outbox (store.ts alerts_webhook_outbox) to each receiver in stream order,
// one request in flight per receiver, signed with HMAC-SHA256, retried with back-off (webhook-backoff.ts) until it
// succeeds or is given up as undelivered — which the service logs on the incident and streams to the command room.
// A receiver that is down holds only its own queue: the next alert to it waits behind the one it has not taken, so
// it gets every alert later, in order, and other receivers are not delayed.
//
// Signature: X-Agri-Signature = "sha256=" + hex(HMAC-SHA256(secret, `${X-Agri-Timestamp}.${body}`)), the Stripe /
// GitHub scheme: the timestamp inside the MAC lets a receiver refuse replays of an old delivery.

import { createHmac, timingSafeEqual } from "node:crypto";
import type { AlertLog, AlertService } from "./service.js";
import type { OutboxRow, WebhookReceiver } from "./store.js";
import type { Incident } from "./types.js";
import { afterFailure, WEBHOOK_RETRY_DEFAULTS, type WebhookRetryPolicy } from "./webhook-backoff.js";

export const SIGNATURE_HEADER = "x-agri-signature";
export const TIMESTAMP_HEADER = "x-agri-timestamp";
export const EVENT_ID_HEADER = "x-agri-event-id";

export function signWebhook(secret: string, timestampMs: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestampMs}.${body}`).digest("hex")}`;
}

export function verifyWebhook(secret: string, timestamp: string, body: string, signature: string): boolean {
  const expected = Buffer.from(signWebhook(secret, Number(timestamp), body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface WebhookWorkerOptions {
  readonly service: AlertService;
  readonly log: AlertLog;
  readonly now?: () => number;
  readonly policy?: WebhookRetryPolicy;
  /** How often due retries are looked for; new alerts wake the worker at once. */
  readonly pollMs?: number;
  readonly requestTimeoutMs?: number;
}

export interface WebhookWorker {
  /** Start every due delivery now (tests and the wake-up call this). */
  tick(): void;
  /** Resolves when no delivery is in flight. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export function startWebhookWorker(options: WebhookWorkerOptions): WebhookWorker {
  const { service, log } = options;
  const now = options.now ?? Date.now;
  const policy = options.policy ?? WEBHOOK_RETRY_DEFAULTS;
  const timeoutMs = options.requestTimeoutMs ?? 5000;
  const inFlight = new Map<string, Promise<void>>();
  let stopped = false;

  function bodyFor(receiver: WebhookReceiver, row: OutboxRow): { body: string; contentType: string } | undefined {
    const event = service.store.streamById(row.streamId);
    if (event === undefined) return undefined;
    if (receiver.format === "json") return { body: event.body, contentType: "application/json" };
    const incident = (JSON.parse(event.body) as { incident?: Incident }).incident;
    if (incident === undefined) return undefined;
    return { body: service.capOf(incident), contentType: "application/cap+xml" };
  }

  async function deliver(receiver: WebhookReceiver, row: OutboxRow): Promise<void> {
    const payload = bodyFor(receiver, row);
    if (payload === undefined) {
      service.deliveryFailed(row, `stream event ${row.streamId} has no deliverable body`, true, 0);
      return;
    }
    const timestampMs = now();
    let error: string | undefined;
    try {
      const response = await fetch(receiver.url, {
        method: "POST",
        headers: {
          "content-type": payload.contentType,
          [EVENT_ID_HEADER]: String(row.streamId),
          [TIMESTAMP_HEADER]: String(timestampMs),
          [SIGNATURE_HEADER]: signWebhook(receiver.secret, timestampMs, payload.body),
        },
        body: payload.body,
        signal: AbortSignal.timeout(timeoutMs),
      });
      // Drain the body so the connection is reused.
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok) error = `HTTP ${response.status}`;
    } catch (e) {
      error = e instanceof Error ? `${e.name}: ${(e.cause as Error | undefined)?.message ?? e.message}` : String(e);
    }
    if (error === undefined) {
      service.store.markDelivered(row, now());
      return;
    }
    const decision = afterFailure(policy, row.attempts + 1, row.createdAtMs, now());
    if (decision.kind === "retry") {
      log.warn({ receiverId: receiver.receiverId, streamId: row.streamId, attempts: row.attempts + 1, error }, "alerts: webhook delivery failed, will retry");
      service.deliveryFailed(row, error, false, decision.atMs);
    } else service.deliveryFailed(row, `${error} (${decision.reason})`, true, 0);
  }

  function tick(): void {
    if (stopped) return;
    const nowMs = now();
    for (const receiver of service.receivers()) {
      if (!receiver.enabled || inFlight.has(receiver.receiverId)) continue;
      const head = service.store.outboxHead(receiver.receiverId);
      if (head === undefined || head.nextAttemptMs > nowMs) continue;
      const job = deliver(receiver, head)
        .catch((e: unknown) => log.error({ err: e, receiverId: receiver.receiverId }, "alerts: webhook worker error"))
        .finally(() => {
          inFlight.delete(receiver.receiverId);
          // The next one in this receiver's queue goes at once.
          setImmediate(tick);
        });
      inFlight.set(receiver.receiverId, job);
    }
  }

  const unsubscribe = service.onWake(tick);
  const timer = setInterval(tick, options.pollMs ?? 250);
  timer.unref();
  setImmediate(tick);

  const idle = async (): Promise<void> => {
    while (inFlight.size > 0) await Promise.all([...inFlight.values()]);
  };
  return {
    tick,
    idle,
    async stop() {
      stopped = true;
      clearInterval(timer);
      unsubscribe();
      await idle();
    },
  };
}
