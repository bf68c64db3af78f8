// The prepaid credit guard: one meter's relay decisions as a pure step function, creditGuard(state, input, config)
// → { state, effects }. It owns invariant 4 of ARCHITECTURE.md: the cloud grants a limit on the meter's own import
// register, and the edge opens the relay when the register reaches it, online or offline, with no older grant ever
// replacing a newer one. The shell owns everything else: Modbus writes and reads, persisting the state (a plain
// JSON object) atomically with queuing the effects, and publishing events.
//
// Rules, in one place (each one has a test named after it):
// - Cut: the relay opens when registerWh ≥ limitWh (exactly the limit cuts: "run until the register reaches X").
// - Friendly periods (Zigbee SE prepayment "friendly credit"; messages.ts friendlyPeriodSchema): inside one, a due
//   cut is deferred, not skipped — `cutDeferred` remembers it and the first reading after the period cuts. A period
//   does not reconnect a relay that is already open by itself; someone on site may close it with the local button
//   while the period lasts (reason friendly_period).
// - Grants: a grant whose grantSeq is not above the one in force is refused ("stale_sequence") and changes nothing.
//   A newer grant replaces the limit even when it is lower (a correction), and a lower limit can cut at once.
//   When credit returns to a meter cut for exhaustion: reconnect "automatic" closes the relay; "manual" leaves it
//   open with awaitingManualReconnect until the local button or an officer closes it (DL/T 1490 practice: power
//   comes back when someone is there to see the pump start).
// - No grant ever received: config.noGrantPolicy says whether the relay is open or closed.
// - Officer override: always obeyed, always audited. An officer's "open" sticks until an officer closes the relay
//   (no grant, reading or button undoes it: a cut for safety or tampering must not be undone by credit). An
//   officer's "closed" is not credit: if the register is at or over the limit, the next reading opens the relay
//   again unless a friendly period is on. An officer who wants power without credit asks the cloud for a grant.
// - A register below the last one is no information (the shell reports and filters it; the guard must never close
//   the relay because of it), and neither is a value that is not a non-negative safe integer.
// - Boot: the persisted relay state is written again (restored_after_reboot), unless the rules at boot time demand a
//   change (a friendly period that ended while the box was down), in which case that change is written instead.
// - Read-back (Home Assistant's switch `verify`): a read-back that disagrees with the commanded state — after a
//   write, or later because someone switched the meter's own relay by hand — is reported and the write is retried,
//   after the rules are checked again (retrying a "closed" whose deferred cut has fallen due would be a reconnect).
// - Warnings 请购电 (DL/T 1490 two alarm stages): when the remaining credit falls to warnAtWh[0] (stage 1) and
//   warnAtWh[1] (stage 2), each stage at most once per grant; a reading that crosses both at once reports stage 2.
//   The grant's own warnAtWh (the village policy, converted by the cloud) takes precedence over the configured one
//   while that grant is in force; it is part of the grant in the persisted state, so it survives a reboot with it.

import type { CommandBody, FriendlyPeriod, GatewayEvent } from "../../protocols/mqtt/messages.js";
import { inAnyFriendlyPeriod, isoInstant } from "./local-time.js";

// ─── types ────────────────────────────────────────────────────────────────────────────────────────────────────────

export type RelayState = "open" | "closed";
export type CreditGrant = Extract<CommandBody, { type: "credit.grant" }>;
type RelayChangedEvent = Extract<GatewayEvent, { type: "relay.opened" | "relay.closed" }>;
export type RelayReason = RelayChangedEvent["reason"];
export type GrantAppliedEvent = Extract<GatewayEvent, { type: "grant.applied" }>;
export type GrantRejectedEvent = Extract<GatewayEvent, { type: "grant.rejected" }>;

/**
 * A relay.opened / relay.closed event as messages.ts relayChangedSchema, less what only the shell knows:
 * `registerValue` (the raw value the profile's write target uses) and, when no reading has ever been seen,
 * `registerWh` (the schema requires it; the shell fills it from its latest reading).
 */
export type RelayEventDraft = Omit<RelayChangedEvent, "registerValue" | "registerWh"> & { readonly registerWh?: number };

/**
 * Edge-local (not in gatewayEventSchema): a read-back disagreed with the commanded state and the write is being
 * retried. The shell publishes it as relay.opened / relay.closed with `verified: false` (it has every field).
 */
