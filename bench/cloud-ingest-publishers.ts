// The gateways' side of the cloud-ingest benchmark, in a child process so the load generator does not share the
// cloud's core: one real mqtt.js client per simulated gateway over loopback (TCP_NODELAY, QoS 1, its own credentials),
// each publishing valid billing messages — several readings per message, rising registers, outbox seqs — with a
// fixed number of publishes in flight, as an edge uplink drains its outbox. Driven over IPC by cloud-ingest.ts.

import net from "node:net";
import mqtt, { type MqttClient } from "mqtt";

export interface PublisherSpec {
  readonly url: string;
  readonly gateways: readonly string[];
  /** Every gateway's password (the bench gives them one); undefined for an anonymous broker. */
  readonly password?: string;
  readonly metersPerGateway: number;
  readonly readingsPerMeter: number;
  readonly initialWh: number;
  readonly whPerReading: number;
  /** Publishes in flight per gateway (mqtt.js has no window of its own at MQTT 3.1.1). */
  readonly inflight: number;
}

export type ToPublishers = { readonly type: "connect"; readonly spec: PublisherSpec } | { readonly type: "publish"; readonly fromSeq: number; readonly toSeq: number } | { readonly type: "close" };
export type FromPublishers =
  | { readonly type: "connected"; readonly clients: number }
  | { readonly type: "published"; readonly messages: number; readonly bytes: number; readonly lastPubackAtMs: number }
  | { readonly type: "error"; readonly message: string };

export const meterIdOf = (gatewayId: string, k: number): string => `${gatewayId}-m${k}`;
export const BASE_AT_MS = Date.parse("2026-06-01T00:00:00Z");

/** The billing message with outbox seq `seq` of one gateway: readingsPerMeter consecutive readings of each meter. */
export function billingMessage(spec: PublisherSpec, gatewayId: string, seq: number): string {
  const readings = [];
  for (let k = 0; k < spec.metersPerGateway; k++) {
    for (let j = 0; j < spec.readingsPerMeter; j++) {
      const registerSeq = (seq - 1) * spec.readingsPerMeter + j + 1;
      const energyWh = spec.initialWh + registerSeq * spec.whPerReading;
      const at = new Date(BASE_AT_MS + registerSeq * 60_000).toISOString();
      readings.push({
        meterId: meterIdOf(gatewayId, k),
        unitId: k + 1,
        pointId: "importEnergy",
        role: "import_energy",
        registerSeq,
        at,
        raw: { words: [Math.floor(energyWh / 10 / 65536), Math.floor(energyWh / 10) % 65536], value: energyWh / 1000 },
        energyWh,
        conversion: { exact: true, droppedWh: 0 },
      });
    }
  }
  return JSON.stringify({ v: 1, gatewayId, seq, sentAt: new Date(BASE_AT_MS + seq * 300_000).toISOString(), readings });
}

function send(message: FromPublishers): void {
  process.send?.(message);
}

let spec: PublisherSpec | undefined;
const clients = new Map<string, MqttClient>();

async function connectAll(s: PublisherSpec): Promise<void> {
  spec = s;
  const url = new URL(s.url);
  const port = Number(url.port);
  // A few at a time: the broker's login (scrypt) and accept queue are not what is measured.
  const queue = [...s.gateways];
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        const client = new mqtt.MqttClient(
          () => {
            const socket = net.connect({ host: url.hostname, port });
            socket.setNoDelay(true);
            return socket;
          },
          { clientId: id, ...(s.password === undefined ? {} : { username: id, password: s.password }), protocolVersion: 4, clean: true, reconnectPeriod: 0, connectTimeout: 30_000, keepalive: 120 },
        );
        await new Promise<void>((resolve, reject) => {
          client.once("connect", () => resolve());
          client.once("error", reject);
        });
        client.on("error", () => undefined);
        clients.set(id, client);
      }
    }),
  );
}

async function publishRange(fromSeq: number, toSeq: number): Promise<void> {
  const s = spec;
  if (s === undefined) throw new Error("publish before connect");
  // Payloads are built first, so JSON building does not pace the publishers.
  const payloads = new Map<string, string[]>();
  let bytes = 0;
  for (const id of clients.keys()) {
    const list: string[] = [];
    for (let seq = fromSeq; seq <= toSeq; seq++) {
      const p = billingMessage(s, id, seq);
      bytes += p.length;
      list.push(p);
    }
    payloads.set(id, list);
  }
  let messages = 0;
  let lastPubackAtMs = 0;
  await Promise.all(
    [...clients].map(async ([id, client]) => {
      const list = payloads.get(id) ?? [];
      const topic = `agri/v1/gw/${id}/up/billing`;
      let next = 0;
      await Promise.all(
        Array.from({ length: s.inflight }, async () => {
          for (let i = next++; i < list.length; i = next++) {
            await client.publishAsync(topic, list[i] as string, { qos: 1 });
            messages++;
            lastPubackAtMs = Date.now();
          }
        }),
      );
    }),
  );
  send({ type: "published", messages, bytes, lastPubackAtMs });
}

// Only as a forked child: the parent imports this module for its message builder and types.
if (process.send !== undefined) process.on("message", (message: ToPublishers) => {
  const run = async (): Promise<void> => {
    switch (message.type) {
      case "connect":
        await connectAll(message.spec);
        send({ type: "connected", clients: clients.size });
        return;
      case "publish":
        await publishRange(message.fromSeq, message.toSeq);
        return;
      case "close":
        await Promise.all([...clients.values()].map((c) => c.endAsync(true)));
        process.exit(0);
    }
  };
  run().catch((error: unknown) => send({ type: "error", message: error instanceof Error ? error.stack ?? error.message : String(error) }));
});
