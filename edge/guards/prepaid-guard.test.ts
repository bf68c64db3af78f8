import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { gatewayEventSchema, type FriendlyPeriod } from "../../protocols/mqtt/messages.js";
import { inAnyFriendlyPeriod, inFriendlyPeriod, shanghaiDayOfWeek, shanghaiMinuteOfDay } from "./local-time.js";
import {
  creditGuard,
  initialCreditGuardState,
  type CreditEffect,
  type CreditGrant,
  type CreditGuardConfig,
  type CreditGuardInput,
  type CreditGuardState,
} from "./prepaid-guard.js";

const METER = "pump-3";
const CONFIG: CreditGuardConfig = { warnAtWh: [1000, 200], noGrantPolicy: "open" };
/** Shanghai local time → epoch ms. 2026-08-10 is a Monday. */
const sh = (local: string): number => Date.parse(`${local}+08:00`);
const NOON = sh("2026-08-10T12:00:00");
const MIN = 60_000;
const HOUR = 60 * MIN;

function grant(grantSeq: number, limitWh: number, more: Partial<Pick<CreditGrant, "reconnect" | "friendlyPeriods">> = {}): CreditGrant {
  return { type: "credit.grant", meterId: METER, grantSeq, limitWh, reconnect: more.reconnect ?? "automatic", ...(more.friendlyPeriods ? { friendlyPeriods: more.friendlyPeriods } : {}) };
}

const reading = (registerWh: number, atMs = NOON): CreditGuardInput => ({ type: "reading", registerWh, atMs });
const granted = (g: CreditGrant, atMs = NOON): CreditGuardInput => ({ type: "grant", grant: g, atMs });

/** Feed inputs in order; returns the final state and the effects of every step, flattened. */
function run(inputs: readonly CreditGuardInput[], state: CreditGuardState = initialCreditGuardState(METER), config = CONFIG) {
  const effects: CreditEffect[] = [];
  for (const input of inputs) {
    const step = creditGuard(state, input, config);
    state = step.state;
    effects.push(...step.effects);
  }
  return { state, effects };
}

const writes = (effects: readonly CreditEffect[]) => effects.filter((e) => e.kind === "write-relay");
const events = (effects: readonly CreditEffect[]) => effects.flatMap((e) => (e.kind === "event" ? [e.event] : []));

/** A meter with 10 000 Wh granted, running at 9 000 Wh with its relay closed and the write confirmed. */
function running(more: Partial<Pick<CreditGrant, "reconnect" | "friendlyPeriods">> = {}, limitWh = 10_000): CreditGuardState {
  return run([granted(grant(1, limitWh, more)), reading(9_000), { type: "relay-readback", state: "closed", atMs: NOON }]).state;
}

/** The same meter after running out: relay open for credit exhaustion. */
function cut(more: Partial<Pick<CreditGrant, "reconnect" | "friendlyPeriods">> = {}): CreditGuardState {
  return run([reading(10_000, NOON + MIN), { type: "relay-readback", state: "open", atMs: NOON + MIN }], running(more)).state;
}

