// A minimal Modbus TCP client for tests and benchmarks: raw MBAP frames over one socket, with pipelining and
// transaction-id matching, built on the protocols codec so it exercises the same code a third party would.

import net from "node:net";
import { decodeMbapHeader, encodeMbap, MBAP_HEADER_LENGTH } from "../../protocols/modbus/frames.js";
import { decodeResponse, encodeRequest, type ModbusRequest, type ModbusResponse } from "../../protocols/modbus/pdu.js";

export class RawModbusTcpClient {
  private pending: Buffer = Buffer.alloc(0);
  private nextTid = 1;
  private readonly waiting = new Map<number, { req: ModbusRequest; resolve: (r: ModbusResponse) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  /** Raw frames the server sent that matched no request (for fault tests). */
  readonly unmatched: Buffer[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("close", () => {
      for (const [tid, w] of this.waiting) {
        clearTimeout(w.timer);
        w.reject(new Error(`connection closed before answer to ${tid}`));
      }
      this.waiting.clear();
    });
    socket.on("error", () => undefined);
  }

  static connect(port: number, host = "127.0.0.1"): Promise<RawModbusTcpClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, noDelay: true }, () => resolve(new RawModbusTcpClient(s)));
      s.once("error", reject);
    });
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      const h = decodeMbapHeader(this.pending);
      if (!h) return;
      const total = MBAP_HEADER_LENGTH - 1 + h.length;
      if (this.pending.length < total) return;
      const frame = this.pending.subarray(0, total);
      this.pending = this.pending.subarray(total);
      const w = this.waiting.get(h.transactionId);
      if (!w) {
        this.unmatched.push(Buffer.from(frame));
        continue;
      }
      this.waiting.delete(h.transactionId);
      clearTimeout(w.timer);
      const r = decodeResponse(frame.subarray(MBAP_HEADER_LENGTH), w.req);
      if (r.ok) w.resolve(r.value);
      else w.reject(new Error(`${r.code}: ${r.reason}`));
    }
  }

  /** Send raw bytes (malformed frames on purpose). */
  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  request(unitId: number, req: ModbusRequest, timeoutMs = 1000): Promise<ModbusResponse> {
    const tid = this.nextTid;
    this.nextTid = (this.nextTid % 0xffff) + 1;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(tid);
        reject(new Error(`timeout after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(tid, { req, resolve, reject, timer });
      this.socket.write(encodeMbap(tid, unitId, encodeRequest(req)));
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
