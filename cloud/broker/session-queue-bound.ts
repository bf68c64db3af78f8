// A bound on what aedes queues for a persistent (clean: false) session — in practice the cloud ingest's. aedes puts
// every QoS 1 message for such a session in its persistence's outgoing queue (in memory by default) until the PUBACK,
// and keeps doing so while the session is offline, with no limit: an ingest that is down or stalled would let a
// flood grow the broker's heap without bound while the gateways get their PUBACKs and drop their outbox copies.
//
// The bound makes the enqueue wait instead: while a bounded session holds maxMessages unacknowledged messages, the
// publish that would add one more does not complete, aedes reads nothing more from that publisher's socket (it
// processes a client's packets one socket read at a time), TCP fills, and the gateway's QoS 1 window fills — the
// backlog waits in the gateways' durable outboxes, where it belongs. The queue drains as the session acknowledges.
//
// A session that only taps the uplinks (the embedded cloud's ingest does not subscribe: the broker hands it uplinks
// directly, broker.ts handOffUplinks, and forwards each one only once it is stored) is bounded with onFull "drop"
// instead: past the bound, what would be queued for it is dropped and counted, so a forgotten persistent debugging
// session can neither grow the heap nor stall the gateways — everything it misses is in the cloud's stores already.
//
// This wraps three methods of the persistence instance aedes uses (the `persistence` property, documented as the
// pluggable store), counting per client id what was enqueued and what a PUBACK cleared.

export interface OutgoingQueuePersistence {
  outgoingEnqueue(sub: { readonly clientId: string }, packet: unknown): Promise<unknown>;
  outgoingEnqueueCombi(subs: readonly { readonly clientId: string }[], packet: unknown): Promise<unknown>;
  outgoingClearMessageId(client: { readonly id: string }, packet: unknown): Promise<unknown>;
}

export interface SessionQueueBoundOptions {
  /** Unacknowledged messages a bounded session may hold; publishers wait beyond it. */
  readonly maxMessages: number;
  /** Which sessions are bounded (the ingest's): a session that is never acknowledged must not stall the others. */
  readonly appliesTo: (clientId: string) => boolean;
  /** "wait" (default): the publish waits for room. "drop": the message is not queued for that session. */
  readonly onFull?: "wait" | "drop" | undefined;
}

export interface SessionQueueBound {
  /** Unacknowledged messages counted for a bounded session. */
  queued(clientId: string): number;
  /** Publishes waiting for room right now. */
  waiting(): number;
  /** Messages not queued for a full session (onFull "drop"), in total. */
  dropped(): number;
}

/** Wake waiters only once this share of the bound is free again, so a queue at the bound does not wake them per PUBACK. */
const RESUME_BELOW = 0.9;

export function boundSessionQueues(persistence: OutgoingQueuePersistence, options: SessionQueueBoundOptions): SessionQueueBound {
  const { maxMessages, appliesTo } = options;
  const drop = options.onFull === "drop";
  let dropped = 0;
  if (!Number.isSafeInteger(maxMessages) || maxMessages < 1) throw new RangeError(`maxMessages must be a positive integer, got ${maxMessages}`);
  const resumeAt = Math.max(0, Math.floor(maxMessages * RESUME_BELOW));
  const counts = new Map<string, number>();
  let waiters: (() => void)[] = [];

  const isFull = (s: { readonly clientId: string }): boolean => appliesTo(s.clientId) && (counts.get(s.clientId) ?? 0) >= maxMessages;
  const full = (subs: readonly { readonly clientId: string }[]): boolean => subs.some(isFull);
  const count = (subs: readonly { readonly clientId: string }[]): void => {
    for (const s of subs) if (appliesTo(s.clientId)) counts.set(s.clientId, (counts.get(s.clientId) ?? 0) + 1);
  };
  async function room(subs: readonly { readonly clientId: string }[]): Promise<void> {
    while (full(subs)) await new Promise<void>((resolve) => waiters.push(resolve));
    count(subs);
  }

  const enqueue = persistence.outgoingEnqueue.bind(persistence);
  const enqueueCombi = persistence.outgoingEnqueueCombi.bind(persistence);
  const clear = persistence.outgoingClearMessageId.bind(persistence);
  persistence.outgoingEnqueue = async (sub, packet) => {
    if (drop) {
      if (isFull(sub)) {
        dropped++;
        return undefined;
      }
      count([sub]);
    } else await room([sub]);
    return enqueue(sub, packet);
  };
  persistence.outgoingEnqueueCombi = async (subs, packet) => {
    if (drop) {
      const kept = subs.filter((s) => !isFull(s));
      dropped += subs.length - kept.length;
      count(kept);
      return enqueueCombi(kept, packet);
    }
    await room(subs);
    return enqueueCombi(subs, packet);
  };
  persistence.outgoingClearMessageId = async (client, packet) => {
    const removed = await clear(client, packet);
    const before = counts.get(client.id);
    if (removed !== undefined && removed !== null && before !== undefined) {
      const after = Math.max(0, before - 1);
      counts.set(client.id, after);
      if (after <= resumeAt && waiters.length > 0) {
        const woken = waiters;
        waiters = [];
        for (const wake of woken) wake();
      }
    }
    return removed;
  };

  return {
    queued: (clientId) => counts.get(clientId) ?? 0,
    waiting: () => waiters.length,
    dropped: () => dropped,
  };
}
