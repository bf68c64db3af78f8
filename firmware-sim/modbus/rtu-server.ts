// Modbus RTU slave side of one simulated RS-485 bus, over any byte stream (a pseudo-terminal in practice).
// Frames are found by the request's length (its function code and byte count), checked by CRC; a frame with a bad
// CRC is discarded silently, as a real device does (Serial Line V1.02 §2.5.1.2), and bytes that never complete a
// frame are flushed after a silence. Optional line timing answers when the last byte would really arrive at the
// configured baud: request time + 3.5-character silence + turnaround + answer time, one transaction at a time.

import { encodeRtuFrame, frameTimeMs, interFrameSilenceMs, rtuCrcOk, rtuRequestLength, type SerialLine } from "../../protocols/modbus/frames.js";
import type { SimBus } from "./bus.js";

export interface ByteLink {
  write(bytes: Uint8Array): void;
  onData(listener: (chunk: Uint8Array) => void): void;
}

export interface LineTiming extends SerialLine {
  /** Device turnaround between the end of the request and the start of its answer. */
  readonly turnaroundMs: number;
}

export interface RtuEngineOptions {
  readonly lineTiming?: LineTiming | undefined;
  /** Flush an incomplete frame after this much silence (default 50 ms; ptys deliver in bursts). */
  readonly flushAfterMs?: number;
  readonly now?: () => number;
}

export interface RtuEngine {
  readonly crcErrors: () => number;
  /** Stop timers (pending answers are dropped). */
  stop(): void;
}

export function attachRtuEngine(bus: SimBus, link: ByteLink, opts: RtuEngineOptions = {}): RtuEngine {
  const now = opts.now ?? (() => performance.now());
  const flushAfterMs = opts.flushAfterMs ?? 50;
  let buffer = new Uint8Array(0);
  let flushTimer: NodeJS.Timeout | undefined;
  let crcErrors = 0;
  let busyUntil = 0;
  const timers = new Set<NodeJS.Timeout>();

  // setTimeout takes whole milliseconds and may fire up to ~1.5 ms early for a fractional delay: re-arm for what is
  // left, so an answer never reaches the master before its last byte could have crossed the line.
  const later = (ms: number, fn: () => void): void => {
    const due = now() + ms;
    const arm = (): void => {
      const t = setTimeout(() => {
        timers.delete(t);
        if (now() < due - 0.05) arm();
        else fn();
      }, Math.max(0, Math.ceil(due - now())));
      timers.add(t);
    };
    arm();
  };

  const send = (bytes: Uint8Array, requestBytes: number, arrivedAt: number, extraDelayMs: number): void => {
    const timing = opts.lineTiming;
    if (!timing) {
      if (extraDelayMs > 0) later(extraDelayMs, () => link.write(bytes));
      else link.write(bytes);
      return;
    }
    // The request occupies the line from when the line is free; the answer follows after the silence.
    const silence = interFrameSilenceMs(timing);
    const requestStart = Math.max(arrivedAt, busyUntil);
    const answerStart = requestStart + frameTimeMs(requestBytes, timing) + silence + timing.turnaroundMs + extraDelayMs;
    const lastByteAt = answerStart + frameTimeMs(bytes.length, timing);
    busyUntil = lastByteAt + silence;
    later(lastByteAt - now(), () => link.write(bytes));
  };

  const handleFrame = (frame: Uint8Array, arrivedAt: number): void => {
    if (!rtuCrcOk(frame)) {
      crcErrors++;
      bus.counters.framingErrors++;
      return;
    }
    const unitId = frame[0] as number;
    const outcome = bus.transact(unitId, frame.subarray(1, frame.length - 2));
    if (outcome.kind !== "answer") return; // silence; an RTU line cannot "disconnect" a single transaction
    let out = encodeRtuFrame(outcome.unitId, outcome.pdu);
    if (outcome.damage === "bad-crc") {
      out = Uint8Array.from(out);
      out[out.length - 1] = (out[out.length - 1] as number) ^ 0xff;
    } else if (outcome.damage === "truncated") out = out.subarray(0, Math.max(2, out.length - 3));
    else if (outcome.damage === "garbage") out = Uint8Array.from({ length: out.length }, (_, i) => (i * 73 + 41) & 0xff);
    send(out, frame.length, arrivedAt, outcome.delayMs);
  };

  const drain = (arrivedAt: number): void => {
    for (;;) {
      if (buffer.length < 2) return;
      const len = rtuRequestLength(buffer);
      if (len === "more") return;
      if (len === "unknown") {
        // Unknown function code: its length is unknowable; the silence flush will decide.
        return;
      }
      if (len > 256) {
        buffer = new Uint8Array(0);
        bus.counters.framingErrors++;
        return;
      }
      if (buffer.length < len) return;
      const frame = buffer.slice(0, len);
      buffer = buffer.subarray(len);
      if (!rtuCrcOk(frame)) {
        // Frame boundary lost: a real device discards everything until the next silence.
        crcErrors++;
        bus.counters.framingErrors++;
        buffer = new Uint8Array(0);
        return;
      }
      handleFrame(frame, arrivedAt);
    }
  };

  link.onData((chunk) => {
    const arrivedAt = now();
    const merged = new Uint8Array(buffer.length + chunk.length);
    merged.set(buffer);
    merged.set(chunk, buffer.length);
    buffer = merged;
    drain(arrivedAt);
    if (flushTimer) clearTimeout(flushTimer);
    if (buffer.length > 0) {
      flushTimer = setTimeout(() => {
        // After a silence, whatever is left is one (odd) frame: answer it if its CRC holds, else drop it.
        const leftover = buffer;
        buffer = new Uint8Array(0);
        if (leftover.length >= 4 && rtuCrcOk(leftover)) handleFrame(leftover, now());
        else bus.counters.framingErrors++;
      }, flushAfterMs);
    }
  });

  return {
    crcErrors: () => crcErrors,
    stop: () => {
      if (flushTimer) clearTimeout(flushTimer);
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
