// Login rate limits (issue #4), per username and per client address: a sliding log of FAILED logins per key. A key
// with `limit` failures inside the last `windowMs` is refused until its oldest failure leaves the window, and the
// refusal says when (Retry-After). Counting failures, not attempts, lets a farmer who types the password right
// log in as often as they like, while a guesser gets `limit` tries per window per name and per address.
// A success clears the username's log (the person proved who they are), never the address's (one address can
// try many names). Pure: the caller passes the time.

export interface LoginRateLimits {
  readonly perUsername: { readonly limit: number; readonly windowMs: number };
  readonly perAddress: { readonly limit: number; readonly windowMs: number };
  /** Keys tracked at most (a flood of invented usernames must not grow memory without bound). */
  readonly maxTrackedKeys: number;
}

/** OWASP ASVS 2.2.1-style defaults: 5 failures per name and 30 per address per 15 minutes. */
export const DEFAULT_LOGIN_RATE_LIMITS: LoginRateLimits = {
  perUsername: { limit: 5, windowMs: 15 * 60_000 },
  perAddress: { limit: 30, windowMs: 15 * 60_000 },
  maxTrackedKeys: 100_000,
};

export type LoginVerdict = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number; readonly limitedBy: "username" | "address" };

class SlidingFailureLog {
  readonly #failures = new Map<string, number[]>();
  #lastSweepMs = Number.NEGATIVE_INFINITY;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    readonly maxKeys: number,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError("limit must be an integer ≥ 1");
    if (!Number.isInteger(windowMs) || windowMs < 1) throw new RangeError("windowMs must be an integer ≥ 1");
  }

  /** 0 when the key may try now; otherwise how long until it may. */
  waitMs(key: string, nowMs: number): number {
    const log = this.#live(key, nowMs);
    if (log === undefined || log.length < this.limit) return 0;
    // The (length - limit + 1)-th oldest failure must leave the window before the count drops below the limit.
    const gate = log[log.length - this.limit] ?? nowMs;
    return Math.max(1, gate + this.windowMs - nowMs);
  }

  fail(key: string, nowMs: number): void {
    this.#sweep(nowMs);
    const log = this.#live(key, nowMs) ?? [];
    log.push(nowMs);
    // Keep only what can matter: the newest `limit` failures decide every future verdict.
    if (log.length > this.limit) log.splice(0, log.length - this.limit);
    this.#failures.delete(key);
    this.#failures.set(key, log);
    while (this.#failures.size > this.maxKeys) {
      const oldest = this.#failures.keys().next();
      if (oldest.done === true) break;
      this.#failures.delete(oldest.value);
    }
  }

  clear(key: string): void {
    this.#failures.delete(key);
  }

  /** Take back one failure recorded at atMs (an attempt reserved by begin() that turned out right). */
  unfail(key: string, atMs: number): void {
    const log = this.#failures.get(key);
    if (log === undefined) return;
    const i = log.lastIndexOf(atMs);
    if (i >= 0) log.splice(i, 1);
    if (log.length === 0) this.#failures.delete(key);
  }

  get size(): number {
    return this.#failures.size;
  }

  #live(key: string, nowMs: number): number[] | undefined {
    const log = this.#failures.get(key);
    if (log === undefined) return undefined;
    const horizon = nowMs - this.windowMs;
    let expired = 0;
    while (expired < log.length && (log[expired] ?? 0) <= horizon) expired++;
    if (expired > 0) log.splice(0, expired);
    if (log.length === 0) {
      this.#failures.delete(key);
      return undefined;
    }
    return log;
  }

  #sweep(nowMs: number): void {
    if (nowMs - this.#lastSweepMs < this.windowMs) return;
    this.#lastSweepMs = nowMs;
    for (const key of [...this.#failures.keys()]) this.#live(key, nowMs);
  }
}

export class LoginRateLimiter {
  readonly #byUsername: SlidingFailureLog;
  readonly #byAddress: SlidingFailureLog;

  constructor(limits: LoginRateLimits = DEFAULT_LOGIN_RATE_LIMITS) {
    this.#byUsername = new SlidingFailureLog(limits.perUsername.limit, limits.perUsername.windowMs, limits.maxTrackedKeys);
    this.#byAddress = new SlidingFailureLog(limits.perAddress.limit, limits.perAddress.windowMs, limits.maxTrackedKeys);
  }

  /** Ask before checking the password: a refused attempt never reaches scrypt. */
  check(username: string, address: string, nowMs: number): LoginVerdict {
    const byName = this.#byUsername.waitMs(normaliseUsername(username), nowMs);
    const byAddress = this.#byAddress.waitMs(address, nowMs);
    if (byName === 0 && byAddress === 0) return { allowed: true };
    return byName >= byAddress ? { allowed: false, retryAfterMs: byName, limitedBy: "username" } : { allowed: false, retryAfterMs: byAddress, limitedBy: "address" };
  }

  /**
   * Check and reserve in one step: an allowed attempt is counted as a failure at once, before the password check
   * awaits scrypt, so parallel guesses cannot all pass the check while the first ones are still being verified. Call
   * succeeded(username, address, nowMs) with the same nowMs when the password was right.
   */
  begin(username: string, address: string, nowMs: number): LoginVerdict {
    const verdict = this.check(username, address, nowMs);
    if (verdict.allowed) this.failed(username, address, nowMs);
    return verdict;
  }

  failed(username: string, address: string, nowMs: number): void {
    this.#byUsername.fail(normaliseUsername(username), nowMs);
    this.#byAddress.fail(address, nowMs);
  }

  /** A right password: the name's failures are forgiven, and the attempt begin() reserved for the address too. */
  succeeded(username: string, address?: string, beganAtMs?: number): void {
    this.#byUsername.clear(normaliseUsername(username));
    if (address !== undefined && beganAtMs !== undefined) this.#byAddress.unfail(address, beganAtMs);
  }

  get trackedKeys(): { readonly usernames: number; readonly addresses: number } {
    return { usernames: this.#byUsername.size, addresses: this.#byAddress.size };
  }
}

// "Li" and "li " are one target for a guesser; user ids are stored lower-case (user-store.ts).
const normaliseUsername = (username: string): string => username.trim().toLowerCase();
