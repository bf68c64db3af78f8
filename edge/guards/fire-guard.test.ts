import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alarmEventSchema, gatewayEventSchema } from "../../protocols/mqtt/messages.js";
import {
  ALARM_ID_MAX_CHARS,
  alarmIdFor,
  fireGuard,
  FIRE_GUARD_DEFAULTS,
  initialFireGuardState,
  type FireEffect,
  type FireEvent,
  type FireGuardConfig,
  type FireGuardInput,
  type FireGuardState,
} from "./fire-guard.js";

const DEVICE = "ridge-7";
const POLL_MS = 10_000;
const CONFIG: FireGuardConfig = { ...FIRE_GUARD_DEFAULTS, pollIntervalMs: POLL_MS };
const T0 = Date.parse("2026-03-20T13:00:00+08:00");

type Sample = Omit<Extract<FireGuardInput, { type: "sample" }>, "type" | "atMs">;
const CLEAN: Sample = { smokeAlarmFlag: false, heatAlarmFlag: false, smokeDbPerM: 0.01, temperatureC: 22, faultFlag: false };

/** One sample per poll interval, the i-th at T0 + (i + 1) × POLL_MS unless the sample says otherwise. */
function samples(list: readonly Sample[], from = T0): FireGuardInput[] {
  return list.map((s, i) => ({ type: "sample", atMs: from + (i + 1) * POLL_MS, ...CLEAN, ...s }));
}

function run(inputs: readonly FireGuardInput[], state: FireGuardState = initialFireGuardState(DEVICE, T0), config = CONFIG) {
  const effects: FireEffect[] = [];
  for (const input of inputs) {
    const step = fireGuard(state, input, config);
    state = step.state;
    effects.push(...step.effects);
  }
  return { state, effects };
}

const alarmEvents = (effects: readonly FireEffect[]): FireEvent[] => effects.flatMap((e) => (e.kind === "alarm" ? [e.event] : []));
const ofType = (effects: readonly FireEffect[], type: FireEvent["type"]) => alarmEvents(effects).filter((e) => e.type === type);
const smoke = (smokeDbPerM: number): Sample => ({ smokeDbPerM });
const repeat = <T,>(n: number, item: T): T[] => Array.from({ length: n }, () => item);

