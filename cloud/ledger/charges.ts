// Prepaid charges from cumulative meter registers: chargesFor(state, inputs, tariffs) → { state, postings, held,
// ignored }, a pure step over plain JSON. It owns ARCHITECTURE.md invariant 2; the shell owns persistence (the new
// state and the postings in one transaction) and the postings' idempotent insert (by idempotencyKey).
//
// The formula. Per meter, E_s(t) is the energy attributed to tariff segment s (tariff.ts: one price of one tariff
// version, "t1@v2/peak") up to reading t, and the charge up to t is C(t) = Σ_s round(price_s × E_s(t)). A posting is
// C(t) minus what was already charged. Because E_s only grows and round() is monotone, no posting is ever negative;
// because C(t) depends only on E_s(t), a duplicated reading adds nothing and a lost one loses nothing — the next
// reading's register covers its energy.
//
// Attribution (a choice, documented here and tested): the energy between two consecutive applied readings is
// attributed to the segment in force at the LATER reading. The register is only known at reading instants, so any
// split inside an interval would be a guess about the load profile; the later reading is deterministic, known when
// the charge is made, and the only rule under which energy used from now on is priced at or after now — which is
// what lets grants.ts size a grant with maxPrice(tariffs, now). Error bound: only an interval that contains a tariff
// boundary (a time-of-use period edge or a new version) is misattributed, by at most that interval's energy, so the
// money error per boundary crossing is at most E_interval × |price_before − price_after|. For a 15 kW pump read every
// 15 minutes that is ≤ 3.75 kWh per crossing; it errs upwards at a valley→peak edge and downwards at peak→valley, so
// over a day of steady pumping the errors largely cancel. A lost reading merges two intervals (a bigger one); a
// reading's atMs is the edge's measurement clock, so clock skew shifts the boundary by the skew.
//
// Rounding: round half up per segment (energyCostFen "half-up", exact BigInt arithmetic). For every segment
// |round(price_s × E_s) − price_s × E_s| ≤ ½ fen, so the total charged differs from Σ_s price_s × E_s by at most
// ½ fen per segment — under one fen per segment, whatever the number of readings.
//
// Epochs. A meter's register history is a chain of epochs; epoch 0 starts at the explicit meter-installed event (the
// baseline: energy before it is not the farmer's), and each explicit meter-replaced or rollover event starts the
// next. Every epoch maps its register onto one continuous energy count: total = startTotalWh + (registerWh −
// startRegisterWh). A replacement ends the old epoch at oldFinalWh and starts the new one at newInitialWh; a rollover
// ends it at wrapWh and starts at 0. Events post nothing: the energy up to the end of the old epoch and into the new
// one is attributed, like any energy, at the next reading. So E continues across them and nothing is ever negative.
//
// What changes nothing (`ignored`): a reading whose registerSeq is not above the last applied one (a duplicate, a
// replay, or an older reading arriving late — the applied one already covers it), a reading of an earlier epoch, an
// untagged reading taken before the current epoch began (its energy is covered by the event's oldFinalWh / wrapWh),
// and a replayed event. What is `held` for review (no posting, state unchanged, may be resubmitted once resolved): a
// register below the last one with no explicit event, a reading of an epoch whose event has not arrived, a reading
// with no tariff in force, a segment whose price differs from the price it was charged at, an unknown meter, a
// malformed value, and an event that contradicts what was applied.

import { energyCostFen } from "../../protocols/units.js";
import { isMeterEvent, sameEvent, type ChargeInput, type MeterEvent, type MeterReading } from "./charge-inputs.js";
import { priceAt, type Tariff } from "./tariff.js";

// ─── state ────────────────────────────────────────────────────────────────────────────────────────────────────────

export interface EpochRecord {
  /** 0 from installation, +1 per replacement or rollover. */
  readonly epoch: number;
  /** The explicit event that began the epoch, verbatim (so a replay can be recognised). */
  readonly event: MeterEvent;
  /** The register value at which this epoch's energy starts (initialWh, newInitialWh, or 0 after a rollover). */
  readonly startRegisterWh: number;
  /** The continuous energy count, over all epochs, at startRegisterWh. */
  readonly startTotalWh: number;
}