describe("prepaid guard: the cut", () => {
  it("closes the relay on the first reading when credit is available", () => {
    const { state, effects } = run([granted(grant(1, 10_000)), reading(5_000)]);
    expect(writes(effects)).toEqual([{ kind: "write-relay", state: "closed", reason: "credit_granted", registerWh: 5_000, attempt: 1 }]);
    expect(state.relay).toBe("closed");
  });

  it("cuts at exactly the limit and not one watt-hour before", () => {
    const before = run([reading(9_999, NOON + MIN)], running());
    expect(writes(before.effects)).toEqual([]);
    const at = run([reading(10_000, NOON + 2 * MIN)], before.state);
    expect(writes(at.effects)).toEqual([{ kind: "write-relay", state: "open", reason: "credit_exhausted", registerWh: 10_000, attempt: 1 }]);
    expect(at.state).toMatchObject({ relay: "open", openReason: "credit_exhausted" });
  });

  it("cuts only once however many readings follow at or over the limit", () => {
    const { effects } = run([reading(10_000, NOON + MIN), reading(10_050, NOON + 2 * MIN), reading(10_050, NOON + 3 * MIN)], running());
    expect(writes(effects)).toHaveLength(1);
  });

  it("ignores a register that goes backwards and never closes the relay because of it", () => {
    const open = cut();
    const step = creditGuard(open, reading(4_000, NOON + 5 * MIN), CONFIG);
    expect(step).toEqual({ state: open, effects: [] });
  });

  it("ignores a register that is not a non-negative safe integer", () => {
    const state = running();
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) expect(creditGuard(state, reading(bad), CONFIG)).toEqual({ state, effects: [] });
  });

  it("applies the no-grant policy to a meter that has never received a grant", () => {
    expect(writes(run([reading(100)]).effects)).toEqual([{ kind: "write-relay", state: "open", reason: "credit_exhausted", registerWh: 100, attempt: 1 }]);
    const permissive = run([reading(100)], initialCreditGuardState(METER), { ...CONFIG, noGrantPolicy: "closed" });
    expect(writes(permissive.effects)).toEqual([{ kind: "write-relay", state: "closed", reason: "credit_granted", registerWh: 100, attempt: 1 }]);
  });

  it("decides nothing between a grant and the first reading, since the limit is on the register", () => {
    const { state, effects } = run([granted(grant(1, 10_000))]);
    expect(writes(effects)).toEqual([]);
    expect(state.relay).toBe("unknown");
  });
});

describe("prepaid guard: grants", () => {
  it("reports an accepted grant as grant.applied", () => {
    const { effects } = run([granted(grant(1, 10_000))]);
    expect(events(effects)).toEqual([{ type: "grant.applied", meterId: METER, at: "2026-08-10T04:00:00.000Z", grantSeq: 1 }]);
  });

  it("refuses a replayed grant as a stale sequence and changes nothing", () => {
    const before = run([granted(grant(2, 10_000)), reading(9_500)]).state;
    const step = creditGuard(before, granted(grant(2, 10_000), NOON + MIN), CONFIG);
    expect(step.state).toBe(before);
    expect(step.effects).toEqual([{ kind: "event", event: { type: "grant.rejected", meterId: METER, at: "2026-08-10T04:01:00.000Z", grantSeq: 2, reason: "stale_sequence" } }]);
  });

  it("refuses an older grant even when it would raise the limit", () => {
    const before = run([granted(grant(5, 10_000)), reading(10_000)]).state;
    const step = creditGuard(before, granted(grant(4, 50_000)), CONFIG);
    expect(step.state).toBe(before);
    expect(writes(step.effects)).toEqual([]);
    expect(events(step.effects)).toMatchObject([{ type: "grant.rejected", grantSeq: 4, reason: "stale_sequence" }]);
  });

  it("refuses a grant addressed to another meter", () => {
    const before = initialCreditGuardState(METER);
    const step = creditGuard(before, granted({ ...grant(1, 10_000), meterId: "pump-4" }), CONFIG);
    expect(step.state).toBe(before);
    expect(events(step.effects)).toMatchObject([{ type: "grant.rejected", reason: "wrong_meter" }]);
  });

  it("closes a relay cut for exhaustion when a newer grant with automatic reconnect brings credit", () => {
    const { state, effects } = run([granted(grant(2, 20_000), NOON + 5 * MIN)], cut());
    expect(writes(effects)).toEqual([{ kind: "write-relay", state: "closed", reason: "credit_granted", registerWh: 10_000, attempt: 1 }]);
    expect(state).toMatchObject({ relay: "closed", awaitingManualReconnect: false });
    expect(state.openReason).toBeUndefined();
  });

  it("keeps the relay open under a manual grant until the local button is pressed", () => {
    const afterGrant = run([granted(grant(2, 20_000, { reconnect: "manual" }), NOON + 5 * MIN)], cut({ reconnect: "manual" }));
    expect(writes(afterGrant.effects)).toEqual([]);
    expect(afterGrant.state).toMatchObject({ relay: "open", awaitingManualReconnect: true });

    const afterReading = run([reading(10_000, NOON + 6 * MIN)], afterGrant.state);
    expect(writes(afterReading.effects)).toEqual([]);

    const pressed = run([{ type: "local-button", atMs: NOON + 7 * MIN }], afterReading.state);
    expect(writes(pressed.effects)).toEqual([{ kind: "write-relay", state: "closed", reason: "credit_granted", registerWh: 10_000, attempt: 1 }]);
    expect(pressed.state).toMatchObject({ relay: "closed", awaitingManualReconnect: false });
  });

  it("lets an officer close a relay that waits for manual reconnect", () => {
    const waiting = run([granted(grant(2, 20_000, { reconnect: "manual" }))], cut({ reconnect: "manual" })).state;
    const { state, effects } = run([{ type: "officer", state: "closed", officerId: "wang.li", reason: "farmer called", atMs: NOON + 8 * MIN }], waiting);
    expect(writes(effects)).toEqual([{ kind: "write-relay", state: "closed", reason: "officer_override", registerWh: 10_000, attempt: 1 }]);
    expect(state.awaitingManualReconnect).toBe(false);
  });

  it("cuts at once when a newer grant lowers the limit below the register", () => {
    const { state, effects } = run([granted(grant(2, 8_000), NOON + MIN)], running());
    expect(writes(effects)).toEqual([{ kind: "write-relay", state: "open", reason: "credit_exhausted", registerWh: 9_000, attempt: 1 }]);
    expect(state.grant?.limitWh).toBe(8_000);
  });

  it("does nothing when the local button is pressed without credit outside a friendly period", () => {
    const open = cut();
    expect(creditGuard(open, { type: "local-button", atMs: NOON + 9 * MIN }, CONFIG)).toEqual({ state: open, effects: [] });
  });
});