export interface RelayVerifyFailedEvent {
  readonly type: "relay.verify-failed";
  readonly deviceId: string;
  readonly at: string;
  readonly expected: RelayState;
  readonly observed: RelayState;
  readonly reason: RelayReason;
  /** How many writes of this state have now been issued, the retry included. */
  readonly attempt: number;
  readonly registerWh?: number;
  readonly grantSeq?: number;
}

export type CreditEvent = GrantAppliedEvent | GrantRejectedEvent | RelayEventDraft | RelayVerifyFailedEvent;

export interface GrantInForce {
  readonly grantSeq: number;
  readonly limitWh: number;
  readonly reconnect: CreditGrant["reconnect"];
  readonly friendlyPeriods: readonly FriendlyPeriod[];
  /** The grant's warning stages; absent: the configured ones (CreditGuardConfig.warnAtWh). */
  readonly warnAtWh?: readonly [number, number];
  readonly receivedAtMs: number;
}

/** The last relay write the guard decided, and whether a read-back has confirmed it. */
export interface RelayWrite {
  readonly state: RelayState;
  readonly reason: RelayReason;
  readonly registerWh?: number;
  readonly grantSeq?: number;
  readonly decidedAtMs: number;
  /** Writes issued for this decision (1 + retries). */
  readonly attempts: number;
  /** pending: not confirmed yet; verified: a read-back agreed; unverifiable: the relay cannot be read back. */
  readonly status: "pending" | "verified" | "unverifiable";
}

/** One meter's guard state. Plain JSON (no undefined values, no Dates), so the shell persists it as is. */
export interface CreditGuardState {
  readonly meterId: string;
  readonly grant?: GrantInForce;
  /** The commanded state ("unknown" until the guard has decided anything for this meter). */
  readonly relay: RelayState | "unknown";
  /** Why the relay is open; absent when it is closed or unknown. */
  readonly openReason?: RelayReason;
  readonly lastRegisterWh?: number;
  /** Credit is back under a "manual" grant; the relay stays open until the local button or an officer. */
  readonly awaitingManualReconnect: boolean;
  /** The register is at or over the limit, but a friendly period keeps the relay closed for now. */
  readonly cutDeferred: boolean;
  /** Highest low-credit warning stage already reported for the grant in force (reset by each accepted grant). */
  readonly warningsSent: 0 | 1 | 2;
  readonly lastWrite?: RelayWrite;
}

export type CreditGuardInput =
  /** The meter's import register in integer Wh, already validated by the shell. */
  | { readonly type: "reading"; readonly registerWh: number; readonly atMs: number }
  /** A credit.grant command the shell has checked (schema, expiry, meter known). */
  | { readonly type: "grant"; readonly grant: CreditGrant; readonly atMs: number }
  /** The reconnect button on site. */
  | { readonly type: "local-button"; readonly atMs: number }
  /** A relay.set command from an officer. */
  | { readonly type: "officer"; readonly state: RelayState; readonly officerId: string; readonly reason: string; readonly atMs: number }
  /** The agent started (after a reboot or a crash). */
  | { readonly type: "boot"; readonly atMs: number }
  /** What the relay reads back as: after a write, or on any poll of the relay state. */
  | { readonly type: "relay-readback"; readonly state: RelayState; readonly atMs: number }
  /** The write was sent, but this relay has no read-back point (profile `readBack` absent). */
  | { readonly type: "relay-unverifiable"; readonly atMs: number };

export interface OfficerAudit {
  readonly kind: "audit";
  readonly action: "officer-relay-set";
  readonly meterId: string;
  readonly officerId: string;
  readonly reason: string;
  readonly state: RelayState;
  readonly previousRelay: RelayState | "unknown";
  /** Whether the register was at or over the limit (or no grant existed) when the officer acted. */
  readonly withoutCredit: boolean;
  readonly registerWh?: number;
  readonly grantSeq?: number;
  readonly atMs: number;
}

export type CreditEffect =
  | { readonly kind: "write-relay"; readonly state: RelayState; readonly reason: RelayReason; readonly registerWh?: number; readonly attempt: number }
  | { readonly kind: "event"; readonly event: CreditEvent }
  /** 请购电: remainingWh = limitWh − registerWh (zero or negative when the warning comes with the cut or in a friendly period). */
  | { readonly kind: "warning"; readonly level: 1 | 2; readonly remainingWh: number; readonly grantSeq: number; readonly atMs: number }
  | OfficerAudit;

