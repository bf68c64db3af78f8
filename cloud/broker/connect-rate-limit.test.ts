// The connection-rate guard: a sliding window of admitted connects per peer address.

import { describe, expect, it } from "vitest";
import { ConnectRateLimiter, peerKey } from "./connect-rate-limit.js";

describe("ConnectRateLimiter", () => {
  it("admits up to the limit within the window and refuses the next", () => {
    const limiter = new ConnectRateLimiter(3, 60_000);
    expect([0, 1, 2].map((t) => limiter.admit("10.0.0.1", t).admitted)).toEqual([true, true, true]);
    expect(limiter.admit("10.0.0.1", 3)).toEqual({ admitted: false, refusedInARow: 1 });
    expect(limiter.admit("10.0.0.1", 4)).toEqual({ admitted: false, refusedInARow: 2 });
  });

  it("counts each peer separately", () => {
    const limiter = new ConnectRateLimiter(1, 60_000);
    expect(limiter.admit("10.0.0.1", 0).admitted).toBe(true);
    expect(limiter.admit("10.0.0.2", 0).admitted).toBe(true);
    expect(limiter.admit("10.0.0.1", 1).admitted).toBe(false);
  });

  it("admits again once the oldest connect leaves the window", () => {
    const limiter = new ConnectRateLimiter(2, 60_000);
    limiter.admit("p", 0);
    limiter.admit("p", 30_000);
    expect(limiter.admit("p", 59_999).admitted).toBe(false);
    expect(limiter.admit("p", 60_000)).toEqual({ admitted: true });
    expect(limiter.admit("p", 60_001).admitted).toBe(false);
  });

  it("forgets peers that have been quiet for a window", () => {
    const limiter = new ConnectRateLimiter(5, 60_000);
    for (let i = 0; i < 100; i++) limiter.admit(`10.0.${i}.1`, 0);
    limiter.admit("10.9.9.9", 120_000);
    expect(limiter.trackedPeers).toBe(1);
  });

  it("limits an IPv4-mapped IPv6 address under its IPv4 address", () => {
    expect(peerKey("::ffff:127.0.0.1")).toBe("127.0.0.1");
    expect(peerKey("::1")).toBe("::1");
    expect(peerKey(undefined)).toBe("unknown");
  });
});