export interface SegmentTotals {
  /** The price this segment has been charged at; a different price for the same segment is held, never re-priced. */
  readonly priceCentiFenPerKwh: number;
  /** E_s: energy attributed to the segment so far. */
  readonly energyWh: number;
  /** round(price × E_s) in fen: everything posted for the segment so far. */
  readonly chargedFen: number;
}

export interface MeterChargeState {
  readonly meterId: string;
  /** Never empty; the last one is the current epoch. */
  readonly epochs: readonly EpochRecord[];
  /** 0 before the first applied reading. */
  readonly lastRegisterSeq: number;
  /** The floor for the next reading of the current epoch: the last applied register, or the epoch's start. */
  readonly lastRegisterWh: number;
  /** When the last applied reading was taken, or the last event happened. */
  readonly lastAtMs: number;
  /** Continuous energy up to the last applied reading: Σ segments[s].energyWh. */
  readonly attributedWh: number;
  readonly segments: Readonly<Record<string, SegmentTotals>>;
}

export interface ChargeState {
  readonly meters: Readonly<Record<string, MeterChargeState>>;
}

export function emptyChargeState(): ChargeState {
  return { meters: {} };
}

// ─── results ──────────────────────────────────────────────────────────────────────────────────────────────────────

export interface ChargePosting {
  readonly kind: "charge";
  /** "charge/<meterId>/<registerSeq>": one reading yields at most one posting, so a replay is a no-op in the store too. */
  readonly idempotencyKey: string;
  readonly meterId: string;
  readonly registerSeq: number;
  readonly atMs: number;
  readonly epoch: number;
  readonly segmentKey: string;
  readonly priceCentiFenPerKwh: number;
  /** Energy this reading attributed to the segment (since the previous applied reading). */
  readonly energyWh: number;
  /** Always > 0: round(price × E_s after) − round(price × E_s before). */
  readonly amountFen: number;
  /** The segment's totals after this posting, for audit: segmentChargedFen = round(price × segmentEnergyWh). */
  readonly segmentEnergyWh: number;
  readonly segmentChargedFen: number;
}

export const HELD_REASONS = [
  "register-backwards",
  "unknown-epoch",
  "no-tariff",
  "tariff-changed",
  "unknown-meter",
  "malformed",
  "out-of-range",
  "already-installed",
  "conflicting-event",
  "event-before-last-reading",
  "event-below-last-register",
] as const;
export type HeldReason = (typeof HELD_REASONS)[number];

export const IGNORED_REASONS = ["stale-seq", "stale-epoch", "before-epoch-start", "duplicate-event"] as const;
export type IgnoredReason = (typeof IGNORED_REASONS)[number];

export interface HeldInput {
  readonly input: ChargeInput;
  readonly reason: HeldReason;
  readonly detail: string;
}

export interface IgnoredInput {
  readonly input: ChargeInput;
  readonly reason: IgnoredReason;
}

export interface ChargeResult {
  readonly state: ChargeState;
  readonly postings: readonly ChargePosting[];
  readonly held: readonly HeldInput[];
  readonly ignored: readonly IgnoredInput[];
}

export function chargeIdempotencyKey(meterId: string, registerSeq: number): string {
  // deviceIdSchema forbids '/', so the key is injective in (meterId, registerSeq).
  return `charge/${meterId}/${registerSeq}`;
}

// ─── the step ─────────────────────────────────────────────────────────────────────────────────────────────────────

type Outcome =
  | { readonly kind: "applied"; readonly meter: MeterChargeState; readonly posting?: ChargePosting }
  | { readonly kind: "held"; readonly reason: HeldReason; readonly detail: string }
  | { readonly kind: "ignored"; readonly reason: IgnoredReason };

function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

function currentEpoch(meter: MeterChargeState): EpochRecord {
  const epoch = meter.epochs[meter.epochs.length - 1];
  // The state is built only by this module, which never leaves epochs empty.
  if (epoch === undefined) throw new Error(`meter ${meter.meterId} has no epoch`);
  return epoch;
}

const held = (reason: HeldReason, detail: string): Outcome => ({ kind: "held", reason, detail });
const ignored = (reason: IgnoredReason): Outcome => ({ kind: "ignored", reason });
const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

