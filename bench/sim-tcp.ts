// Simulator Modbus TCP throughput on loopback, against a plain Node TCP echo server on the same machine:
// sequential request/answer round trips (one outstanding, like a polling master) and pipelined ones (many masters).
// A ratio near 1 means the simulator costs about what the socket itself costs; a village's polling is then never
// limited by the simulator. modbus-serial's own ServerTCP managed about 775 sequential reads/s here.

import net from "node:net";
import { encodeMbap } from "../protocols/modbus/frames.js";
import { encodeRequest } from "../protocols/modbus/pdu.js";
import { Field } from "../firmware-sim/field.js";
import { villagePreset } from "../firmware-sim/presets/village.js";
import { parseScenario } from "../firmware-sim/scenario.js";
import { report } from "./report.js";

async function startEcho(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer({ noDelay: true }, (s) => {
    s.setNoDelay(true);
    // Answer each 12-byte request with a 29-byte message, the size of a 10-register Modbus answer.
    const answer = Buffer.alloc(29, 7);
    let pending = 0;
    s.on("data", (d: Buffer) => {
      pending += d.length;
      while (pending >= 12) {
        pending -= 12;
        s.write(answer);
      }
    });
    s.on("error", () => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

/** Round trips per second with `depth` requests in flight on one connection, over `durationMs`. */
async function roundTrips(port: number, request: Uint8Array, answerBytes: number, depth: number, durationMs: number): Promise<number> {
  const socket = net.connect({ port, host: "127.0.0.1", noDelay: true });
  await new Promise<void>((r) => socket.once("connect", () => r()));
  let received = 0;
  let done = 0;
  const start = performance.now();
  const end = start + durationMs;
  await new Promise<void>((resolve) => {
    socket.on("data", (d: Buffer) => {
      received += d.length;
      while (received >= answerBytes) {
        received -= answerBytes;
        done++;
        if (performance.now() < end) socket.write(request);
        else if (done % depth === 0) resolve();
      }
    });
    for (let i = 0; i < depth; i++) socket.write(request);
  });
  const seconds = (performance.now() - start) / 1000;
  socket.destroy();
  return done / seconds;
}

export async function simTcp(): Promise<void> {
  const field = new Field(parseScenario(villagePreset({ basePort: 0 })), undefined, { autoTick: false });
  await field.start();
  const port = field.requireBus("pump-houses").tcp?.port ?? 0;
  const echo = await startEcho();
  // SDM630 at unit 1: 10 registers from 0x0000 (even start, even count) → 29-byte MBAP answer.
  const request = encodeMbap(1, 1, encodeRequest({ fc: 4, address: 0, quantity: 10 }));
  const durationMs = 2000;
  for (const [name, depth] of [["sequential", 1], ["pipelined-32", 32]] as const) {
    // Interleave the two servers to share the machine's noise evenly.
    const simA = await roundTrips(port, request, 29, depth, durationMs / 2);
    const echoA = await roundTrips(echo.port, request, 29, depth, durationMs / 2);
    const simB = await roundTrips(port, request, 29, depth, durationMs / 2);
    const echoB = await roundTrips(echo.port, request, 29, depth, durationMs / 2);
    const sim = (simA + simB) / 2;
    const peer = (echoA + echoB) / 2;
    report({ bench: `sim-tcp-${name}-requests`, value: Math.round(sim), unit: "requests/s", better: "higher" });
    report({ bench: `sim-tcp-${name}-vs-echo`, value: Number((sim / peer).toFixed(3)), unit: "ratio", goal: 0.8, better: "higher", note: `plain Node TCP echo: ${Math.round(peer)}/s` });
  }
  await echo.close();
  await field.stop();
}
