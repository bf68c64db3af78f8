// The fire guard: one fire/smoke sensor's alarm decisions as a pure step function, fireGuard(state, input, config)
// → { state, effects }. It owns when an alarm is raised and cleared, and when a silent sensor becomes a monitoring
// gap (ARCHITECTURE.md invariants 6 and 7), and when a battery-powered sensor needs a new cell. Every alarm, gap and
// fault effect is flagged priority "alarm": the shell puts it on the alarm lane, ahead of every queued backlog. A low
// battery is maintenance, never fire (issue #6): its effect is flagged priority "event" and goes out with the events.
//
// Rules:
// - The device's own flags raise at once (smoke flag → device_flag, heat flag → heat_flag): the detector has
//   already confirmed by its own standard (EN 54-7 / GB 4715), and a second confirmation costs seconds a fire has.
// - Smoke density raises smoke_density after K consecutive samples at or above the threshold (a confirmation scan,
//   as Dryad's 1–3 minute one): a single dust or insect reading must not call out a crew.
// - A temperature rise of at least R °C/min raises temperature_rise. The rate is taken from the current sample
//   against each remembered sample between half a window and a whole window old, and the steepest counts: two
//   samples seconds apart would turn 0.1 °C of noise into a "rate", and a fire that starts late in the window
//   must not be averaged away by the flat part before it.
// - Alarms clear together, with hysteresis: M consecutive calm samples (no flag, density below the lower clear
//   threshold, no rise). A sample between the clear and the raise threshold is neither. Silence never clears an
//   alarm — a sensor that burned stops answering.
// - A sensor with no successful sample for `silentIntervals` poll intervals is a monitoring gap, reported once;
//   the first sample after it reports monitoring.restored.
// - A sample with the fault flag set still has its alarm flags honoured, but its measurements are not trusted:
//   they neither count towards nor break a smoke streak or a calm streak, and feed no temperature history.
// - Time that goes backwards (a Pi without an RTC stepping its clock) only resets the temperature history; samples
//   are never dropped for it, since a guard that ignores samples until the clock catches up would be blind.
// - Battery: battery.low once when a sample's battery voltage falls below batteryLowMv, battery.ok once when it rises
//   above batteryLowMv + batteryHysteresisMv. The hysteresis is because a lithium thionyl chloride cell's voltage sags
//   under the node's load pulses and in the night's cold and recovers at rest and in the sun: without it, a cell near
//   the threshold would report low and ok every day. A faulted sample's battery voltage still counts: the fault flag
//   is about the smoke chamber and the sensors, not the node's own supply measurement.

import type { AlarmEvent, GatewayEvent } from "../../protocols/mqtt/messages.js";
import { isoInstant } from "./local-time.js";

// ─── types ────────────────────────────────────────────────────────────────────────────────────────────────────────

export type AlarmCause = Extract<AlarmEvent, { type: "alarm.raised" | "alarm.cleared" }>["cause"];
type AlarmRaisedOrCleared = Extract<AlarmEvent, { type: "alarm.raised" | "alarm.cleared" }>;
export type MonitoringGapEvent = Extract<AlarmEvent, { type: "monitoring.gap" }>;

/**
 * Edge-local (not in gatewayEventSchema yet): the sensor answered again after a reported gap. It rides the alarm
 * lane like the gap it closes, so the pair stays in order; the shell maps it to the protocol (device.online, say).
 */
export interface MonitoringRestoredEvent {
  readonly type: "monitoring.restored";
  readonly deviceId: string;
  readonly at: string;
  /** The last successful sample before the gap (or when monitoring began, if there was none). */
  readonly silentSinceAt: string;
  /** When the gap was reported, so the cloud pairs this with its monitoring.gap. */
  readonly gapReportedAt: string;
}

export type FireEvent = AlarmRaisedOrCleared | MonitoringGapEvent | MonitoringRestoredEvent;
export type BatteryEvent = Extract<GatewayEvent, { type: "battery.low" | "battery.ok" }>;

export type FireEffect =
  | { readonly kind: "alarm"; readonly priority: "alarm"; readonly event: FireEvent }
  /** The sensor's fault flag changed: while it is set the sensor is not watching, which the command room must see. */
  | { readonly kind: "fault"; readonly priority: "alarm"; readonly deviceId: string; readonly at: string; readonly faulted: boolean }
  /** The battery crossed its threshold: maintenance, not an alarm, so it does not jump the queue. */
  | { readonly kind: "battery"; readonly priority: "event"; readonly event: BatteryEvent };

