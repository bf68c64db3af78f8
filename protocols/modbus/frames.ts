// Application data units around a PDU: the RTU frame (unit id + PDU + CRC) for RS-485 and the MBAP header for
// Modbus TCP. Also the arithmetic of frame sizes and serial line time, which the simulator's line timing, the
// edge's poll-plan checks and the benchmarks all share.

import { crc16Modbus } from "./crc16.js";

/** Modbus over Serial Line V1.02 §2.5.1.1: RTU ADU at most 256 bytes. */
export const RTU_MAX_FRAME = 256;
/** Modbus Messaging on TCP/IP V1.0b §3.1.3: MBAP length field counts unit id + PDU, PDU ≤ 253 bytes. */
export const MBAP_HEADER_LENGTH = 7;
export const MAX_PDU_LENGTH = 253;

export function encodeRtuFrame(unitId: number, pdu: Uint8Array): Uint8Array {
  const frame = new Uint8Array(pdu.length + 3);
  frame[0] = unitId;
  frame.set(pdu, 1);
  const crc = crc16Modbus(frame, 0, pdu.length + 1);
  frame[pdu.length + 1] = crc & 0xff;
  frame[pdu.length + 2] = crc >> 8;
  return frame;
}

export function rtuCrcOk(frame: Uint8Array): boolean {
  if (frame.length < 4) return false;
  const crc = crc16Modbus(frame, 0, frame.length - 2);
  return frame[frame.length - 2] === (crc & 0xff) && frame[frame.length - 1] === crc >> 8;
}

/**
 * Length of the RTU request frame starting at buf[0], from its function code, or "more" when not enough bytes
 * have arrived to tell, or "unknown" for a function code whose length we cannot compute (the caller then waits
 * for the 3.5-character silence).
 */
export function rtuRequestLength(buf: Uint8Array): number | "more" | "unknown" {
  const fc = buf[1];
  if (fc === undefined) return "more";
  if (fc >= 1 && fc <= 6) return 8;
  if (fc === 15 || fc === 16) {
    const byteCount = buf[6];
    return byteCount === undefined ? "more" : 9 + byteCount;
  }
  return "unknown";
}

/** Length of the RTU response frame starting at buf[0] (client side). */
export function rtuResponseLength(buf: Uint8Array): number | "more" | "unknown" {
  const fc = buf[1];
  if (fc === undefined) return "more";
  if (fc & 0x80) return 5;
  if (fc >= 1 && fc <= 4) {
    const byteCount = buf[2];
    return byteCount === undefined ? "more" : 5 + byteCount;
  }
  if (fc === 5 || fc === 6 || fc === 15 || fc === 16) return 8;
  return "unknown";
}

export interface MbapHeader {
  readonly transactionId: number;
  readonly protocolId: number;
  /** Bytes following the length field: unit id + PDU. */
  readonly length: number;
  readonly unitId: number;
}

export function encodeMbap(transactionId: number, unitId: number, pdu: Uint8Array): Uint8Array {
  const out = new Uint8Array(MBAP_HEADER_LENGTH + pdu.length);
  const len = pdu.length + 1;
  out.set([transactionId >> 8, transactionId & 0xff, 0, 0, len >> 8, len & 0xff, unitId]);
  out.set(pdu, MBAP_HEADER_LENGTH);
  return out;
}

export function decodeMbapHeader(buf: Uint8Array): MbapHeader | undefined {
  if (buf.length < MBAP_HEADER_LENGTH) return undefined;
  return {
    transactionId: ((buf[0] as number) << 8) | (buf[1] as number),
    protocolId: ((buf[2] as number) << 8) | (buf[3] as number),
    length: ((buf[4] as number) << 8) | (buf[5] as number),
    unitId: buf[6] as number,
  };
}

export interface SerialLine {
  readonly baud: number;
  readonly parity: "none" | "even" | "odd";
  readonly stopBits: 1 | 2;
}

/** Bits per character on the wire: start + 8 data + parity? + stop bits (Serial Line V1.02 §2.5.1). */
export function bitsPerCharacter(line: SerialLine): number {
  return 1 + 8 + (line.parity === "none" ? 0 : 1) + line.stopBits;
}

/** Time to send `bytes` characters, in milliseconds. */
export function frameTimeMs(bytes: number, line: SerialLine): number {
  return (bytes * bitsPerCharacter(line) * 1000) / line.baud;
}

/** The 3.5-character inter-frame silence; fixed at 1.75 ms above 19200 baud (§2.5.1.1). */
export function interFrameSilenceMs(line: SerialLine): number {
  return line.baud > 19200 ? 1.75 : frameTimeMs(3.5, line);
}

/** Sizes of the RTU request and answer frames for a read of `quantity` registers or bits. */
export function rtuReadFrameSizes(fc: 1 | 2 | 3 | 4, quantity: number): { request: number; response: number } {
  const dataBytes = fc <= 2 ? Math.ceil(quantity / 8) : quantity * 2;
  return { request: 8, response: 5 + dataBytes };
}

/**
 * Physical upper bound on transactions per second for back-to-back reads on one RTU line with zero device
 * turnaround: each transaction costs request + silence + response + silence.
 */
export function rtuTransactionLimitPerSecond(fc: 1 | 2 | 3 | 4, quantity: number, line: SerialLine): number {
  const { request, response } = rtuReadFrameSizes(fc, quantity);
  const ms = frameTimeMs(request + response, line) + 2 * interFrameSilenceMs(line);
  return 1000 / ms;
}