describe("prepaid guard: friendly periods", () => {
  const evening: FriendlyPeriod = { from: "18:00", to: "20:00" };
  const night: FriendlyPeriod = { from: "22:00", to: "06:00" };

  it("defers a cut that falls inside a friendly period and cuts at the first reading after it ends", () => {
    const start = running({ friendlyPeriods: [evening] });
    const inside = run([reading(10_000, sh("2026-08-10T19:00:00")), reading(10_400, sh("2026-08-10T19:59:00"))], start);
    expect(writes(inside.effects)).toEqual([]);
    expect(inside.state).toMatchObject({ relay: "closed", cutDeferred: true });

    const after = run([reading(10_500, sh("2026-08-10T20:00:00"))], inside.state);
    expect(writes(after.effects)).toEqual([{ kind: "write-relay", state: "open", reason: "credit_exhausted", registerWh: 10_500, attempt: 1 }]);
    expect(after.state.cutDeferred).toBe(false);
  });

  it("defers the cut across midnight in a period that wraps it", () => {
    const start = running({ friendlyPeriods: [night] });
    const inside = run([reading(10_000, sh("2026-08-10T23:00:00")), reading(10_300, sh("2026-08-11T03:00:00")), reading(10_600, sh("2026-08-11T05:59:00"))], start);
    expect(writes(inside.effects)).toEqual([]);
    const after = run([reading(10_700, sh("2026-08-11T06:00:00"))], inside.state);
    expect(writes(after.effects)).toMatchObject([{ state: "open", reason: "credit_exhausted" }]);
  });

  it("honours a day filter by the day a period begins, so Friday night runs into Saturday morning", () => {
    const fridayNight: FriendlyPeriod = { ...night, days: [5] };
    const start = running({ friendlyPeriods: [fridayNight] });
    // 2026-08-14 is a Friday.
    const friday = run([reading(10_000, sh("2026-08-14T23:00:00")), reading(10_100, sh("2026-08-15T03:00:00"))], start);
    expect(writes(friday.effects)).toEqual([]);
    const saturdayNight = run([reading(10_200, sh("2026-08-15T23:00:00"))], friday.state);
    expect(writes(saturdayNight.effects)).toMatchObject([{ state: "open" }]);
    // Friday 03:00 belongs to Thursday's night, which the filter excludes.
    const fridayMorning = run([reading(10_000, sh("2026-08-14T03:00:00"))], start);
    expect(writes(fridayMorning.effects)).toMatchObject([{ state: "open" }]);
  });

  it("does not reconnect a relay that was already cut when a friendly period begins", () => {
    const open = cut({ friendlyPeriods: [evening] });
    expect(writes(run([reading(10_000, sh("2026-08-10T19:00:00"))], open).effects)).toEqual([]);
  });

  it("lets the local button close a cut relay during a friendly period, and cuts again after it", () => {
    const open = cut({ friendlyPeriods: [evening] });
    const pressed = run([{ type: "local-button", atMs: sh("2026-08-10T18:30:00") }], open);
    expect(writes(pressed.effects)).toEqual([{ kind: "write-relay", state: "closed", reason: "friendly_period", registerWh: 10_000, attempt: 1 }]);
    expect(pressed.state.cutDeferred).toBe(true);
    const after = run([reading(10_900, sh("2026-08-10T20:01:00"))], pressed.state);
    expect(writes(after.effects)).toMatchObject([{ state: "open", reason: "credit_exhausted" }]);
  });
});

