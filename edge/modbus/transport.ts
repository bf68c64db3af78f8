// The narrow port every bus speaks through: one request, one answer or a typed error. Retries, timeouts per bus,
// priorities and metrics wrap around it; the TCP and RTU implementations only move frames.

import type { ModbusRequest, ModbusResponse } from "../../protocols/modbus/pdu.js";

export interface RequestOptions {
  readonly timeoutMs: number;
}

/** A successful answer (an exception response is thrown as ModbusExceptionError instead). */
export type ModbusAnswer = Exclude<ModbusResponse, { exception: number }>;

export interface ModbusTransport {
  request(unitId: number, req: ModbusRequest, opts: RequestOptions): Promise<ModbusAnswer>;
  close(): Promise<void>;
  /** Whether the link is up right now (for status pages). */
  isOpen(): boolean;
  describe(): string;
}
