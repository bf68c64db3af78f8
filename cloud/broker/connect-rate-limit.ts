// How many new connections one peer address may open per window: a sliding log of accepted connects per peer.
// Pure: the caller passes the time. The broker applies it to each accepted socket before any MQTT (or TLS) work.

export type RateVerdict =
  | { readonly admitted: true }
  /** refusedInARow: refusals since this peer's last admitted connect (1 on the first, so callers can log once). */
  | { readonly admitted: false; readonly refusedInARow: number };

interface PeerLog {
  /** Times of admitted connects inside the window, oldest first. Never longer than the limit. */
  readonly admittedAtMs: number[];
  refusedInARow: number;
}

export class ConnectRateLimiter {
  readonly #peers = new Map<string, PeerLog>();
  #lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(
    readonly limit: number,
    readonly windowMs: number = 60_000,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError("limit must be an integer ≥ 1");
    if (!(windowMs > 0)) throw new RangeError("windowMs must be > 0");
  }

  admit(peer: string, nowMs: number): RateVerdict {
    this.#sweep(nowMs);
    let log = this.#peers.get(peer);
    if (log === undefined) {
      log = { admittedAtMs: [], refusedInARow: 0 };
      this.#peers.set(peer, log);
    }
    this.#expire(log, nowMs);
    if (log.admittedAtMs.length < this.limit) {
      log.admittedAtMs.push(nowMs);
      log.refusedInARow = 0;
      return { admitted: true };
    }
    log.refusedInARow++;
    return { admitted: false, refusedInARow: log.refusedInARow };
  }

  /** Peers currently tracked (for status and tests). */
  get trackedPeers(): number {
    return this.#peers.size;
  }

  #expire(log: PeerLog, nowMs: number): void {
    const horizon = nowMs - this.windowMs;
    let expired = 0;
    while (expired < log.admittedAtMs.length && (log.admittedAtMs[expired] ?? 0) <= horizon) expired++;
    if (expired > 0) log.admittedAtMs.splice(0, expired);
  }

  // At most once per window, forget peers with nothing left in it, so memory follows recent peers only.
  #sweep(nowMs: number): void {
    if (nowMs - this.#lastSweepMs < this.windowMs) return;
    this.#lastSweepMs = nowMs;
    for (const [peer, log] of this.#peers) {
      this.#expire(log, nowMs);
      if (log.admittedAtMs.length === 0) this.#peers.delete(peer);
    }
  }
}

/** The key a peer is limited under: an IPv4-mapped IPv6 address counts as its IPv4 address. */
export function peerKey(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return "unknown";
  return remoteAddress.startsWith("::ffff:") && remoteAddress.includes(".") ? remoteAddress.slice("::ffff:".length) : remoteAddress;
}