export type FireGuardInput =
  | {
      readonly type: "sample";
      readonly atMs: number;
      readonly smokeAlarmFlag?: boolean;
      readonly heatAlarmFlag?: boolean;
      readonly smokeDbPerM?: number;
      readonly temperatureC?: number;
      readonly faultFlag?: boolean;
      /** The node's battery voltage in mV (only from a battery point expressed in mV). */
      readonly batteryMv?: number;
    }
  | { readonly type: "poll-failed"; readonly atMs: number }
  /** Any clock tick from the shell, so silence is noticed even when the scheduler stops polling the sensor. */
  | { readonly type: "tick"; readonly atMs: number };

export interface ActiveAlarm {
  readonly alarmId: string;
  readonly cause: AlarmCause;
  readonly raisedAtMs: number;
}

export interface TemperaturePoint {
  readonly atMs: number;
  readonly temperatureC: number;
}

/** One sensor's guard state. Plain JSON, so the shell may persist it (alarms then survive a reboot). */
export interface FireGuardState {
  readonly deviceId: string;
  /** When monitoring of this sensor began: silence is counted from here until the first sample. */
  readonly watchSinceMs: number;
  readonly lastSampleAtMs?: number;
  /** At most one per cause. */
  readonly active: readonly ActiveAlarm[];
  readonly smokeStreak: number;
  readonly calmStreak: number;
  /** Oldest first; bounded by TEMPERATURE_HISTORY_MAX and the window. */
  readonly temperatures: readonly TemperaturePoint[];
  readonly gap?: { readonly silentSinceMs: number; readonly reportedAtMs: number };
  readonly faulted: boolean;
  /** A battery.low was reported and no battery.ok since (absent in states saved before batteries were watched). */
  readonly batteryLow?: boolean;
}

export interface FireGuardConfig {
  /** Raise threshold; EN 54-7 / GB 4715-2024 optical detectors respond at 0.05 dB/m. */
  readonly smokeThresholdDbPerM: number;
  /** Clear threshold, below the raise threshold (hysteresis). */
  readonly smokeClearDbPerM: number;
  /** Consecutive samples at or above the threshold before smoke_density is raised (≥ 1). */
  readonly consecutiveK: number;
  /** Consecutive calm samples before active alarms clear (≥ 1). */
  readonly clearM: number;
  readonly tempRiseCPerMin: number;
  readonly tempWindowMs: number;
  /** Poll intervals without a successful sample before a monitoring gap (≥ 1). */
  readonly silentIntervals: number;
  readonly pollIntervalMs: number;
  /** battery.low below this many mV (0: never). */
  readonly batteryLowMv: number;
  /** battery.ok only above batteryLowMv + this (hysteresis, see the header). */
  readonly batteryHysteresisMv: number;
}

export const FIRE_GUARD_DEFAULTS = {
  smokeThresholdDbPerM: 0.05,
  smokeClearDbPerM: 0.03,
  consecutiveK: 3,
  clearM: 5,
  // EN 54-5 class A1R rate-of-rise heat detectors respond to about 8 °C/min.
  tempRiseCPerMin: 8,
  tempWindowMs: 120_000,
  silentIntervals: 3,
  // A 3.6 V Li-SOCl2 cell (ER14505, ER26500: the usual primary cell of a remote sensor node) holds a flat 3.4..3.6 V
  // under load for nearly all of its life and falls off quickly at the end; below 3.3 V under load it has little
  // capacity left, which is weeks of warning to send someone up the hill, not months. The node's own lowBattery flag
  // (profiles/agri-fire-node.ts) uses the same 3.3 V.
  batteryLowMv: 3300,
  batteryHysteresisMv: 100,
} as const satisfies Omit<FireGuardConfig, "pollIntervalMs">;

/** The temperature history keeps at most this many points, spaced at least window / this apart. */
export const TEMPERATURE_HISTORY_MAX = 32;
/** messages.ts alarmRaisedOrClearedSchema bounds alarmId at 64 characters. */
export const ALARM_ID_MAX_CHARS = 64;
/** Absorbs float error in rates from 0.1 °C readings (33.3 − 25.3 is 7.999…98), far below any sensor's resolution. */
const RATE_EPSILON = 1e-9;

export interface FireGuardStep {
  readonly state: FireGuardState;
  readonly effects: readonly FireEffect[];
}

export function initialFireGuardState(deviceId: string, watchSinceMs: number): FireGuardState {
  return { deviceId, watchSinceMs, active: [], smokeStreak: 0, calmStreak: 0, temperatures: [], faulted: false };
}

// ─── the step function ────────────────────────────────────────────────────────────────────────────────────────────