describe("fire guard: raising", () => {
  it("raises device_flag at once when the sensor raises its own smoke alarm, on the alarm lane", () => {
    const { effects, state } = run(samples([{ smokeAlarmFlag: true }]));
    const atMs = T0 + POLL_MS;
    expect(effects).toEqual([
      { kind: "alarm", priority: "alarm", event: { type: "alarm.raised", deviceId: DEVICE, cause: "device_flag", at: new Date(atMs).toISOString(), alarmId: `${DEVICE}-${atMs}-device_flag` } },
    ]);
    expect(state.active).toEqual([{ alarmId: `${DEVICE}-${atMs}-device_flag`, cause: "device_flag", raisedAtMs: atMs }]);
  });

  it("raises heat_flag at once when the sensor raises its heat alarm", () => {
    expect(ofType(run(samples([{ heatAlarmFlag: true }])).effects, "alarm.raised")).toMatchObject([{ cause: "heat_flag" }]);
  });

  it("raises a cause once while it stays active, however many samples repeat it", () => {
    expect(ofType(run(samples(repeat(10, { smokeAlarmFlag: true }))).effects, "alarm.raised")).toHaveLength(1);
  });

  it("raises smoke_density on the K-th consecutive sample at or above the threshold", () => {
    const twoAbove = run(samples([smoke(0.05), smoke(0.06)]));
    expect(twoAbove.effects).toEqual([]);
    const third = run(samples([smoke(0.07)], T0 + 2 * POLL_MS), twoAbove.state);
    expect(ofType(third.effects, "alarm.raised")).toMatchObject([{ cause: "smoke_density", value: 0.07, threshold: 0.05 }]);
  });

  it("does not raise smoke_density for K-1 high samples, a dip, then K-1 high samples", () => {
    const { effects, state } = run(samples([smoke(0.08), smoke(0.08), smoke(0.049), smoke(0.08), smoke(0.08)]));
    expect(effects).toEqual([]);
    expect(state.smokeStreak).toBe(2);
  });

  it("raises temperature_rise when the air warms at the configured rate over the window", () => {
    // 22 °C steady for two minutes, then +2 °C every 10 s (12 °C/min).
    const steady = repeat(12, { temperatureC: 22 });
    const rising = Array.from({ length: 12 }, (_, i) => ({ temperatureC: 22 + 2 * (i + 1) }));
    const raised = ofType(run(samples([...steady, ...rising])).effects, "alarm.raised");
    expect(raised).toMatchObject([{ cause: "temperature_rise", threshold: 8 }]);
    expect((raised[0] as { value: number }).value).toBeGreaterThanOrEqual(8);
  });

  it("does not raise temperature_rise for a sunny morning's slow warming", () => {
    // 2 °C/min for half an hour.
    const warming = Array.from({ length: 180 }, (_, i) => ({ temperatureC: 15 + (2 * (i + 1)) / 6 }));
    expect(run(samples(warming)).effects).toEqual([]);
  });

  it("does not turn a jump between two samples seconds apart into a rate", () => {
    const inputs: FireGuardInput[] = [
      { type: "sample", atMs: T0 + 1_000, ...CLEAN, temperatureC: 22 },
      { type: "sample", atMs: T0 + 3_000, ...CLEAN, temperatureC: 23 },
    ];
    expect(run(inputs).effects).toEqual([]);
  });

  it("raises a rise exactly at the threshold despite decimal readings (33.3 − 25.3 over a minute at 8 °C/min)", () => {
    const inputs: FireGuardInput[] = [
      { type: "sample", atMs: T0, ...CLEAN, temperatureC: 25.3 },
      { type: "sample", atMs: T0 + 60_000, ...CLEAN, temperatureC: 33.3 },
    ];
    expect(ofType(run(inputs).effects, "alarm.raised")).toMatchObject([{ cause: "temperature_rise" }]);
  });

  it("starts the temperature history over when the clock steps backwards, and keeps taking samples", () => {
    const before = run(samples(repeat(6, { temperatureC: 22 }))).state;
    const { state, effects } = run([{ type: "sample", atMs: T0 - 3_600_000, ...CLEAN, smokeAlarmFlag: true, temperatureC: 60 }], before);
    expect(state.temperatures).toEqual([{ atMs: T0 - 3_600_000, temperatureC: 60 }]);
    expect(ofType(effects, "alarm.raised")).toMatchObject([{ cause: "device_flag" }]);
  });

  it("keeps the temperature history bounded however fast the sensor is polled", () => {
    const fast: FireGuardInput[] = Array.from({ length: 2_000 }, (_, i) => ({ type: "sample", atMs: T0 + i * 100, ...CLEAN }));
    expect(run(fast).state.temperatures.length).toBeLessThanOrEqual(32);
  });
});

describe("fire guard: clearing", () => {
  function smokeAlarm(): FireGuardState {
    return run(samples(repeat(3, smoke(0.09)))).state;
  }
  const from = T0 + 3 * POLL_MS;

  it("clears after M consecutive calm samples, with the alarmId it was raised with", () => {
    const active = smokeAlarm();
    const four = run(samples(repeat(4, smoke(0.01)), from), active);
    expect(four.effects).toEqual([]);
    const fifth = run(samples([smoke(0.01)], from + 4 * POLL_MS), four.state);
    expect(ofType(fifth.effects, "alarm.cleared")).toEqual([
      { type: "alarm.cleared", deviceId: DEVICE, cause: "smoke_density", value: 0.01, threshold: 0.03, at: new Date(from + 5 * POLL_MS).toISOString(), alarmId: active.active[0]?.alarmId },
    ]);
    expect(fifth.state.active).toEqual([]);
  });

  it("holds the alarm while density sits between the clear and the raise thresholds", () => {
    const { effects, state } = run(samples(repeat(50, smoke(0.04)), from), smokeAlarm());
    expect(effects).toEqual([]);
    expect(state.active).toHaveLength(1);
  });

  it("restarts the calm count when one sample rises above the clear threshold", () => {
    const { effects } = run(samples([...repeat(4, smoke(0.01)), smoke(0.035), ...repeat(4, smoke(0.01))], from), smokeAlarm());
    expect(effects).toEqual([]);
  });

  it("holds an alarm while the device keeps its flag latched, whatever the density", () => {
    const { effects } = run(samples(repeat(20, { smokeAlarmFlag: true, smokeDbPerM: 0 })));
    expect(ofType(effects, "alarm.cleared")).toEqual([]);
  });

  it("clears every active cause together", () => {
    const both = run(samples([{ smokeAlarmFlag: true, heatAlarmFlag: true }])).state;
    const { effects } = run(samples(repeat(5, {}), T0 + POLL_MS), both);
    expect(ofType(effects, "alarm.cleared").map((e) => ("cause" in e ? e.cause : ""))).toEqual(["device_flag", "heat_flag"]);
  });

  it("never clears an alarm because the sensor went silent", () => {
    const active = smokeAlarm();
    const { state, effects } = run([{ type: "poll-failed", atMs: from + POLL_MS }, { type: "tick", atMs: from + 3_600_000 }], active);
    expect(ofType(effects, "alarm.cleared")).toEqual([]);
    expect(state.active).toHaveLength(1);
  });

  it("needs the calm streak unbroken by a failed poll", () => {
    const inputs: FireGuardInput[] = [...samples(repeat(4, smoke(0.01)), from), { type: "poll-failed", atMs: from + 45_000 }, ...samples([smoke(0.01)], from + 4 * POLL_MS)];
    expect(run(inputs, smokeAlarm()).effects).toEqual([]);
  });
});

