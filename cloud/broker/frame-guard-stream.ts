// A duplex stream that stands between an accepted socket and aedes and destroys the connection as soon as a packet
// header declares more than maxPacketBytes. aedes.handle() takes any duplex stream (it is how websockets reach it),
// so this needs no aedes internals. Reads pass through unchanged with the socket's backpressure; writes go straight
// to the socket.

import { Duplex } from "node:stream";
import { MqttFrameScanner, type FrameVerdict } from "./mqtt-frame-scanner.js";

export type FrameViolation = Exclude<FrameVerdict, { ok: true }>;

export function guardFrames(socket: Duplex, maxPacketBytes: number, onViolation: (violation: FrameViolation) => void): Duplex {
  return new FrameGuardStream(socket, new MqttFrameScanner(maxPacketBytes), onViolation);
}

class FrameGuardStream extends Duplex {
  readonly #socket: Duplex;

  constructor(socket: Duplex, scanner: MqttFrameScanner, onViolation: (violation: FrameViolation) => void) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    socket.on("data", (chunk: Buffer) => {
      const verdict = scanner.feed(chunk);
      if (!verdict.ok) {
        // Nothing of this chunk reaches the parser: the bytes before the bad header belong to a client that is
        // being thrown out for breaking the limit, and handing them on could complete a packet after the fact.
        onViolation(verdict);
        this.destroy();
        return;
      }
      if (!this.push(chunk)) socket.pause();
    });
    socket.once("end", () => this.push(null));
    socket.once("error", (error: Error) => this.destroy(error));
    socket.once("close", () => this.destroy());
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#socket.write(chunk, encoding)) callback();
    else this.#socket.once("drain", () => callback());
  }

  // mqtt-packet corks the stream while it writes one packet's pieces; pass them on corked, so the socket sends them
  // in one writev rather than one TCP segment per piece (TCP_NODELAY is on).
  override _writev(chunks: { chunk: Buffer; encoding: BufferEncoding }[], callback: (error?: Error | null) => void): void {
    this.#socket.cork();
    let flowing = true;
    for (const { chunk, encoding } of chunks) flowing = this.#socket.write(chunk, encoding);
    this.#socket.uncork();
    if (flowing) callback();
    else this.#socket.once("drain", () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#socket.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket.destroy();
    callback(error);
  }
}