export function fireGuard(state: FireGuardState, input: FireGuardInput, config: FireGuardConfig): FireGuardStep {
  switch (input.type) {
    case "sample":
      return onSample(state, input, config);
    case "poll-failed":
      // A failed poll says nothing about smoke, but a calm streak is a claim of calm and needs unbroken evidence.
      return checkSilence({ ...state, calmStreak: 0 }, input.atMs, config);
    case "tick":
      return checkSilence(state, input.atMs, config);
  }
}

function onSample(state: FireGuardState, sample: Extract<FireGuardInput, { type: "sample" }>, config: FireGuardConfig): FireGuardStep {
  const { atMs } = sample;
  const at = isoInstant(atMs);
  const raised: FireEffect[] = [];
  const others: FireEffect[] = [];

  const faulted = sample.faultFlag === true;
  if (faulted !== state.faulted) others.push({ kind: "fault", priority: "alarm", deviceId: state.deviceId, at, faulted });

  if (state.gap !== undefined) {
    others.push({
      kind: "alarm",
      priority: "alarm",
      event: { type: "monitoring.restored", deviceId: state.deviceId, at, silentSinceAt: isoInstant(state.gap.silentSinceMs), gapReportedAt: isoInstant(state.gap.reportedAtMs) },
    });
  }

  const smokeFlag = sample.smokeAlarmFlag === true;
  const heatFlag = sample.heatAlarmFlag === true;
  const density = faulted ? undefined : finite(sample.smokeDbPerM);
  const temperatureC = faulted ? undefined : finite(sample.temperatureC);

  const smokeStreak = density === undefined ? state.smokeStreak : density >= config.smokeThresholdDbPerM ? state.smokeStreak + 1 : 0;
  const history = trackTemperature(state.temperatures, atMs, temperatureC, config);
  const rising = history.risePerMin !== undefined && history.risePerMin + RATE_EPSILON >= config.tempRiseCPerMin;

  let active = state.active;
  const raise = (cause: AlarmCause, value?: number, threshold?: number): void => {
    if (active.some((a) => a.cause === cause)) return;
    const alarmId = alarmIdFor(state.deviceId, atMs, cause);
    active = [...active, { alarmId, cause, raisedAtMs: atMs }];
    const event: AlarmRaisedOrCleared = {
      type: "alarm.raised",
      deviceId: state.deviceId,
      cause,
      ...(value === undefined ? {} : { value }),
      ...(threshold === undefined ? {} : { threshold }),
      at,
      alarmId,
    };
    raised.push({ kind: "alarm", priority: "alarm", event });
  };
  if (smokeFlag) raise("device_flag");
  if (heatFlag) raise("heat_flag");
  if (density !== undefined && smokeStreak >= config.consecutiveK) raise("smoke_density", density, config.smokeThresholdDbPerM);
  if (rising && history.risePerMin !== undefined) raise("temperature_rise", history.risePerMin, config.tempRiseCPerMin);

  // Calm needs evidence: no flag up, and at least one trusted reading or flag, none of it alarming.
  const anyFlag = smokeFlag || heatFlag;
  const hasEvidence = sample.smokeAlarmFlag !== undefined || sample.heatAlarmFlag !== undefined || density !== undefined || temperatureC !== undefined;
  const calm = !anyFlag && !rising && hasEvidence && (density === undefined || density < config.smokeClearDbPerM);
  let calmStreak: number;
  if (active.length === 0 || anyFlag) calmStreak = 0;
  // A faulted sample without flags is no evidence either way: the streak stands still.
  else if (faulted) calmStreak = state.calmStreak;
  else calmStreak = calm ? state.calmStreak + 1 : 0;

  const cleared: FireEffect[] = [];
  let nextCalm = calmStreak;
  if (active.length > 0 && calmStreak >= config.clearM) {
    for (const alarm of active) {
      const event: AlarmRaisedOrCleared = {
        type: "alarm.cleared",
        deviceId: state.deviceId,
        cause: alarm.cause,
        ...(alarm.cause === "smoke_density" && density !== undefined ? { value: density, threshold: config.smokeClearDbPerM } : {}),
        at,
        alarmId: alarm.alarmId,
      };
      cleared.push({ kind: "alarm", priority: "alarm", event });
    }
    active = [];
    nextCalm = 0;
  }

  const battery = batteryStep(state, finite(sample.batteryMv), at, config);
  const { gap: _closedGap, ...rest } = state;
  return {
    state: { ...rest, lastSampleAtMs: atMs, active, smokeStreak, calmStreak: nextCalm, temperatures: history.points, faulted, ...battery.state },
    // Raises first: of everything in this step, they are what the command room must see soonest.
    effects: [...raised, ...cleared, ...others, ...battery.effects],
  };
}

