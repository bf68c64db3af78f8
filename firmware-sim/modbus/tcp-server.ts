// Modbus TCP server for one simulated bus (Modbus Messaging on TCP/IP Implementation Guide V1.0b): MBAP framing
// with reassembly of split and coalesced packets, many unit ids on one port, pipelined requests answered with
// their transaction ids. TCP_NODELAY is set so answers are not held back by Nagle and delayed ACKs.

import net from "node:net";
import { decodeMbapHeader, encodeMbap, MAX_PDU_LENGTH, MBAP_HEADER_LENGTH } from "../../protocols/modbus/frames.js";
import type { SimBus } from "./bus.js";

export interface TcpServerHandle {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
  /** Drop every open connection (a gateway reboot, a cable pulled). */
  dropConnections(): void;
  connections(): number;
}

export async function startTcpServer(bus: SimBus, host: string, port: number): Promise<TcpServerHandle> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    let pending: Buffer = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      socket.cork();
      while (pending.length - offset >= MBAP_HEADER_LENGTH) {
        const header = decodeMbapHeader(pending.subarray(offset));
        if (!header) break;
        // A length outside 2..254 means the stream is garbage; there is no way to find the next frame.
        if (header.length < 2 || header.length > MAX_PDU_LENGTH + 1) {
          bus.counters.framingErrors++;
          socket.destroy();
          return;
        }
        const total = MBAP_HEADER_LENGTH - 1 + header.length;
        if (pending.length - offset < total) break;
        const pdu = pending.subarray(offset + MBAP_HEADER_LENGTH, offset + total);
        offset += total;
        if (header.protocolId !== 0) {
          // §3.1.3: protocol id 0 is Modbus; anything else is discarded.
          bus.counters.framingErrors++;
          continue;
        }
        const outcome = bus.transact(header.unitId, pdu);
        if (outcome.kind === "silent") continue;
        if (outcome.kind === "disconnect") {
          socket.destroy();
          return;
        }
        let frame = encodeMbap(header.transactionId, outcome.unitId, outcome.pdu);
        if (outcome.damage === "truncated") frame = frame.subarray(0, Math.max(1, frame.length - 2));
        if (outcome.damage === "garbage" || outcome.damage === "bad-crc") {
          // TCP has no CRC: a damaged answer is a well-framed MBAP with a nonsense PDU.
          frame = encodeMbap(header.transactionId, outcome.unitId, Uint8Array.of(0x2b, 0xff, 0x00));
        }
        if (outcome.delayMs > 0) {
          const late = frame;
          setTimeout(() => {
            if (!socket.destroyed) socket.write(late);
          }, outcome.delayMs);
        } else socket.write(frame);
      }
      socket.uncork();
      pending = offset === pending.length ? Buffer.alloc(0) : pending.subarray(offset);
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    host,
    connections: () => sockets.size,
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