export interface CreditGuardConfig {
  /**
   * Remaining Wh at which to warn: [stage 1, stage 2], stage 2 the smaller (DL/T 1490 报警金额1/2 as energy). Used
   * for a grant that carries no warnAtWh of its own.
   */
  readonly warnAtWh: readonly [number, number];
  /** The relay state for a meter that has never received a grant. */
  readonly noGrantPolicy: RelayState;
}

export interface CreditGuardStep {
  readonly state: CreditGuardState;
  readonly effects: readonly CreditEffect[];
}

export const GRANT_REJECTION_REASONS = {
  stale: "stale_sequence",
  wrongMeter: "wrong_meter",
} as const;

export function initialCreditGuardState(meterId: string): CreditGuardState {
  return { meterId, relay: "unknown", awaitingManualReconnect: false, cutDeferred: false, warningsSent: 0 };
}

// ─── the step function ────────────────────────────────────────────────────────────────────────────────────────────

export function creditGuard(state: CreditGuardState, input: CreditGuardInput, config: CreditGuardConfig): CreditGuardStep {
  switch (input.type) {
    case "reading":
      return onReading(state, input.registerWh, input.atMs, config);
    case "grant":
      return onGrant(state, input.grant, input.atMs, config);
    case "local-button":
      return onLocalButton(state, input.atMs);
    case "officer":
      return onOfficer(state, input);
    case "boot":
      return onBoot(state, input.atMs, config);
    case "relay-readback":
      return onReadback(state, input.state, input.atMs, config);
    case "relay-unverifiable":
      return onUnverifiable(state);
  }
}

// ─── handlers ─────────────────────────────────────────────────────────────────────────────────────────────────────

function onReading(state: CreditGuardState, registerWh: number, atMs: number, config: CreditGuardConfig): CreditGuardStep {
  // A register that went backwards (meter swap, rollover, tamper) is the shell's to report; to the guard it says
  // nothing, and in particular it must never make credit appear.
  if (!Number.isSafeInteger(registerWh) || registerWh < 0) return unchanged(state);
  if (state.lastRegisterWh !== undefined && registerWh < state.lastRegisterWh) return unchanged(state);
  return enforce({ ...state, lastRegisterWh: registerWh }, atMs, config);
}

function onGrant(state: CreditGuardState, grant: CreditGrant, atMs: number, config: CreditGuardConfig): CreditGuardStep {
  const rejected = (reason: string): CreditGuardStep => ({
    state,
    effects: [{ kind: "event", event: { type: "grant.rejected", meterId: state.meterId, at: isoInstant(atMs), grantSeq: grant.grantSeq, reason } }],
  });
  if (grant.meterId !== state.meterId) return rejected(GRANT_REJECTION_REASONS.wrongMeter);
  // The sequence is the grant's identity: an equal sequence is a replay even if its body differs.
  if (state.grant !== undefined && grant.grantSeq <= state.grant.grantSeq) return rejected(GRANT_REJECTION_REASONS.stale);

  const inForce: GrantInForce = {
    grantSeq: grant.grantSeq,
    limitWh: grant.limitWh,
    reconnect: grant.reconnect,
    friendlyPeriods: grant.friendlyPeriods ?? [],
    ...optional("warnAtWh", grant.warnAtWh),
    receivedAtMs: atMs,
  };
  const applied: CreditEffect = { kind: "event", event: { type: "grant.applied", meterId: state.meterId, at: isoInstant(atMs), grantSeq: grant.grantSeq } };
  const step = enforce({ ...state, grant: inForce, warningsSent: 0, awaitingManualReconnect: false }, atMs, config);
  return { state: step.state, effects: [applied, ...step.effects] };
}

function onLocalButton(state: CreditGuardState, atMs: number): CreditGuardStep {
  // The button only undoes a cut for credit: an officer's cut is not the farmer's to undo.
  if (state.relay !== "open" || state.openReason !== "credit_exhausted") return unchanged(state);
  const credit = creditStatus(state);
  if (credit === "available") {
    return switchRelay({ ...state, awaitingManualReconnect: false }, "closed", "credit_granted", atMs);
  }
  if (credit === "exhausted" && state.grant !== undefined && inAnyFriendlyPeriod(state.grant.friendlyPeriods, atMs)) {
    return switchRelay({ ...state, cutDeferred: true }, "closed", "friendly_period", atMs);
  }
  return unchanged(state);
}