describe("prepaid guard: boot and read-back", () => {
  it("re-asserts a closed relay after a reboot", () => {
    const { effects } = run([{ type: "boot", atMs: NOON + HOUR }], running());
    expect(writes(effects)).toEqual([{ kind: "write-relay", state: "closed", reason: "restored_after_reboot", registerWh: 9_000, attempt: 1 }]);
  });

  it("re-asserts an open relay after a reboot and keeps the reason it was opened for", () => {
    const { state, effects } = run([{ type: "boot", atMs: NOON + HOUR }], cut());
    expect(writes(effects)).toEqual([{ kind: "write-relay", state: "open", reason: "restored_after_reboot", registerWh: 10_000, attempt: 1 }]);
    expect(state.openReason).toBe("credit_exhausted");
  });

  it("cuts at boot instead when a friendly period ended while the gateway was down", () => {
    const deferred = run([reading(10_000, sh("2026-08-10T19:00:00"))], running({ friendlyPeriods: [{ from: "18:00", to: "20:00" }] })).state;
    const { effects } = run([{ type: "boot", atMs: sh("2026-08-10T21:00:00") }], deferred);
    expect(writes(effects)).toEqual([{ kind: "write-relay", state: "open", reason: "credit_exhausted", registerWh: 10_000, attempt: 1 }]);
  });

  it("writes the no-grant policy at the first boot of a meter it knows nothing about", () => {
    expect(writes(run([{ type: "boot", atMs: NOON }]).effects)).toEqual([{ kind: "write-relay", state: "open", reason: "credit_exhausted", attempt: 1 }]);
  });

  it("reports the switch once, verified, when the read-back agrees", () => {
    const decided = run([reading(10_000, NOON + MIN)], running()).state;
    const first = creditGuard(decided, { type: "relay-readback", state: "open", atMs: NOON + MIN + 500 }, CONFIG);
    expect(events(first.effects)).toEqual([
      { type: "relay.opened", deviceId: METER, at: "2026-08-10T04:01:00.000Z", reason: "credit_exhausted", registerWh: 10_000, grantSeq: 1, verified: true },
    ]);
    expect(creditGuard(first.state, { type: "relay-readback", state: "open", atMs: NOON + 2 * MIN }, CONFIG).effects).toEqual([]);
  });

  it("reports a read-back mismatch and retries the write until the relay agrees", () => {
    const decided = run([reading(10_000, NOON + MIN)], running()).state;
    const failed = run([{ type: "relay-readback", state: "closed", atMs: NOON + MIN + 500 }, { type: "relay-readback", state: "closed", atMs: NOON + MIN + 1_500 }], decided);
    expect(failed.effects).toEqual([
      { kind: "event", event: { type: "relay.verify-failed", deviceId: METER, at: "2026-08-10T04:01:00.500Z", expected: "open", observed: "closed", reason: "credit_exhausted", attempt: 2, registerWh: 10_000, grantSeq: 1 } },
      { kind: "write-relay", state: "open", reason: "credit_exhausted", registerWh: 10_000, attempt: 2 },
      { kind: "event", event: { type: "relay.verify-failed", deviceId: METER, at: "2026-08-10T04:01:01.500Z", expected: "open", observed: "closed", reason: "credit_exhausted", attempt: 3, registerWh: 10_000, grantSeq: 1 } },
      { kind: "write-relay", state: "open", reason: "credit_exhausted", registerWh: 10_000, attempt: 3 },
    ]);
    const agreed = run([{ type: "relay-readback", state: "open", atMs: NOON + 2 * MIN }], failed.state);
    expect(events(agreed.effects)).toMatchObject([{ type: "relay.opened", verified: true }]);
  });

  it("switches the relay back when someone closes it by hand at the meter", () => {
    const { effects } = run([{ type: "relay-readback", state: "closed", atMs: NOON + 30 * MIN }], cut());
    expect(writes(effects)).toMatchObject([{ state: "open", reason: "credit_exhausted" }]);
    expect(events(effects)).toMatchObject([{ type: "relay.verify-failed", expected: "open", observed: "closed" }]);
  });

  it("does not retry a closed write whose cut fell due since, but cuts instead", () => {
    const deferred = run([reading(10_000, sh("2026-08-10T19:00:00"))], running({ friendlyPeriods: [{ from: "18:00", to: "20:00" }] })).state;
    const { effects } = run([{ type: "relay-readback", state: "open", atMs: sh("2026-08-10T20:30:00") }], deferred);
    expect(writes(effects)).toEqual([{ kind: "write-relay", state: "open", reason: "credit_exhausted", registerWh: 10_000, attempt: 1 }]);
  });

  it("reports the switch unverified for a relay that cannot be read back", () => {
    const decided = run([reading(10_000, NOON + MIN)], running()).state;
    const { effects } = run([{ type: "relay-unverifiable", atMs: NOON + MIN }], decided);
    expect(events(effects)).toMatchObject([{ type: "relay.opened", verified: false }]);
  });
});