describe("fire guard: monitoring gaps", () => {
  it("reports a monitoring gap after N silent poll intervals, once", () => {
    const answered = run(samples([{}])).state;
    const last = T0 + POLL_MS;
    const failures: FireGuardInput[] = [1, 2, 3, 4, 5].map((k) => ({ type: "poll-failed", atMs: last + k * POLL_MS }));
    const early = run(failures.slice(0, 2), answered);
    expect(early.effects).toEqual([]);
    const { effects } = run([...failures.slice(2), { type: "tick", atMs: last + 3_600_000 }], early.state);
    expect(effects).toEqual([
      {
        kind: "alarm",
        priority: "alarm",
        event: { type: "monitoring.gap", deviceId: DEVICE, at: new Date(last + 3 * POLL_MS).toISOString(), silentSinceAt: new Date(last).toISOString(), missedPolls: 3 },
      },
    ]);
  });

  it("notices silence from ticks alone when nothing polls the sensor any more", () => {
    const answered = run(samples([{}])).state;
    expect(ofType(run([{ type: "tick", atMs: T0 + 4 * POLL_MS }], answered).effects, "monitoring.gap")).toHaveLength(1);
  });

  it("counts a sensor that never answered as silent since monitoring began", () => {
    const { effects } = run([{ type: "tick", atMs: T0 + 3 * POLL_MS }]);
    expect(ofType(effects, "monitoring.gap")).toMatchObject([{ silentSinceAt: new Date(T0).toISOString(), missedPolls: 3 }]);
  });

  it("reports the sensor restored at its first sample after a gap, and a later silence as a new gap", () => {
    const gap = run([{ type: "tick", atMs: T0 + 5 * POLL_MS }]);
    const back = run(samples([{}], T0 + 5 * POLL_MS), gap.state);
    expect(ofType(back.effects, "monitoring.restored")).toEqual([
      { type: "monitoring.restored", deviceId: DEVICE, at: new Date(T0 + 6 * POLL_MS).toISOString(), silentSinceAt: new Date(T0).toISOString(), gapReportedAt: new Date(T0 + 5 * POLL_MS).toISOString() },
    ]);
    expect(back.state.gap).toBeUndefined();
    const again = run([{ type: "tick", atMs: T0 + 9 * POLL_MS }], back.state);
    expect(ofType(again.effects, "monitoring.gap")).toHaveLength(1);
  });

  it("raises an alarm that arrives with the first sample after a gap ahead of the restore", () => {
    const gap = run([{ type: "tick", atMs: T0 + 5 * POLL_MS }]).state;
    const { effects } = run(samples([{ smokeAlarmFlag: true }], T0 + 5 * POLL_MS), gap);
    expect(alarmEvents(effects).map((e) => e.type)).toEqual(["alarm.raised", "monitoring.restored"]);
  });
});