function onOfficer(state: CreditGuardState, input: Extract<CreditGuardInput, { type: "officer" }>): CreditGuardStep {
  const credit = creditStatus(state);
  const audit: OfficerAudit = {
    kind: "audit",
    action: "officer-relay-set",
    meterId: state.meterId,
    officerId: input.officerId,
    reason: input.reason,
    state: input.state,
    previousRelay: state.relay,
    withoutCredit: credit === "none" || credit === "exhausted",
    ...optional("registerWh", state.lastRegisterWh),
    ...optional("grantSeq", state.grant?.grantSeq),
    atMs: input.atMs,
  };
  // Written even when the relay is already in that state: the officer expects an action and a fresh read-back.
  const step = switchRelay({ ...state, awaitingManualReconnect: false, cutDeferred: false }, input.state, "officer_override", input.atMs);
  return { state: step.state, effects: [audit, ...step.effects] };
}

function onBoot(state: CreditGuardState, atMs: number, config: CreditGuardConfig): CreditGuardStep {
  const step = enforce(state, atMs, config);
  if (step.effects.some((e) => e.kind === "write-relay") || step.state.relay === "unknown") return step;
  // The relay may have lost its state with the power, or the box may have died between deciding a write and making
  // it: write the commanded state again. An open relay keeps the reason it was opened for.
  const relay = step.state.relay;
  const reasserted = switchRelay(step.state, relay, "restored_after_reboot", atMs, step.state.openReason);
  return { state: reasserted.state, effects: [...step.effects, ...reasserted.effects] };
}

function onReadback(state: CreditGuardState, observed: RelayState, atMs: number, config: CreditGuardConfig): CreditGuardStep {
  const write = state.lastWrite;
  if (state.relay === "unknown" || write === undefined) return unchanged(state);
  if (observed === state.relay) {
    if (write.status === "verified") return unchanged(state);
    return { state: { ...state, lastWrite: { ...write, status: "verified" } }, effects: [{ kind: "event", event: relayEvent(state.meterId, write, true) }] };
  }
  // Before writing the commanded state again, make sure it is still the right one: a friendly period may have
  // ended since, and retrying a "closed" whose cut is now due would close a relay without credit.
  const enforced = enforceRelay(state, atMs, config);
  const settled = enforced.state;
  const expected = settled.relay;
  if (enforced.effects.length > 0 || expected === "unknown") return enforced;
  const attempt = write.attempts + 1;
  const failed: RelayVerifyFailedEvent = {
    type: "relay.verify-failed",
    deviceId: state.meterId,
    at: isoInstant(atMs),
    expected,
    observed,
    reason: write.reason,
    attempt,
    ...optional("registerWh", write.registerWh),
    ...optional("grantSeq", write.grantSeq),
  };
  return {
    state: { ...settled, lastWrite: { ...write, attempts: attempt, status: "pending" } },
    effects: [
      { kind: "event", event: failed },
      { kind: "write-relay", state: expected, reason: write.reason, ...optional("registerWh", write.registerWh), attempt },
    ],
  };
}

function onUnverifiable(state: CreditGuardState): CreditGuardStep {
  const write = state.lastWrite;
  if (write?.status !== "pending") return unchanged(state);
  return { state: { ...state, lastWrite: { ...write, status: "unverifiable" } }, effects: [{ kind: "event", event: relayEvent(state.meterId, write, false) }] };
}

// ─── the rules ────────────────────────────────────────────────────────────────────────────────────────────────────

type CreditStatus = "none" | "unknown" | "available" | "exhausted";

function creditStatus(state: CreditGuardState): CreditStatus {
  if (state.grant === undefined) return "none";
  if (state.lastRegisterWh === undefined) return "unknown";
  return state.lastRegisterWh >= state.grant.limitWh ? "exhausted" : "available";
}

/** Bring the relay in line with the credit rules at `atMs`, then report any low-credit warning now due. */
function enforce(state: CreditGuardState, atMs: number, config: CreditGuardConfig): CreditGuardStep {
  const relayStep = enforceRelay(state, atMs, config);
  const warning = dueWarning(relayStep.state, atMs, config);
  if (warning === undefined) return relayStep;
  // The warning goes first: a farmer told "please buy power" as the cut happens at least learns why.
  return { state: { ...relayStep.state, warningsSent: warning.level }, effects: [warning, ...relayStep.effects] };
}

