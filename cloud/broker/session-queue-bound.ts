// A bound on what aedes queues for a persistent (clean: false) session that only taps the uplinks. aedes puts every
// QoS 1 message for such a session in its persistence's outgoing queue (in memory by default) until the PUBACK, and
// keeps doing so while the session is offline, with no limit: a forgotten persistent debugging session would let the
// gateways' traffic grow the broker's heap without bound. Past maxMessages unacknowledged, what would be queued for a
// bounded session is dropped and counted. Nothing is lost by that: the embedded cloud's ingest does not subscribe —
// the broker hands it every uplink directly and PUBACKs only once it is stored (broker.ts handOffUplinks), which is
// the back-pressure that keeps a flood in the gateways' durable outboxes.
//
// An earlier "wait" mode made the publish wait for room instead. It lost messages: a publish woken after the session
// had reconnected was queued after aedes had already streamed that session's queue at connect, and stayed there until
// the next reconnect (its test hung about one run in twenty under load). Nothing used it; it was removed.
//
// This wraps three methods of the persistence instance aedes uses (the `persistence` property, documented as the
// pluggable store), counting per client id what was enqueued and what a PUBACK cleared.

export interface OutgoingQueuePersistence {
  outgoingEnqueue(sub: { readonly clientId: string }, packet: unknown): Promise<unknown>;
  outgoingEnqueueCombi(subs: readonly { readonly clientId: string }[], packet: unknown): Promise<unknown>;
  outgoingClearMessageId(client: { readonly id: string }, packet: unknown): Promise<unknown>;
}

export interface SessionQueueBoundOptions {
  /** Unacknowledged messages a bounded session may hold; beyond it, messages for it are dropped and counted. */
  readonly maxMessages: number;
  /** Which sessions are bounded (taps, not the gateways' own sessions). */
  readonly appliesTo: (clientId: string) => boolean;
}

export interface SessionQueueBound {
  /** Unacknowledged messages counted for a bounded session. */
  queued(clientId: string): number;
  /** Messages not queued for a full session, in total. */
  dropped(): number;
}

export function boundSessionQueues(persistence: OutgoingQueuePersistence, options: SessionQueueBoundOptions): SessionQueueBound {
  const { maxMessages, appliesTo } = options;
  let dropped = 0;
  if (!Number.isSafeInteger(maxMessages) || maxMessages < 1) throw new RangeError(`maxMessages must be a positive integer, got ${maxMessages}`);
  const counts = new Map<string, number>();

  const isFull = (s: { readonly clientId: string }): boolean => appliesTo(s.clientId) && (counts.get(s.clientId) ?? 0) >= maxMessages;
  const count = (subs: readonly { readonly clientId: string }[]): void => {
    for (const s of subs) if (appliesTo(s.clientId)) counts.set(s.clientId, (counts.get(s.clientId) ?? 0) + 1);
  };

  const enqueue = persistence.outgoingEnqueue.bind(persistence);
  const enqueueCombi = persistence.outgoingEnqueueCombi.bind(persistence);
  const clear = persistence.outgoingClearMessageId.bind(persistence);
  persistence.outgoingEnqueue = async (sub, packet) => {
    if (isFull(sub)) {
      dropped++;
      return undefined;
    }
    count([sub]);
    return enqueue(sub, packet);
  };
  persistence.outgoingEnqueueCombi = async (subs, packet) => {
    const kept = subs.filter((s) => !isFull(s));
    dropped += subs.length - kept.length;
    count(kept);
    return enqueueCombi(kept, packet);
  };
  persistence.outgoingClearMessageId = async (client, packet) => {
    const removed = await clear(client, packet);
    const before = counts.get(client.id);
    if (removed !== undefined && removed !== null && before !== undefined) counts.set(client.id, Math.max(0, before - 1));
    return removed;
  };

  return {
    queued: (clientId) => counts.get(clientId) ?? 0,
    dropped: () => dropped,
  };
}