function applyReading(meter: MeterChargeState | undefined, r: MeterReading, tariffs: readonly Tariff[]): Outcome {
  if (!isCount(r.registerWh) || !isCount(r.atMs) || !Number.isSafeInteger(r.registerSeq) || r.registerSeq < 1 || (r.epoch !== undefined && !isCount(r.epoch))) {
    return held("malformed", "registerSeq must be a positive integer; atMs, registerWh and epoch non-negative integers");
  }
  if (meter === undefined) return held("unknown-meter", `no meter-installed event for ${r.meterId}`);
  if (r.registerSeq <= meter.lastRegisterSeq) return ignored("stale-seq");

  const epoch = currentEpoch(meter);
  if (r.epoch !== undefined && r.epoch < epoch.epoch) return ignored("stale-epoch");
  if (r.epoch !== undefined && r.epoch > epoch.epoch) return held("unknown-epoch", `reading is in epoch ${r.epoch}; the ledger knows epochs up to ${epoch.epoch}`);
  if (r.epoch === undefined && epoch.epoch > 0 && r.atMs < epoch.event.atMs) return ignored("before-epoch-start");
  if (r.registerWh < meter.lastRegisterWh) {
    return held("register-backwards", `register ${r.registerWh} Wh is below ${meter.lastRegisterWh} Wh in epoch ${epoch.epoch} with no replacement or rollover event`);
  }

  const price = priceAt(tariffs, r.atMs);
  if (price === undefined) return held("no-tariff", `no tariff is in force at ${r.atMs}`);
  const segment = own(meter.segments, price.segmentKey);
  if (segment !== undefined && segment.priceCentiFenPerKwh !== price.priceCentiFenPerKwh) {
    return held("tariff-changed", `${price.segmentKey} was charged at ${segment.priceCentiFenPerKwh} and is now ${price.priceCentiFenPerKwh}; a published tariff version must not change`);
  }

  const totalWh = epoch.startTotalWh + (r.registerWh - epoch.startRegisterWh);
  const energyWh = totalWh - meter.attributedWh;
  const segmentEnergyWh = (segment?.energyWh ?? 0) + energyWh;
  if (!Number.isSafeInteger(totalWh) || !Number.isSafeInteger(segmentEnergyWh) || energyWh < 0) {
    return held("out-of-range", `energy ${totalWh} Wh is outside the safe integer range`);
  }
  const segmentChargedFen = energyCostFen(price.priceCentiFenPerKwh, segmentEnergyWh, "half-up").fen;
  const amountFen = segmentChargedFen - (segment?.chargedFen ?? 0);

  const next: MeterChargeState = {
    ...meter,
    lastRegisterSeq: r.registerSeq,
    lastRegisterWh: r.registerWh,
    lastAtMs: r.atMs,
    attributedWh: totalWh,
    segments:
      energyWh === 0
        ? meter.segments
        : { ...meter.segments, [price.segmentKey]: { priceCentiFenPerKwh: price.priceCentiFenPerKwh, energyWh: segmentEnergyWh, chargedFen: segmentChargedFen } },
  };
  if (amountFen === 0) return { kind: "applied", meter: next };
  const posting: ChargePosting = {
    kind: "charge",
    idempotencyKey: chargeIdempotencyKey(r.meterId, r.registerSeq),
    meterId: r.meterId,
    registerSeq: r.registerSeq,
    atMs: r.atMs,
    epoch: epoch.epoch,
    segmentKey: price.segmentKey,
    priceCentiFenPerKwh: price.priceCentiFenPerKwh,
    energyWh,
    amountFen,
    segmentEnergyWh,
    segmentChargedFen,
  };
  return { kind: "applied", meter: next, posting };
}

