// An in-process aedes broker on a free loopback port with TCP_NODELAY (without it every QoS 1 exchange waits on
// delayed ACKs, performance-notes.md), and a listening MQTT client playing the cloud, for integration tests.

import net from "node:net";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";

export interface TestBroker {
  readonly port: number;
  readonly url: string;
  readonly aedes: Aedes;
  close(): Promise<void>;
}

export async function startTestBroker(port = 0): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    aedes.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", () => resolve()));
  const actual = (server.address() as net.AddressInfo).port;
  return {
    port: actual,
    url: `mqtt://127.0.0.1:${actual}`,
    aedes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => aedes.close(() => resolve()));
      }),
  };
}

export interface ReceivedMessage {
  readonly topic: string;
  readonly json: Record<string, unknown>;
  readonly retain: boolean;
}

/** A subscriber that records every message on the given filters, with a waitFor helper. */
export class TestSubscriber {
  readonly messages: ReceivedMessage[] = [];
  private listeners: (() => void)[] = [];

  private constructor(readonly client: MqttClient) {
    client.on("message", (topic, payload, packet) => {
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
      } catch {
        json = { unparsable: payload.toString("utf8") };
      }
      this.messages.push({ topic, json, retain: packet.retain });
      for (const l of this.listeners.splice(0)) l();
    });
  }

  static async connect(url: string, filters: string[], clientId = `cloud-${Math.random().toString(16).slice(2)}`): Promise<TestSubscriber> {
    const client = await mqtt.connectAsync(url, { clientId, reconnectPeriod: 200 });
    // A broker restart in a test must not become an unhandled 'error' event; the client reconnects by itself.
    client.on("error", () => undefined);
    // Listen before subscribing: brokers send retained messages right behind the SUBACK.
    const subscriber = new TestSubscriber(client);
    await client.subscribeAsync(filters, { qos: 1 });
    return subscriber;
  }

  /** Resolve with the first recorded message (past or future) that satisfies `pred`. */
  async waitFor(pred: (m: ReceivedMessage) => boolean, timeoutMs = 10_000, what = "message"): Promise<ReceivedMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(pred);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; saw ${this.messages.length} messages: ${this.messages.map((m) => `${m.topic.split("/").pop() ?? ""}${m.json.events ? JSON.stringify(m.json.events) : m.json.status ? JSON.stringify([m.json.status, m.json.reason]) : ""}`).join(", ").slice(0, 4000)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.listeners.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  publish(topic: string, payload: unknown): Promise<unknown> {
    return this.client.publishAsync(topic, JSON.stringify(payload), { qos: 1 });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** Poll `check` until it returns a truthy value or the time runs out. */
export async function eventually<T>(check: () => T | undefined | false, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** eventually() for a check that has to await (a ledger query, an HTTP call): polls every 100 ms until the check
 * resolves to something other than undefined or false (so 0 and "" are answers), or the time runs out. */
export async function eventuallyAsync<T>(check: () => Promise<T | undefined | false>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
