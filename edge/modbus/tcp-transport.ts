// Modbus TCP client transport: MBAP framing with reassembly, transaction ids matched so a late answer to a
// timed-out request can never be taken for the next one (the desync grid-x/modbus #78 describes), TCP_NODELAY,
// and reconnection with back-off when the connection drops.

import net from "node:net";
import { decodeMbapHeader, encodeMbap, MBAP_HEADER_LENGTH } from "../../protocols/modbus/frames.js";
import { decodeResponse, encodeRequest, type ModbusRequest } from "../../protocols/modbus/pdu.js";
import { ModbusExceptionError, ModbusFrameError, ModbusPortError, ModbusTimeoutError } from "./errors.js";
import type { ModbusAnswer, ModbusTransport, RequestOptions } from "./transport.js";

interface Waiting {
  /** The connection the request went out on: only its closing can fail the request. */
  readonly socket: net.Socket;
  readonly req: ModbusRequest;
  readonly unitId: number;
  resolve(answer: ModbusAnswer): void;
  reject(err: Error): void;
  readonly timer: NodeJS.Timeout;
}

export class TcpTransport implements ModbusTransport {
  private socket: net.Socket | undefined;
  private connecting: Promise<net.Socket> | undefined;
  private pending: Buffer = Buffer.alloc(0);
  private nextTid = 1;
  private readonly waiting = new Map<number, Waiting>();
  private reconnectDelayMs = 0;
  private lastFailureAt = 0;
  private closed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly connectTimeoutMs = 2000,
  ) {}

  describe(): string {
    return `tcp ${this.host}:${this.port}`;
  }

  isOpen(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  private connect(): Promise<net.Socket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    if (this.connecting) return this.connecting;
    // Back off after failures so a dead gateway is not hammered on every poll.
    if (Date.now() - this.lastFailureAt < this.reconnectDelayMs) {
      return Promise.reject(new ModbusPortError(`${this.describe()} down; next attempt in ${this.reconnectDelayMs - (Date.now() - this.lastFailureAt)} ms`));
    }
    this.connecting = new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: this.host, port: this.port, noDelay: true });
      const timer = setTimeout(() => s.destroy(new Error("connect timeout")), this.connectTimeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        s.setNoDelay(true);
        this.reconnectDelayMs = 0;
        this.socket = s;
        this.pending = Buffer.alloc(0);
        s.on("data", (chunk: Buffer) => this.onData(chunk));
        s.on("close", () => this.onClose(s));
        s.on("error", () => undefined);
        resolve(s);
      });
      s.once("error", (err) => {
        clearTimeout(timer);
        this.lastFailureAt = Date.now();
        this.reconnectDelayMs = Math.min(30_000, Math.max(200, this.reconnectDelayMs * 2));
        s.destroy();
        reject(new ModbusPortError(`${this.describe()}: ${err.message}`));
      });
    }).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private onClose(s: net.Socket): void {
    if (this.socket === s) this.socket = undefined;
    for (const [tid, w] of this.waiting) {
      // "close" comes a turn after destroy(): a request may already be waiting on the next connection.
      if (w.socket !== s) continue;
      clearTimeout(w.timer);
      this.waiting.delete(tid);
      w.reject(new ModbusPortError(`${this.describe()}: connection closed`));
    }
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      const h = decodeMbapHeader(this.pending);
      if (!h) return;
      if (h.length < 2 || h.length > 254 || h.protocolId !== 0) {
        // The stream cannot be resynchronised: drop the connection, the next request reconnects.
        this.socket?.destroy();
        return;
      }
      const total = MBAP_HEADER_LENGTH - 1 + h.length;
      if (this.pending.length < total) return;
      const pdu = this.pending.subarray(MBAP_HEADER_LENGTH, total);
      this.pending = this.pending.subarray(total);
      const w = this.waiting.get(h.transactionId);
      if (!w || w.unitId !== h.unitId) continue; // late answer to a request we gave up on, or a wrong unit
      this.waiting.delete(h.transactionId);
      clearTimeout(w.timer);
      const r = decodeResponse(pdu, w.req);
      if (!r.ok) w.reject(new ModbusFrameError(`${r.code}: ${r.reason}`));
      else if ("exception" in r.value) w.reject(new ModbusExceptionError(r.value.exception, `unit ${w.unitId} answered exception ${r.value.exception}`));
      else w.resolve(r.value);
    }
  }

  async request(unitId: number, req: ModbusRequest, opts: RequestOptions): Promise<ModbusAnswer> {
    if (this.closed) throw new ModbusPortError(`${this.describe()} is closed`);
    const socket = await this.connect();
    const tid = this.nextTid;
    this.nextTid = (this.nextTid % 0xffff) + 1;
    return new Promise<ModbusAnswer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(tid);
        // Part of a frame still held at a timeout means an answer came shorter than its MBAP length says (a
        // serial gateway passing on a truncated frame): the next answer would be read from the middle of it and the
        // connection would fail on the next request too. Only a new connection gives back the frame boundaries.
        if (this.pending.length > 0 && socket === this.socket) socket.destroy();
        reject(new ModbusTimeoutError(`unit ${unitId} on ${this.describe()}: no answer in ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      this.waiting.set(tid, { socket, req, unitId, resolve, reject, timer });
      socket.write(encodeMbap(tid, unitId, encodeRequest(req)));
    });
  }

  close(): Promise<void> {
    this.closed = true;
    this.socket?.destroy();
    return Promise.resolve();
  }
}