describe("prepaid guard: officer override", () => {
  it("obeys an officer's cut, audits it, and keeps it through new grants and readings", () => {
    const ordered = run([{ type: "officer", state: "open", officerId: "wang.li", reason: "wire tapped to the tea field", atMs: NOON + MIN }], running());
    expect(ordered.effects).toEqual([
      {
        kind: "audit",
        action: "officer-relay-set",
        meterId: METER,
        officerId: "wang.li",
        reason: "wire tapped to the tea field",
        state: "open",
        previousRelay: "closed",
        withoutCredit: false,
        registerWh: 9_000,
        grantSeq: 1,
        atMs: NOON + MIN,
      },
      { kind: "write-relay", state: "open", reason: "officer_override", registerWh: 9_000, attempt: 1 },
    ]);
    const later = run([granted(grant(2, 30_000), NOON + 2 * MIN), reading(9_000, NOON + 3 * MIN), { type: "local-button", atMs: NOON + 4 * MIN }], ordered.state);
    expect(writes(later.effects)).toEqual([]);
    expect(later.state).toMatchObject({ relay: "open", openReason: "officer_override" });
  });

  it("lets an officer close a meter without credit only until the next reading at or over the limit", () => {
    const closed = run([{ type: "officer", state: "closed", officerId: "wang.li", reason: "test the pump", atMs: NOON + 2 * MIN }], cut());
    expect(closed.effects).toMatchObject([{ kind: "audit", withoutCredit: true }, { kind: "write-relay", state: "closed", reason: "officer_override" }]);
    const next = run([reading(10_010, NOON + 3 * MIN)], closed.state);
    expect(writes(next.effects)).toMatchObject([{ state: "open", reason: "credit_exhausted" }]);
  });

  it("lets an officer's close stand inside a friendly period, deferring the cut to its end", () => {
    const open = cut({ friendlyPeriods: [{ from: "18:00", to: "20:00" }] });
    const closed = run([{ type: "officer", state: "closed", officerId: "wang.li", reason: "drought order", atMs: sh("2026-08-10T18:10:00") }, reading(10_200, sh("2026-08-10T19:00:00"))], open);
    expect(writes(closed.effects)).toHaveLength(1);
    expect(closed.state).toMatchObject({ relay: "closed", cutDeferred: true });
  });
});

