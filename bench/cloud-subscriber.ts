// The cloud's side of a benchmark: an MQTT subscriber on its own loopback socket with TCP_NODELAY (mqtt.js leaves
// Nagle on; performance-notes.md), timestamping each message with performance.now() the moment it is parsed.

import net from "node:net";
import mqtt, { type MqttClient } from "mqtt";

export interface TimedMessage {
  readonly topic: string;
  readonly json: Record<string, unknown>;
  readonly atMs: number;
}

export interface CloudSubscriber {
  readonly received: () => number;
  /** Resolves with the first message from now on that satisfies `pred`. */
  next(pred: (m: TimedMessage) => boolean, timeoutMs: number, what: string): Promise<TimedMessage>;
  close(): Promise<void>;
}

export async function connectCloud(port: number, filters: readonly string[]): Promise<CloudSubscriber> {
  const client: MqttClient = new mqtt.MqttClient(
    () => {
      const socket = net.connect({ host: "127.0.0.1", port });
      socket.setNoDelay(true);
      return socket;
    },
    { clientId: `bench-cloud-${process.pid}-${Math.random().toString(16).slice(2, 8)}`, protocolVersion: 4, clean: true, reconnectPeriod: 0, connectTimeout: 10_000 },
  );
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  await client.subscribeAsync([...filters], { qos: 1 });
  let count = 0;
  const waiters: { pred: (m: TimedMessage) => boolean; resolve: (m: TimedMessage) => void }[] = [];
  client.on("message", (topic, payload) => {
    const atMs = performance.now();
    count++;
    if (waiters.length === 0) return;
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
    } catch {
      return;
    }
    const m: TimedMessage = { topic, json, atMs };
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (w?.pred(m)) {
        waiters.splice(i, 1);
        w.resolve(m);
      }
    }
  });
  return {
    received: () => count,
    next: (pred, timeoutMs, what) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`no ${what} within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = {
          pred,
          resolve: (m: TimedMessage) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        waiters.push(waiter);
      }),
    close: () => client.endAsync(true),
  };
}
