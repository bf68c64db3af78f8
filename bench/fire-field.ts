// The forest-fire field that alarm-latency.ts (gateway → an MQTT subscriber) and alerts.ts (gateway → the real
// cloud → an SSE client) both measure, so the two benches time the same thing the same way: one smoke node and
// seven meters on one simulated bus, polled every POLL_MS by a gateway in a child process; a telemetry backlog written
// into the gateway's outbox before it starts (as after an outage); the simulator-side stamp of every read of the node;
// the flag flips at phases spread evenly over the poll interval in a seeded shuffled order (so the phase is not tied
// to how much backlog is left); and the percentile summary the reports print.

import { join } from "node:path";
import type { OutboxMessage } from "../edge/outbox/outbox.js";
import { openSqliteOutbox } from "../edge/outbox/sqlite-outbox.js";
import { Field } from "../firmware-sim/field.js";
import { FireSensorModel } from "../firmware-sim/models/fire-sensor.js";
import { seededRandom } from "../firmware-sim/models/random.js";
import { parseScenario } from "../firmware-sim/scenario.js";
import { formatTopic } from "../protocols/mqtt/topics.js";

export const POLL_MS = 1000;
export const FIRE_ID = "fire-1";
const FIRE_UNIT = 1;
const PREFILL_BATCH = 10_000;
const METERS = ["eastron-sdm120", "eastron-sdm630-v2", "chint-dtsu666", "chint-ddsu666", "hiking-dds238-2-zn", "eastron-sdm120", "chint-dtsu666-4000"] as const;

export const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

/** p50, p99 and max of `values`, and every value in trial order rounded to `digits` (for a report's note). */
export function summary(values: readonly number[], digits: number): { p50: number; p99: number; max: number; all: string } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN, all: values.map((v) => round(v, digits)).join(", ") };
}

/** The simulated field (not started yet), its clock at real time. */
export function fireField(name: string, seed: number): Field {
  return new Field(
    parseScenario({
      name,
      seed,
      clock: { speed: 1, tickMs: 100 },
      buses: [{ id: "ridge", tcp: { port: 0 } }],
      devices: [
        { id: FIRE_ID, bus: "ridge", unit: FIRE_UNIT, profile: "agri-fire-node", fire: { smokeNoiseDbPerM: 0.001 } },
        ...METERS.map((profile, i) => ({ id: `meter-${i + 2}`, bus: "ridge", unit: i + 2, profile, meter: { loads: [{ kind: "constant" as const, watts: 800 + i * 300 }], initialImportWh: 50_000 } })),
      ],
    }),
    undefined,
    { autoTick: true },
  );
}

// A realistic telemetry batch: three samples of one of the field's meters, about 400 bytes of JSON (as in bench/outbox.ts).
function telemetry(gatewayId: string, i: number): OutboxMessage {
  const at = new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString();
  const sample = (pointId: string, role: string, value: number, unit: string): object => ({ deviceId: `meter-${(i % 7) + 2}`, pointId, role, value, unit, at });
  return {
    topicName: "telemetry",
    topic: formatTopic("telemetry", { gatewayId }),
    payload: { v: 1, gatewayId, sentAt: at, samples: [sample("voltage", "voltage", 229.4 + (i % 7) / 10, "V"), sample("current", "current", 3.2, "A"), sample("activePower", "active_power", 734, "W")] },
    priority: "telemetry",
  };
}

/** Writes `backlog` telemetry messages into the outbox at `path`, before the gateway (and its uplink) starts. */
export function prefillOutbox(path: string, gatewayId: string, backlog: number): void {
  const prefill = openSqliteOutbox({ path, maxBytes: 256 << 20, maxCount: 1_000_000, synchronous: "NORMAL" });
  for (let b = 0; b < backlog / PREFILL_BATCH; b++) prefill.appendMany(Array.from({ length: PREFILL_BATCH }, (_, k) => telemetry(gatewayId, b * PREFILL_BATCH + k)));
  prefill.close();
}

/** The gateway's config (for startEdgeChild) polling the whole field every POLL_MS, its outbox at `dir`/outbox.db. */
export function fireEdgeConfig(o: { gatewayId: string; password: string; brokerUrl: string; field: Field; dir: string }): unknown {
  return {
    gateway: { id: o.gatewayId, password: o.password },
    broker: { url: o.brokerUrl, reconnectMinMs: 200, reconnectMaxMs: 1000 },
    buses: [{ id: "ridge", tcp: { host: "127.0.0.1", port: o.field.requireBus("ridge").tcp?.port ?? 0 }, timeoutMs: 500 }],
    devices: [
      { id: FIRE_ID, bus: "ridge", unit: FIRE_UNIT, profile: "agri-fire-node", role: "fire-sensor", pollIntervalMs: POLL_MS, fire: { clearM: 1 } },
      ...METERS.map((profile, i) => ({ id: `meter-${i + 2}`, bus: "ridge", unit: i + 2, profile, role: "meter", pollIntervalMs: POLL_MS })),
    ],
    outbox: { path: outboxPath(o.dir) },
    statePath: join(o.dir, "state.db"),
    status: { port: 0 },
  };
}

export const outboxPath = (dir: string): string => join(dir, "outbox.db");

export interface FireReads {
  /** performance.now() of every read of the node's flags (FC 02), answered by the simulator. */
  readonly flagReads: readonly number[];
  /** The same for its measurements (FC 04), the poll's next read after the flags. */
  readonly measurementReads: readonly number[];
  /** Resolves at the next read of the flags. */
  readonly nextFlagRead: () => Promise<void>;
}

/** Stamps, on the simulator's side, every read the gateway makes of the fire node. */
export function watchFireReads(field: Field): FireReads {
  const flagReads: number[] = [];
  const measurementReads: number[] = [];
  const bus = field.requireBus("ridge").bus;
  const transact = bus.transact.bind(bus);
  let onFlagRead: (() => void) | undefined;
  bus.transact = (unitId, pdu) => {
    if (unitId === FIRE_UNIT && pdu[0] === 2) {
      flagReads.push(performance.now());
      onFlagRead?.();
    }
    if (unitId === FIRE_UNIT && pdu[0] === 4) measurementReads.push(performance.now());
    return transact(unitId, pdu);
  };
  const nextFlagRead = (): Promise<void> =>
    new Promise<void>((resolve) => {
      onFlagRead = () => {
        onFlagRead = undefined;
        resolve();
      };
    });
  return { flagReads, measurementReads, nextFlagRead };
}

/** Sets or clears the node's smoke flag, published into its register bank now rather than at the next tick. */
export function smokeFlag(field: Field): (on: boolean) => void {
  const fire = field.requireDevice(FIRE_ID);
  if (!(fire instanceof FireSensorModel)) throw new Error(`${FIRE_ID} is not a fire sensor`);
  return (on) => {
    fire.smokeAlarm = on;
    fire.step(0, field.simNowMs);
  };
}

/** `trials` delays after a read of the flags, at (k + ½)/trials of the poll interval, in a seeded shuffled order. */
export function flipPhases(trials: number, seed: number): number[] {
  const random = seededRandom(seed);
  return Array.from({ length: trials }, (_, i) => ((i + 0.5) / trials) * POLL_MS)
    .map((phase) => ({ phase, key: random() }))
    .sort((a, b) => a.key - b.key)
    .map((x) => x.phase);
}
