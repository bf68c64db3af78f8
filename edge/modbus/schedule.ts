// Pure scheduling decisions for one bus: which device to poll next, and when a device is due again given its
// health. Fire sensors go before meters (an alarm waits for no kilowatt-hour); among equals the earliest deadline
// wins; a device that keeps failing is polled ever more slowly so it cannot starve the others on its half-duplex bus.

export const PRIORITY = { command: 0, "fire-sensor": 1, meter: 2, "relay-module": 3 } as const;
export type PriorityClass = keyof typeof PRIORITY;

export interface DueEntry {
  readonly deviceId: string;
  readonly priority: PriorityClass;
  readonly dueAtMs: number;
}

/** The entry to serve now, or undefined with the time the next one falls due. */
export function pickNext(entries: readonly DueEntry[], nowMs: number): { next: DueEntry | undefined; wakeAtMs: number | undefined } {
  let best: DueEntry | undefined;
  let wakeAtMs: number | undefined;
  for (const e of entries) {
    if (e.dueAtMs > nowMs) {
      wakeAtMs = wakeAtMs === undefined ? e.dueAtMs : Math.min(wakeAtMs, e.dueAtMs);
      continue;
    }
    if (!best || PRIORITY[e.priority] < PRIORITY[best.priority] || (PRIORITY[e.priority] === PRIORITY[best.priority] && e.dueAtMs < best.dueAtMs)) best = e;
  }
  return { next: best, wakeAtMs: best ? undefined : wakeAtMs };
}

export interface DeviceHealth {
  readonly consecutiveFailures: number;
  readonly online: boolean;
}

export interface HealthPolicy {
  readonly offlineAfterFailures: number;
  readonly offlinePollMaxMs: number;
}

export type HealthChange = "went-offline" | "came-online" | undefined;

/** Update a device's health after a poll; says whether it just went offline or came back. */
export function updateHealth(h: DeviceHealth, ok: boolean, policy: HealthPolicy): { health: DeviceHealth; change: HealthChange } {
  if (ok) return { health: { consecutiveFailures: 0, online: true }, change: h.online ? undefined : "came-online" };
  const failures = h.consecutiveFailures + 1;
  const online = h.online && failures < policy.offlineAfterFailures;
  return { health: { consecutiveFailures: failures, online }, change: h.online && !online ? "went-offline" : undefined };
}

/**
 * Delay until the next poll: the configured interval while healthy; once offline it doubles per further failure
 * up to offlinePollMaxMs (but never below the interval), so a dead device costs the bus almost nothing.
 */
export function nextPollDelayMs(h: DeviceHealth, intervalMs: number, policy: HealthPolicy): number {
  if (h.online) return intervalMs;
  const beyond = Math.max(0, h.consecutiveFailures - policy.offlineAfterFailures);
  return Math.max(intervalMs, Math.min(policy.offlinePollMaxMs, intervalMs * 2 ** (beyond + 1)));
}