function enforceRelay(state: CreditGuardState, atMs: number, config: CreditGuardConfig): CreditGuardStep {
  const officerCut = state.relay === "open" && state.openReason === "officer_override";
  switch (creditStatus(state)) {
    case "none": {
      const wanted = config.noGrantPolicy;
      if (state.relay === wanted || officerCut) return unchanged(state);
      return switchRelay(state, wanted, wanted === "open" ? "credit_exhausted" : "credit_granted", atMs);
    }
    case "unknown":
      // A grant but no reading yet: the limit is on the register, so nothing can be decided.
      return unchanged(state);
    case "exhausted": {
      const friendly = state.grant !== undefined && inAnyFriendlyPeriod(state.grant.friendlyPeriods, atMs);
      const settled = { ...state, awaitingManualReconnect: false };
      if (friendly) {
        if (state.relay === "unknown") return switchRelay({ ...settled, cutDeferred: true }, "closed", "friendly_period", atMs);
        return unchanged({ ...settled, cutDeferred: state.relay === "closed" });
      }
      if (state.relay === "open") return unchanged({ ...settled, cutDeferred: false });
      return switchRelay({ ...settled, cutDeferred: false }, "open", "credit_exhausted", atMs);
    }
    case "available": {
      const settled = { ...state, cutDeferred: false };
      if (state.relay === "unknown") return switchRelay(settled, "closed", "credit_granted", atMs);
      if (state.relay === "closed" || officerCut) return unchanged(settled);
      if (state.grant?.reconnect === "manual") return unchanged({ ...settled, awaitingManualReconnect: true });
      return switchRelay({ ...settled, awaitingManualReconnect: false }, "closed", "credit_granted", atMs);
    }
  }
}

function dueWarning(state: CreditGuardState, atMs: number, config: CreditGuardConfig): Extract<CreditEffect, { kind: "warning" }> | undefined {
  if (state.grant === undefined || state.lastRegisterWh === undefined) return undefined;
  const remainingWh = state.grant.limitWh - state.lastRegisterWh;
  const [stage1Wh, stage2Wh] = state.grant.warnAtWh ?? config.warnAtWh;
  const reached = remainingWh <= stage2Wh ? 2 : remainingWh <= stage1Wh ? 1 : 0;
  if (reached <= state.warningsSent || reached === 0) return undefined;
  return { kind: "warning", level: reached, remainingWh, grantSeq: state.grant.grantSeq, atMs };
}

// ─── helpers ──────────────────────────────────────────────────────────────────────────────────────────────────────

function unchanged(state: CreditGuardState): CreditGuardStep {
  return { state, effects: [] };
}

/** Command the relay: new commanded state, a fresh pending write, and the write effect. */
function switchRelay(state: CreditGuardState, target: RelayState, reason: RelayReason, atMs: number, openReason: RelayReason | undefined = reason): CreditGuardStep {
  const write: RelayWrite = {
    state: target,
    reason,
    ...optional("registerWh", state.lastRegisterWh),
    ...optional("grantSeq", state.grant?.grantSeq),
    decidedAtMs: atMs,
    attempts: 1,
    status: "pending",
  };
  const { openReason: _previousOpenReason, ...rest } = state;
  const next: CreditGuardState = target === "open" ? { ...rest, relay: target, openReason: openReason ?? reason, lastWrite: write } : { ...rest, relay: target, lastWrite: write };
  return { state: next, effects: [{ kind: "write-relay", state: target, reason, ...optional("registerWh", write.registerWh), attempt: 1 }] };
}

/** `at` and `registerWh` are the decision's: the event ties the switching to the billing chain at that reading. */
function relayEvent(meterId: string, write: RelayWrite, verified: boolean): RelayEventDraft {
  return {
    type: write.state === "open" ? "relay.opened" : "relay.closed",
    deviceId: meterId,
    at: isoInstant(write.decidedAtMs),
    reason: write.reason,
    ...optional("registerWh", write.registerWh),
    ...optional("grantSeq", write.grantSeq),
    verified,
  };
}

/** `{ key: value }` when the value is defined, `{}` otherwise: exactOptionalPropertyTypes forbids `key: undefined`. */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: V });
}