function batteryStep(state: FireGuardState, batteryMv: number | undefined, at: string, config: FireGuardConfig): { state: Pick<FireGuardState, "batteryLow">; effects: readonly FireEffect[] } {
  const low = state.batteryLow === true;
  if (batteryMv === undefined) return { state: {}, effects: [] };
  // Whole mV: the protocol's batteryMv is an integer, and a scaled point (V ×0.001) may carry float noise.
  const mv = Math.max(0, Math.round(batteryMv));
  if (!low && mv < config.batteryLowMv) {
    return { state: { batteryLow: true }, effects: [{ kind: "battery", priority: "event", event: { type: "battery.low", deviceId: state.deviceId, at, batteryMv: mv, thresholdMv: config.batteryLowMv } }] };
  }
  const okAboveMv = config.batteryLowMv + config.batteryHysteresisMv;
  if (low && mv > okAboveMv) {
    return { state: { batteryLow: false }, effects: [{ kind: "battery", priority: "event", event: { type: "battery.ok", deviceId: state.deviceId, at, batteryMv: mv, thresholdMv: okAboveMv } }] };
  }
  return { state: {}, effects: [] };
}

function checkSilence(state: FireGuardState, atMs: number, config: FireGuardConfig): FireGuardStep {
  if (state.gap !== undefined) return { state, effects: [] };
  const silentSinceMs = state.lastSampleAtMs ?? state.watchSinceMs;
  const missedPolls = Math.floor((atMs - silentSinceMs) / config.pollIntervalMs);
  if (missedPolls < config.silentIntervals || missedPolls < 1) return { state, effects: [] };
  const event: MonitoringGapEvent = { type: "monitoring.gap", deviceId: state.deviceId, at: isoInstant(atMs), silentSinceAt: isoInstant(silentSinceMs), missedPolls };
  return { state: { ...state, gap: { silentSinceMs, reportedAtMs: atMs } }, effects: [{ kind: "alarm", priority: "alarm", event }] };
}

// ─── temperature history ──────────────────────────────────────────────────────────────────────────────────────────

function trackTemperature(
  points: readonly TemperaturePoint[],
  atMs: number,
  temperatureC: number | undefined,
  config: FireGuardConfig,
): { points: readonly TemperaturePoint[]; risePerMin?: number } {
  // Points from the future mean the clock stepped back: their ages are meaningless, so start over.
  const kept = points.some((p) => p.atMs > atMs) ? [] : points.filter((p) => atMs - p.atMs <= config.tempWindowMs);
  if (temperatureC === undefined) return { points: kept };

  const minSpanMs = config.tempWindowMs / 2;
  let risePerMin: number | undefined;
  for (const p of kept) {
    const spanMs = atMs - p.atMs;
    if (spanMs < minSpanMs || spanMs <= 0) continue;
    const rate = ((temperatureC - p.temperatureC) * 60_000) / spanMs;
    if (risePerMin === undefined || rate > risePerMin) risePerMin = rate;
  }

  const last = kept[kept.length - 1];
  const spacingMs = config.tempWindowMs / TEMPERATURE_HISTORY_MAX;
  const next = last === undefined || atMs - last.atMs >= spacingMs ? [...kept, { atMs, temperatureC }].slice(-TEMPERATURE_HISTORY_MAX) : kept;
  return risePerMin === undefined ? { points: next } : { points: next, risePerMin };
}

// ─── identifiers ──────────────────────────────────────────────────────────────────────────────────────────────────

/**
 * `${deviceId}-${atMs}-${cause}`: deterministic, so a replayed sample stream (or a re-run after a crash before the
 * state was saved) names the same alarm the same way and the cloud deduplicates it. When a long device id would
 * push it past 64 characters, the device id is shortened and an FNV-1a hash of the whole id keeps it unique.
 */
export function alarmIdFor(deviceId: string, atMs: number, cause: AlarmCause): string {
  const full = `${deviceId}-${atMs}-${cause}`;
  if (full.length <= ALARM_ID_MAX_CHARS) return full;
  const hash = fnv1a32(deviceId).toString(16).padStart(8, "0");
  const suffix = `~${hash}-${atMs}-${cause}`;
  return `${deviceId.slice(0, Math.max(0, ALARM_ID_MAX_CHARS - suffix.length))}${suffix}`;
}

/** FNV-1a, 32 bits, over UTF-16 code units (device ids are ASCII by schema). */
function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

function finite(value: number | undefined): number | undefined {
  return value !== undefined && Number.isFinite(value) ? value : undefined;
}