describe("prepaid guard: low-credit warnings", () => {
  it("warns once per stage per grant", () => {
    const { effects, state } = run(
      [granted(grant(1, 10_000)), reading(8_900), reading(9_000), reading(9_100), reading(9_800), reading(9_900), granted(grant(2, 20_000)), reading(18_999), reading(19_000), reading(19_500)],
    );
    const warnings = effects.filter((e) => e.kind === "warning");
    expect(warnings).toEqual([
      { kind: "warning", level: 1, remainingWh: 1_000, grantSeq: 1, atMs: NOON },
      { kind: "warning", level: 2, remainingWh: 200, grantSeq: 1, atMs: NOON },
      { kind: "warning", level: 1, remainingWh: 1_000, grantSeq: 2, atMs: NOON },
    ]);
    expect(state.warningsSent).toBe(1);
  });

  it("reports only stage 2 when one reading crosses both stages", () => {
    const warnings = run([granted(grant(1, 10_000)), reading(5_000), reading(9_850)]).effects.filter((e) => e.kind === "warning");
    expect(warnings).toMatchObject([{ level: 2, remainingWh: 150 }]);
  });

  it("warns as soon as a grant arrives that leaves little credit", () => {
    const warnings = run([granted(grant(2, 9_500), NOON + MIN)], running()).effects.filter((e) => e.kind === "warning");
    expect(warnings).toMatchObject([{ level: 1, remainingWh: 500, grantSeq: 2 }]);
  });

  it("warns at the grant's own stages instead of the configured ones", () => {
    // Configured [1000, 200]; the village's stages on this grant are [3000, 1500].
    const withStages: CreditGrant = { ...grant(1, 10_000), warnAtWh: [3_000, 1_500] };
    const warnings = run([granted(withStages), reading(5_000), reading(6_999), reading(7_000), reading(8_499), reading(8_500), reading(9_000), reading(9_800)]).effects.filter(
      (e) => e.kind === "warning",
    );
    expect(warnings).toEqual([
      { kind: "warning", level: 1, remainingWh: 3_000, grantSeq: 1, atMs: NOON },
      { kind: "warning", level: 2, remainingWh: 1_500, grantSeq: 1, atMs: NOON },
    ]);
  });

  it("falls back to the configured stages when a later grant carries none", () => {
    const withStages: CreditGrant = { ...grant(1, 10_000), warnAtWh: [3_000, 1_500] };
    const { state, effects } = run([granted(withStages), reading(5_000), granted(grant(2, 12_000)), reading(9_000), reading(10_999), reading(11_000)]);
    expect(state.grant).not.toHaveProperty("warnAtWh");
    // Remaining 3000 Wh under grant 2 would have warned under grant 1's stages; the configured 1000 Wh warns instead.
    expect(effects.filter((e) => e.kind === "warning")).toEqual([{ kind: "warning", level: 1, remainingWh: 1_000, grantSeq: 2, atMs: NOON }]);
  });

  it("keeps the grant's stages through a reboot", () => {
    const withStages: CreditGrant = { ...grant(1, 10_000), warnAtWh: [3_000, 1_500] };
    const before = run([granted(withStages), reading(5_000), { type: "relay-readback", state: "closed", atMs: NOON }]).state;
    // The shell persists the state as JSON and reads it back at boot.
    const restored = JSON.parse(JSON.stringify(before)) as CreditGuardState;
    const { effects } = run([{ type: "boot", atMs: NOON + HOUR }, reading(7_000, NOON + HOUR + MIN)], restored);
    expect(effects.filter((e) => e.kind === "warning")).toEqual([{ kind: "warning", level: 1, remainingWh: 3_000, grantSeq: 1, atMs: NOON + HOUR + MIN }]);
  });
});

