import { describe, expect, it } from "vitest";
import { LoginRateLimiter } from "./login-rate-limit.js";

const limits = { perUsername: { limit: 3, windowMs: 1000 }, perAddress: { limit: 5, windowMs: 2000 }, maxTrackedKeys: 4 };

describe("login rate limiter", () => {
  it("allows a user id until it has `limit` failures in the window", () => {
    const limiter = new LoginRateLimiter(limits);
    for (let t = 0; t < 3; t += 1) {
      expect(limiter.check("li", "a", t)).toEqual({ allowed: true });
      limiter.failed("li", "a", t);
    }
    expect(limiter.check("li", "b", 3)).toEqual({ allowed: false, retryAfterMs: 997, limitedBy: "username" });
  });

  it("slides: the user id may try again the moment its oldest failure leaves the window", () => {
    const limiter = new LoginRateLimiter(limits);
    limiter.failed("li", "a", 0);
    limiter.failed("li", "a", 500);
    limiter.failed("li", "a", 900);
    expect(limiter.check("li", "a", 999).allowed).toBe(false);
    expect(limiter.check("li", "a", 1000)).toEqual({ allowed: true });
    limiter.failed("li", "a", 1000);
    expect(limiter.check("li", "a", 1001)).toEqual({ allowed: false, retryAfterMs: 499, limitedBy: "username" });
  });

  it("treats user ids case- and space-insensitively", () => {
    const limiter = new LoginRateLimiter(limits);
    limiter.failed("Li", "a", 0);
    limiter.failed(" li", "b", 0);
    limiter.failed("LI ", "c", 0);
    expect(limiter.check("li", "d", 1).allowed).toBe(false);
  });

  it("limits one address across many user ids and reports the longer wait", () => {
    const limiter = new LoginRateLimiter(limits);
    for (let i = 0; i < 5; i += 1) limiter.failed(`user-${i}`, "10.0.0.1", 100 * i);
    expect(limiter.check("someone-new", "10.0.0.1", 500)).toEqual({ allowed: false, retryAfterMs: 1500, limitedBy: "address" });
    expect(limiter.check("someone-new", "10.0.0.2", 500)).toEqual({ allowed: true });
  });

  it("clears a user id's failures on success but keeps the address's", () => {
    const limiter = new LoginRateLimiter({ ...limits, perAddress: { limit: 3, windowMs: 1000 } });
    limiter.failed("li", "a", 0);
    limiter.failed("li", "a", 0);
    limiter.failed("li", "a", 0);
    limiter.succeeded("li");
    expect(limiter.check("li", "b", 1)).toEqual({ allowed: true });
    expect(limiter.check("li", "a", 1).allowed).toBe(false);
  });

  it("tracks at most maxTrackedKeys keys, forgetting the least recently failed", () => {
    const limiter = new LoginRateLimiter(limits);
    for (let i = 0; i < 10; i += 1) limiter.failed(`user-${i}`, `addr-${i}`, i);
    expect(limiter.trackedKeys).toEqual({ usernames: 4, addresses: 4 });
  });

  it("forgets keys whose failures all left the window", () => {
    const limiter = new LoginRateLimiter(limits);
    limiter.failed("li", "a", 0);
    limiter.failed("wang", "b", 5000);
    expect(limiter.trackedKeys).toEqual({ usernames: 1, addresses: 1 });
  });

  it("refuses a limit that is not a positive integer", () => {
    expect(() => new LoginRateLimiter({ ...limits, perUsername: { limit: 0, windowMs: 1000 } })).toThrow(RangeError);
    expect(() => new LoginRateLimiter({ ...limits, perAddress: { limit: 1, windowMs: 0.5 } })).toThrow(RangeError);
  });
});