describe("fire guard: faults and identifiers", () => {
  it("reports the fault flag when it changes and distrusts the measurements it comes with", () => {
    const { effects, state } = run(samples([{ faultFlag: true, smokeDbPerM: 0.5 }, { faultFlag: true, smokeDbPerM: 0.5 }, { faultFlag: true, smokeDbPerM: 0.5 }, { faultFlag: false }]));
    expect(effects.filter((e) => e.kind === "fault").map((e) => (e.kind === "fault" ? e.faulted : undefined))).toEqual([true, false]);
    expect(ofType(effects, "alarm.raised")).toEqual([]);
    expect(state.smokeStreak).toBe(0);
  });

  it("still raises a faulted sensor's own alarm flag at once", () => {
    expect(ofType(run(samples([{ faultFlag: true, smokeAlarmFlag: true }])).effects, "alarm.raised")).toMatchObject([{ cause: "device_flag" }]);
  });

  it("names an alarm deterministically, within the protocol's 64 characters even for a long device id", () => {
    expect(alarmIdFor("ridge-7", 1_774_000_000_000, "smoke_density")).toBe("ridge-7-1774000000000-smoke_density");
    const long = "x".repeat(64);
    const id = alarmIdFor(long, 1_774_000_000_000, "temperature_rise");
    expect(id.length).toBe(ALARM_ID_MAX_CHARS);
    expect(id).toBe(alarmIdFor(long, 1_774_000_000_000, "temperature_rise"));
    expect(id).not.toBe(alarmIdFor(`${"x".repeat(63)}y`, 1_774_000_000_000, "temperature_rise"));
  });

  it("emits raised, cleared and gap events that the protocol's alarm schema accepts", () => {
    const { effects } = run([...samples([...repeat(3, { smokeAlarmFlag: true, smokeDbPerM: 0.07, temperatureC: 80 }), ...repeat(5, {})]), { type: "tick", atMs: T0 + 20 * POLL_MS }]);
    const protocolEvents = alarmEvents(effects).filter((e) => e.type !== "monitoring.restored");
    expect(protocolEvents.map((e) => e.type)).toEqual(["alarm.raised", "alarm.raised", "alarm.cleared", "alarm.cleared", "monitoring.gap"]);
    for (const e of protocolEvents) expect(alarmEventSchema.safeParse(e).success).toBe(true);
  });
});

describe("fire guard: battery", () => {
  const batteryEvents = (effects: readonly FireEffect[]) => effects.flatMap((e) => (e.kind === "battery" ? [e] : []));

  it("reports battery.low once, on the events lane, when the battery falls below the threshold", () => {
    const { effects, state } = run(samples([{ batteryMv: 3400 }, { batteryMv: 3300 }, { batteryMv: 3299 }, { batteryMv: 3250 }, { batteryMv: 3200 }]));
    const atMs = T0 + 3 * POLL_MS;
    expect(batteryEvents(effects)).toEqual([
      { kind: "battery", priority: "event", event: { type: "battery.low", deviceId: DEVICE, at: new Date(atMs).toISOString(), batteryMv: 3299, thresholdMv: 3300 } },
    ]);
    expect(state.batteryLow).toBe(true);
  });

  it("reports battery.ok only once the battery rises above the threshold plus the hysteresis", () => {
    const { effects, state } = run(samples([{ batteryMv: 3290 }, { batteryMv: 3350 }, { batteryMv: 3400 }, { batteryMv: 3290 }, { batteryMv: 3401 }, { batteryMv: 3600 }]));
    expect(batteryEvents(effects).map((e) => [e.event.type, e.event.batteryMv, e.event.thresholdMv])).toEqual([
      ["battery.low", 3290, 3300],
      ["battery.ok", 3401, 3400],
    ]);
    expect(state.batteryLow).toBe(false);
  });

  it("never raises, clears or breaks a fire alarm because of the battery", () => {
    const { effects, state } = run(samples([{ smokeAlarmFlag: true, batteryMv: 3000 }, { smokeAlarmFlag: true, batteryMv: 3000 }]));
    expect(ofType(effects, "alarm.raised")).toMatchObject([{ cause: "device_flag" }]);
    expect(state.active).toHaveLength(1);
    expect(batteryEvents(effects)).toHaveLength(1);
  });

  it("honours the battery of a faulted sample: the fault is the chamber's, not the supply's", () => {
    expect(batteryEvents(run(samples([{ faultFlag: true, batteryMv: 3100 }])).effects)).toMatchObject([{ event: { type: "battery.low", batteryMv: 3100 } }]);
  });

  it("uses the configured threshold, and reports nothing at threshold 0", () => {
    expect(batteryEvents(run(samples([{ batteryMv: 3450 }]), undefined, { ...CONFIG, batteryLowMv: 3500 }).effects)).toMatchObject([{ event: { type: "battery.low", thresholdMv: 3500 } }]);
    expect(batteryEvents(run(samples([{ batteryMv: 0 }]), undefined, { ...CONFIG, batteryLowMv: 0 }).effects)).toEqual([]);
  });

  it("ignores a sample without a battery reading or with a non-finite one", () => {
    const low = run(samples([{ batteryMv: 3000 }])).state;
    expect(batteryEvents(run(samples([{}, { batteryMv: Number.NaN }, { batteryMv: Number.POSITIVE_INFINITY }], T0 + POLL_MS), low).effects)).toEqual([]);
  });

  it("does not repeat battery.low after a reboot that restored a state saved as JSON", () => {
    const saved = JSON.parse(JSON.stringify(run(samples([{ batteryMv: 3000 }])).state)) as FireGuardState;
    expect(batteryEvents(run(samples([{ batteryMv: 2990 }], T0 + POLL_MS), saved).effects)).toEqual([]);
  });

  it("treats a state saved before batteries were watched as not low", () => {
    const { batteryLow: _absent, ...older } = run(samples([{}])).state;
    expect(batteryEvents(run(samples([{ batteryMv: 3000 }], T0 + POLL_MS), older).effects)).toHaveLength(1);
  });

  it("emits battery events that the protocol's event schema accepts and its alarm lane refuses", () => {
    const { effects } = run(samples([{ batteryMv: 3012.6 }, { batteryMv: 3900 }]));
    const events = batteryEvents(effects).map((e) => e.event);
    expect(events.map((e) => e.type)).toEqual(["battery.low", "battery.ok"]);
    expect(events[0]?.batteryMv).toBe(3013);
    for (const e of events) {
      expect(gatewayEventSchema.safeParse(e).success).toBe(true);
      expect(alarmEventSchema.safeParse(e).success).toBe(false);
    }
  });
});