function applyEvent(meter: MeterChargeState | undefined, e: MeterEvent): Outcome {
  const values = e.type === "meter-installed" ? [e.atMs, e.initialWh] : e.type === "meter-replaced" ? [e.atMs, e.oldFinalWh, e.newInitialWh] : [e.atMs, e.wrapWh];
  if (!values.every(isCount) || (e.type === "rollover" && e.wrapWh < 1)) return held("malformed", "event values must be non-negative integers (wrapWh positive)");

  if (e.type === "meter-installed") {
    if (meter !== undefined) {
      const first = meter.epochs[0];
      return first !== undefined && sameEvent(first.event, e) ? ignored("duplicate-event") : held("already-installed", `${e.meterId} was installed already; a swap is a meter-replaced event`);
    }
    const installed: MeterChargeState = {
      meterId: e.meterId,
      epochs: [{ epoch: 0, event: e, startRegisterWh: e.initialWh, startTotalWh: 0 }],
      lastRegisterSeq: 0,
      lastRegisterWh: e.initialWh,
      lastAtMs: e.atMs,
      attributedWh: 0,
      segments: {},
    };
    return { kind: "applied", meter: installed };
  }

  if (meter === undefined) return held("unknown-meter", `no meter-installed event for ${e.meterId}`);
  if (meter.epochs.some((x) => sameEvent(x.event, e))) return ignored("duplicate-event");
  if (meter.epochs.some((x) => x.event.type === e.type && x.event.atMs === e.atMs)) {
    return held("conflicting-event", `a different ${e.type} at ${e.atMs} was applied already; correct it with a reviewed adjustment, not a second event`);
  }
  if (e.atMs < meter.lastAtMs) return held("event-before-last-reading", `the event at ${e.atMs} is before the last applied reading or event at ${meter.lastAtMs}`);

  const epoch = currentEpoch(meter);
  const endRegisterWh = e.type === "meter-replaced" ? e.oldFinalWh : e.wrapWh;
  // A replaced meter's final register may equal the last reading; a rollover modulus is above every value shown.
  const tooLow = e.type === "meter-replaced" ? endRegisterWh < meter.lastRegisterWh : endRegisterWh <= meter.lastRegisterWh;
  if (tooLow) return held("event-below-last-register", `the old epoch would end at ${endRegisterWh} Wh, below the last applied register ${meter.lastRegisterWh} Wh`);
  const startRegisterWh = e.type === "meter-replaced" ? e.newInitialWh : 0;
  const startTotalWh = epoch.startTotalWh + (endRegisterWh - epoch.startRegisterWh);
  if (!Number.isSafeInteger(startTotalWh)) return held("out-of-range", `energy ${startTotalWh} Wh is outside the safe integer range`);

  const next: MeterChargeState = {
    ...meter,
    epochs: [...meter.epochs, { epoch: epoch.epoch + 1, event: e, startRegisterWh, startTotalWh }],
    lastRegisterWh: startRegisterWh,
    lastAtMs: e.atMs,
  };
  return { kind: "applied", meter: next };
}

/**
 * Apply readings and meter events in the order given. Never throws on data: every input is applied, ignored or held.
 * The input state is not modified.
 */
export function chargesFor(state: ChargeState, inputs: readonly ChargeInput[], tariffs: readonly Tariff[]): ChargeResult {
  const meters: Record<string, MeterChargeState> = { ...state.meters };
  const postings: ChargePosting[] = [];
  const heldInputs: HeldInput[] = [];
  const ignoredInputs: IgnoredInput[] = [];
  for (const input of inputs) {
    const meter = own(meters, input.meterId);
    const outcome = isMeterEvent(input) ? applyEvent(meter, input) : applyReading(meter, input, tariffs);
    switch (outcome.kind) {
      case "applied":
        // defineProperty, not assignment: an id spelled "__proto__" must stay a key, never become a prototype.
        Object.defineProperty(meters, input.meterId, { value: outcome.meter, enumerable: true, writable: true, configurable: true });
        if (outcome.posting !== undefined) postings.push(outcome.posting);
        break;
      case "held":
        heldInputs.push({ input, reason: outcome.reason, detail: outcome.detail });
        break;
      case "ignored":
        ignoredInputs.push({ input, reason: outcome.reason });
        break;
    }
  }
  return { state: { meters }, postings, held: heldInputs, ignored: ignoredInputs };
}

/** Everything charged to a meter so far, in fen: Σ_s round(price_s × E_s). */
export function chargedFen(meter: MeterChargeState): number {
  return Object.values(meter.segments).reduce((sum, s) => sum + s.chargedFen, 0);
}