describe("prepaid guard: contract", () => {
  it("emits grant and relay events that the protocol's event schema accepts once the shell adds registerValue", () => {
    const { effects } = run([
      granted(grant(1, 10_000)),
      granted(grant(1, 10_000)),
      reading(9_000),
      { type: "relay-readback", state: "closed", atMs: NOON },
      reading(10_000, NOON + MIN),
      { type: "relay-readback", state: "open", atMs: NOON + MIN },
    ]);
    const published = events(effects).map((e) => (e.type === "relay.opened" || e.type === "relay.closed" ? { ...e, registerValue: e.type === "relay.opened" ? 0 : 1 } : e));
    expect(published.map((e) => e.type)).toEqual(["grant.applied", "grant.rejected", "relay.closed", "relay.opened"]);
    for (const e of published) expect(gatewayEventSchema.safeParse(e).success).toBe(true);
  });

  it("keeps its state plain JSON, so the shell can persist it as is", () => {
    const { state } = run([granted(grant(1, 10_000, { friendlyPeriods: [{ from: "22:00", to: "06:00", days: [1, 2] }] })), reading(9_900), { type: "officer", state: "open", officerId: "o", reason: "r", atMs: NOON }]);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
    expect(Object.values(state)).not.toContain(undefined);
  });
});

// ─── properties ───────────────────────────────────────────────────────────────────────────────────────────────────

const periodArb: fc.Arbitrary<FriendlyPeriod> = fc
  .record({ from: fc.integer({ min: 0, max: 1439 }), to: fc.integer({ min: 0, max: 1439 }), days: fc.option(fc.uniqueArray(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 7 }), { nil: undefined }) })
  .filter((p) => p.from !== p.to)
  .map(({ from, to, days }) => {
    const clock = (m: number) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
    return days === undefined ? { from: clock(from), to: clock(to) } : { from: clock(from), to: clock(to), days };
  });

/** A step of a field day: time passes, then something happens. Readings only ever rise. */
type Step =
  | { kind: "reading"; riseWh: number; afterMs: number }
  | { kind: "grant"; grantSeq: number; limitWh: number; reconnect: "automatic" | "manual"; periods: FriendlyPeriod[]; afterMs: number }
  | { kind: "button"; afterMs: number }
  | { kind: "readback"; state: "open" | "closed"; afterMs: number }
  | { kind: "boot"; afterMs: number };

const afterMs = fc.integer({ min: 0, max: 3 * 3_600_000 });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("reading" as const), riseWh: fc.integer({ min: 0, max: 30 }).map((n) => n * 100), afterMs }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("grant" as const),
      grantSeq: fc.integer({ min: 1, max: 12 }),
      // Round limits and rises make "the register lands exactly on the limit" common, not a one-in-a-thousand case.
      limitWh: fc.integer({ min: 0, max: 120 }).map((n) => n * 500),
      reconnect: fc.constantFrom("automatic" as const, "manual" as const),
      periods: fc.array(periodArb, { maxLength: 2 }),
      afterMs,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("button" as const), afterMs }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("readback" as const), state: fc.constantFrom("open" as const, "closed" as const), afterMs }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("boot" as const), afterMs }) },
);