// ─── properties ───────────────────────────────────────────────────────────────────────────────────────────────────

const sampleArb: fc.Arbitrary<Sample> = fc.record(
  {
    smokeAlarmFlag: fc.boolean(),
    heatAlarmFlag: fc.boolean(),
    smokeDbPerM: fc.oneof(fc.constantFrom(0, 0.02, 0.03, 0.04, 0.05, 0.09), fc.double({ min: 0, max: 0.2, noNaN: true })),
    temperatureC: fc.integer({ min: -100, max: 900 }).map((n) => n / 10),
    faultFlag: fc.boolean(),
  },
  { requiredKeys: [] },
);
const inputArb = (): fc.Arbitrary<FireGuardInput[]> =>
  fc.array(fc.tuple(fc.integer({ min: 0, max: 4 * POLL_MS }), fc.oneof({ weight: 6, arbitrary: sampleArb }, { weight: 1, arbitrary: fc.constant("poll-failed" as const) })), { maxLength: 80 }).map((list) => {
    let atMs = T0;
    return list.map(([afterMs, s]): FireGuardInput => {
      atMs += afterMs;
      return s === "poll-failed" ? { type: "poll-failed", atMs } : { type: "sample", atMs, ...s };
    });
  });

describe("fire guard: properties", () => {
  it("pairs every clear with an earlier raise and never has two active alarms of one cause", () => {
    fc.assert(
      fc.property(inputArb(), (inputs) => {
        let state = initialFireGuardState(DEVICE, T0);
        const open = new Set<string>();
        for (const input of inputs) {
          const step = fireGuard(state, input, CONFIG);
          state = step.state;
          for (const e of alarmEvents(step.effects)) {
            if (e.type === "alarm.raised") {
              expect(open.has(e.alarmId)).toBe(false);
              open.add(e.alarmId);
            }
            if (e.type === "alarm.cleared") expect(open.delete(e.alarmId)).toBe(true);
          }
          expect(new Set(state.active.map((a) => a.cause)).size).toBe(state.active.length);
          expect(new Set(state.active.map((a) => a.alarmId))).toEqual(open);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("never raises smoke_density without K consecutive trusted samples at or above the threshold", () => {
    fc.assert(
      fc.property(inputArb(), (inputs) => {
        let state = initialFireGuardState(DEVICE, T0);
        let streak = 0;
        for (const input of inputs) {
          if (input.type === "sample" && input.faultFlag !== true && input.smokeDbPerM !== undefined) {
            streak = input.smokeDbPerM >= CONFIG.smokeThresholdDbPerM ? streak + 1 : 0;
          }
          const step = fireGuard(state, input, CONFIG);
          state = step.state;
          const raisedSmoke = alarmEvents(step.effects).some((e) => e.type === "alarm.raised" && e.cause === "smoke_density");
          if (raisedSmoke) expect(streak).toBeGreaterThanOrEqual(CONFIG.consecutiveK);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("reports at most one gap per silence, and a restore only after a gap", () => {
    fc.assert(
      fc.property(inputArb(), (inputs) => {
        let state = initialFireGuardState(DEVICE, T0);
        let inGap = false;
        for (const input of inputs) {
          const step = fireGuard(state, input, CONFIG);
          state = step.state;
          for (const e of alarmEvents(step.effects)) {
            if (e.type === "monitoring.gap") {
              expect(inGap).toBe(false);
              inGap = true;
            }
            if (e.type === "monitoring.restored") {
              expect(inGap).toBe(true);
              inGap = false;
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
