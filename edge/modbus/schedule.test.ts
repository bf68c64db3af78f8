import { describe, expect, it } from "vitest";
import { nextPollDelayMs, pickNext, updateHealth, type DeviceHealth } from "./schedule.js";

const policy = { offlineAfterFailures: 3, offlinePollMaxMs: 60_000 };

describe("bus schedule", () => {
  it("serves a due fire sensor before a meter that has waited longer", () => {
    const r = pickNext(
      [
        { deviceId: "meter", priority: "meter", dueAtMs: 100 },
        { deviceId: "fire", priority: "fire-sensor", dueAtMs: 900 },
      ],
      1000,
    );
    expect(r.next?.deviceId).toBe("fire");
  });

  it("serves a queued command before everything", () => {
    const r = pickNext(
      [
        { deviceId: "fire", priority: "fire-sensor", dueAtMs: 0 },
        { deviceId: "relay", priority: "command", dueAtMs: 10 },
      ],
      10,
    );
    expect(r.next?.deviceId).toBe("relay");
  });

  it("takes the earliest deadline among equals", () => {
    const r = pickNext(
      [
        { deviceId: "a", priority: "meter", dueAtMs: 50 },
        { deviceId: "b", priority: "meter", dueAtMs: 20 },
      ],
      100,
    );
    expect(r.next?.deviceId).toBe("b");
  });

  it("says when to wake when nothing is due", () => {
    expect(pickNext([{ deviceId: "a", priority: "meter", dueAtMs: 500 }, { deviceId: "b", priority: "meter", dueAtMs: 300 }], 100)).toEqual({ next: undefined, wakeAtMs: 300 });
    expect(pickNext([], 100)).toEqual({ next: undefined, wakeAtMs: undefined });
  });

  it("reports a device offline after N failures in a row, once, and online at its first answer", () => {
    let h: DeviceHealth = { consecutiveFailures: 0, online: true };
    const changes: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) {
      const r = updateHealth(h, false, policy);
      h = r.health;
      changes.push(r.change);
    }
    expect(changes).toEqual([undefined, undefined, "went-offline", undefined, undefined]);
    const back = updateHealth(h, true, policy);
    expect(back).toEqual({ health: { consecutiveFailures: 0, online: true }, change: "came-online" });
  });

  it("polls an offline device ever more slowly, capped", () => {
    const delays = [3, 4, 5, 6, 10].map((f) => nextPollDelayMs({ consecutiveFailures: f, online: false }, 5000, policy));
    expect(delays).toEqual([10_000, 20_000, 40_000, 60_000, 60_000]);
    expect(nextPollDelayMs({ consecutiveFailures: 1, online: true }, 5000, policy)).toBe(5000);
    expect(nextPollDelayMs({ consecutiveFailures: 9, online: false }, 120_000, policy)).toBe(120_000);
  });
});
