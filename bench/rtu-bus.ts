// RTU bus throughput against the line's physics: the edge's BusEngine + RtuTransport (modbus-serial's buffered RTU
// port over serialport) polling one simulated SDM120 by a 10-register plan back to back, on a pty whose far side
// answers at the true frame time of 9600 baud 8N1 (the simulator's lineTiming, turnaround 0). The physical limit is
// rtuTransactionLimitPerSecond for the same frame sizes (8-byte request, 25-byte answer, two 3.5-character
// silences). A raw master on the same pty (write the request, read the answer, nothing else) is the peer that
// shows what the simulator and the pty cost by themselves, and the simulator's own clock splits the gap into
// "master turnaround beyond the silence" and "answer written late by the simulator's timer".

import { closeSync, constants as fsConstants, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tty from "node:tty";
import { Field } from "../firmware-sim/field.js";
import { parseScenario } from "../firmware-sim/scenario.js";
import { BusEngine, type PolledDevice } from "../edge/modbus/bus-engine.js";
import { planReads } from "../edge/modbus/read-planner.js";
import { RtuTransport } from "../edge/modbus/rtu-transport.js";
import { encodeRtuFrame, frameTimeMs, interFrameSilenceMs, rtuReadFrameSizes, rtuTransactionLimitPerSecond, type SerialLine } from "../protocols/modbus/frames.js";
import { encodeRequest } from "../protocols/modbus/pdu.js";
import { eastronSdm120 } from "../protocols/profiles/eastron-sdm120.js";
import type { Point } from "../protocols/profiles/schema.js";
import { report } from "./report.js";

const LINE: SerialLine = { baud: 9600, parity: "none", stopBits: 1 };
const REGISTERS = 10;
const ENGINE_MS = 8000;
const RAW_MS = 3000;
const WARMUP_MS = 500;

const round = (x: number, digits = 0): number => Number(x.toFixed(digits));

/** What the simulator saw: when each request arrived and when each answer was handed to the pty. */
interface SimTrace {
  arrivals: number[];
  writes: number[];
}

function instrument(field: Field, busId: string): SimTrace {
  const runtime = field.requireBus(busId);
  const trace: SimTrace = { arrivals: [], writes: [] };
  const bus = runtime.bus;
  const transact = bus.transact.bind(bus);
  bus.transact = (unitId, pdu) => {
    trace.arrivals.push(performance.now());
    return transact(unitId, pdu);
  };
  const pty = runtime.pty;
  if (!pty) throw new Error(`bus ${busId} has no pty`);
  const write = pty.write.bind(pty);
  pty.write = (bytes) => {
    trace.writes.push(performance.now());
    write(bytes);
  };
  return trace;
}

/**
 * Where a window of transactions lost time against the line model. For transaction i the simulator schedules the
 * answer's last byte at max(arrival_i, busyUntil_{i-1}) + request + silence + answer; anything after that is timer
 * lateness. The next request is free (no line time lost) when it arrives within the silence after that last byte.
 */
function analyse(trace: SimTrace, fromMs: number, toMs: number): { timerLateMs: number; masterTurnaroundMs: number; lostToMasterMs: number; cycleMs: number } {
  const { request, response } = rtuReadFrameSizes(4, REGISTERS);
  const silence = interFrameSilenceMs(LINE);
  const serve = frameTimeMs(request, LINE) + silence + frameTimeMs(response, LINE);
  let busyUntil = 0;
  let late = 0;
  let turnaround = 0;
  let lost = 0;
  let cycles = 0;
  let n = 0;
  const count = Math.min(trace.arrivals.length, trace.writes.length);
  for (let i = 0; i < count; i++) {
    const arrival = trace.arrivals[i] as number;
    const written = trace.writes[i] as number;
    const scheduled = Math.max(arrival, busyUntil) + serve;
    busyUntil = scheduled + silence;
    const next = trace.arrivals[i + 1];
    if (arrival < fromMs || arrival > toMs || next === undefined) continue;
    n++;
    late += written - scheduled;
    turnaround += next - written;
    lost += Math.max(0, next - (scheduled + silence));
    cycles += next - arrival;
  }
  const d = Math.max(1, n);
  return { timerLateMs: late / d, masterTurnaroundMs: turnaround / d, lostToMasterMs: lost / d, cycleMs: cycles / d };
}

/** Sequential reads on the pty with nothing but a read and a write in between. */
async function rawMaster(path: string, request: Uint8Array, answerBytes: number, durationMs: number): Promise<number> {
  const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_NOCTTY);
  const reader = new tty.ReadStream(fd);
  reader.setRawMode(true);
  reader.on("error", () => undefined);
  let done = 0;
  let pending = 0;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    reader.on("data", (chunk: Buffer) => {
      pending += chunk.length;
      if (pending < answerBytes) return;
      pending -= answerBytes;
      done++;
      if (performance.now() - start < durationMs) writeSync(fd, request);
      else resolve();
    });
    writeSync(fd, request);
  });
  const seconds = (performance.now() - start) / 1000;
  reader.destroy();
  closeSync(fd);
  return done / seconds;
}