function toInputs(steps: readonly Step[]): CreditGuardInput[] {
  let atMs = NOON;
  let registerWh = 0;
  return steps.map((s): CreditGuardInput => {
    atMs += s.afterMs;
    switch (s.kind) {
      case "reading":
        registerWh += s.riseWh;
        return { type: "reading", registerWh, atMs };
      case "grant":
        return { type: "grant", grant: { ...grant(s.grantSeq, s.limitWh, { reconnect: s.reconnect }), friendlyPeriods: s.periods }, atMs };
      case "button":
        return { type: "local-button", atMs };
      case "readback":
        return { type: "relay-readback", state: s.state, atMs };
      case "boot":
        return { type: "boot", atMs };
    }
  });
}

describe("prepaid guard: properties", () => {
  it("never closes the relay while the register is at or over the limit outside a friendly period, and always cuts then", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 60 }), (steps) => {
        let state = initialCreditGuardState(METER);
        for (const input of toInputs(steps)) {
          const step = creditGuard(state, input, CONFIG);
          state = step.state;
          const g = state.grant;
          const exhausted = g === undefined || (state.lastRegisterWh !== undefined && state.lastRegisterWh >= g.limitWh);
          const known = g === undefined || state.lastRegisterWh !== undefined;
          const friendly = g !== undefined && inAnyFriendlyPeriod(g.friendlyPeriods, input.atMs);
          if (known && exhausted && !friendly) {
            expect(step.effects.filter((e) => e.kind === "write-relay" && e.state === "closed")).toEqual([]);
            // Readings, accepted grants and boots decide; the others act on what is already decided (or do nothing
            // yet). A refused grant changes nothing at all, so a cut a friendly period deferred waits for the next
            // reading (one poll away), not for a replayed grant.
            const accepted = input.type === "grant" && step.effects.some((e) => e.kind === "event" && e.event.type === "grant.applied");
            if (input.type === "reading" || accepted || input.type === "boot") expect(state.relay).toBe("open");
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it("ends in the same state whether each grant arrives once, twice in a row, or is replayed at the end", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 40 }), (steps) => {
        const inputs = toInputs(steps);
        const once = run(inputs).state;
        const twice = run(inputs.flatMap((i): CreditGuardInput[] => (i.type === "grant" ? [i, i] : [i]))).state;
        const last = inputs.at(-1)?.atMs ?? NOON;
        const replayed = run([...inputs, ...inputs.filter((i) => i.type === "grant").map((i) => ({ ...i, atMs: last }))]).state;
        expect(twice).toEqual(once);
        expect(replayed).toEqual(once);
      }),
      { numRuns: 300 },
    );
  });
});

describe("Shanghai local time", () => {
  const intl = new Intl.DateTimeFormat("en-US", { timeZone: "Asia/Shanghai", hourCycle: "h23", weekday: "short", hour: "2-digit", minute: "2-digit" });
  const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

  it("agrees with the platform's Asia/Shanghai zone on minute of day and day of week", () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.parse("1995-01-01T00:00:00Z"), max: Date.parse("2100-01-01T00:00:00Z") }), (epochMs) => {
        const parts = Object.fromEntries(intl.formatToParts(epochMs).map((p) => [p.type, p.value]));
        expect(shanghaiMinuteOfDay(epochMs)).toBe(Number(parts.hour) * 60 + Number(parts.minute));
        expect(shanghaiDayOfWeek(epochMs)).toBe(WEEKDAYS.indexOf(String(parts.weekday)));
      }),
      { numRuns: 500 },
    );
  });

  it("treats a period as half-open, in at its start and out at its end", () => {
    const period: FriendlyPeriod = { from: "22:00", to: "06:00" };
    expect(inFriendlyPeriod(period, sh("2026-08-10T21:59:00"))).toBe(false);
    expect(inFriendlyPeriod(period, sh("2026-08-10T22:00:00"))).toBe(true);
    expect(inFriendlyPeriod(period, sh("2026-08-11T05:59:59"))).toBe(true);
    expect(inFriendlyPeriod(period, sh("2026-08-11T06:00:00"))).toBe(false);
  });

  it("lets a period with an unreadable clock time match nothing", () => {
    expect(inFriendlyPeriod({ from: "24:00", to: "06:00" }, sh("2026-08-11T01:00:00"))).toBe(false);
  });
});