export async function rtuBus(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "agri-rtu-bench-"));
  const path = join(dir, "ttySIM0");
  const field = new Field(
    parseScenario({
      name: "rtu-bus-bench",
      buses: [{ id: "line", rtu: { path, baud: LINE.baud, parity: LINE.parity, stopBits: LINE.stopBits, lineTiming: true, turnaroundMs: 0 } }],
      devices: [{ id: "sdm-1", bus: "line", unit: 1, profile: eastronSdm120.id, meter: { loads: [{ kind: "constant", watts: 1200 }] } }],
    }),
    undefined,
    { autoTick: false },
  );
  await field.start();
  try {
    const trace = instrument(field, "line");
    const limit = rtuTransactionLimitPerSecond(4, REGISTERS, LINE);

    // Five f32 values in registers 0..9: the planner makes one FC 04 read of 10 registers from them.
    const voltage = eastronSdm120.points.find((p) => p.id === "voltage") as Point;
    const points: Point[] = Array.from({ length: REGISTERS / 2 }, (_, i) => ({ ...voltage, id: `value${i}`, address: 2 * i }));
    const plan = planReads(eastronSdm120, points);
    if (plan.length !== 1 || plan[0]?.quantity !== REGISTERS) throw new Error(`expected one ${REGISTERS}-register read, planned ${JSON.stringify(plan.map((r) => [r.fc, r.address, r.quantity]))}`);
    const device: PolledDevice = { id: "sdm-1", unitId: 1, profile: eastronSdm120, priority: "meter", pollIntervalMs: 0, plan };

    let polls = 0;
    let failures = 0;
    const engine = new BusEngine(
      new RtuTransport({ path, baud: LINE.baud, parity: LINE.parity, stopBits: LINE.stopBits }),
      { busId: "line", timeoutMs: 500, attempts: 1, retryBackoffMs: 0, health: { offlineAfterFailures: 3, offlinePollMaxMs: 60_000 } },
      {
        onReadings: () => void polls++,
        onPollFailed: () => void failures++,
        onHealthChange: () => undefined,
      },
    );
    engine.addDevice(device);
    engine.start();
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    const t0 = performance.now();
    const okBefore = polls;
    await new Promise((r) => setTimeout(r, ENGINE_MS));
    const t1 = performance.now();
    const okDuring = polls - okBefore;
    await engine.stop();
    const engineRate = (okDuring / (t1 - t0)) * 1000;
    const engineSplit = analyse(trace, t0, t1);

    // The peer: a raw master on the same pty.
    trace.arrivals.length = 0;
    trace.writes.length = 0;
    const request = encodeRtuFrame(1, encodeRequest({ fc: 4, address: 0, quantity: REGISTERS }));
    const { response } = rtuReadFrameSizes(4, REGISTERS);
    const r0 = performance.now();
    const rawRate = await rawMaster(path, request, response, RAW_MS);
    const rawSplit = analyse(trace, r0 + 200, performance.now());

    const note = `FC 04 × ${REGISTERS} registers at ${LINE.baud} 8N1, turnaround 0; physical limit ${round(limit, 2)} txn/s (${round(1000 / limit, 2)} ms each)`;
    report({ bench: "rtu-bus-transactions", value: round(engineRate, 2), unit: "txn/s", better: "higher", note: `BusEngine + RtuTransport, ${okDuring} polls in ${round((t1 - t0) / 1000, 1)} s, ${failures} failed; ${note}` });
    report({ bench: "rtu-bus-physical-limit", value: round(limit, 2), unit: "txn/s", better: "higher", note: "rtuTransactionLimitPerSecond(4, 10, 9600 8N1)" });
    report({ bench: "rtu-bus-utilisation", value: round(engineRate / limit, 3), unit: "ratio", goal: 0.9, better: "higher", note: `edge master: transactions/s over the physical limit; ${note}` });
    report({ bench: "rtu-bus-raw-master-utilisation", value: round(rawRate / limit, 3), unit: "ratio", better: "higher", note: `peer: a bare write/read master on the same pty reached ${round(rawRate, 2)} txn/s` });
    report({ bench: "rtu-bus-master-turnaround", value: round(engineSplit.masterTurnaroundMs, 2), unit: "ms", better: "lower", note: `edge master: answer written by the simulator → next request seen by it (free up to the ${round(interFrameSilenceMs(LINE), 2)} ms silence); raw master ${round(rawSplit.masterTurnaroundMs, 2)} ms` });
    report({ bench: "rtu-bus-lost-to-master-per-txn", value: round(engineSplit.lostToMasterMs, 2), unit: "ms", better: "lower", note: `line idle per transaction because the next request came after the silence; raw master ${round(rawSplit.lostToMasterMs, 2)} ms` });
    report({ bench: "rtu-bus-sim-timer-late-per-txn", value: round(engineSplit.timerLateMs, 2), unit: "ms", better: "lower", note: `answer written after its modelled last-byte time (setTimeout granularity in the simulator's line timing); raw master run ${round(rawSplit.timerLateMs, 2)} ms` });
    report({ bench: "rtu-bus-cycle", value: round(engineSplit.cycleMs, 2), unit: "ms", better: "lower", note: `edge master: request-to-request time seen by the simulator; the line needs ${round(1000 / limit, 2)} ms, raw master ${round(rawSplit.cycleMs, 2)} ms` });
  } finally {
    await field.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
