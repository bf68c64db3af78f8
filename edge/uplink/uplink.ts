// The gateway's MQTT link: mqtt.js with a persistent session (clean: false), a retained status with a last will,
// reconnection with exponential back-off and jitter, and a drain loop that publishes the durable outbox in its
// order (alarms first) with a bounded number of QoS 1 messages in flight, deleting each only after its PUBACK.
// A new alarm wakes the loop at once, so it overtakes any backlog by at most the messages already in flight.

import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { MESSAGE_VERSION } from "../../protocols/mqtt/messages.js";
import { formatTopic } from "../../protocols/mqtt/topics.js";
import type { Outbox } from "../outbox/outbox.js";

export interface UplinkOptions {
  readonly gatewayId: string;
  readonly password: string;
  readonly url: string;
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  readonly keepaliveS: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly inflight: number;
}

export interface UplinkEvents {
  onCommand(topic: string, payload: Buffer): void;
  onConnected(): void;
  onDisconnected(reason: string): void;
}

export interface UplinkStats {
  connected: boolean;
  connects: number;
  published: number;
  acked: number;
  inflight: number;
  lastError: string | undefined;
  lastConnectedAt: string | undefined;
  /** Messages that arrived on a topic other than this gateway's command topic, and were not handed on. */
  ignoredMessages: number;
}

export class Uplink {
  private client: MqttClient | undefined;
  private readonly inflight = new Set<number>();
  /** PUBACKed, waiting for the next batched delete from the outbox. */
  private readonly acked = new Set<number>();
  private ackFlushScheduled = false;
  private draining = false;
  private drainAgain = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = false;
  readonly stats: UplinkStats = { connected: false, connects: 0, published: 0, acked: 0, inflight: 0, lastError: undefined, lastConnectedAt: undefined, ignoredMessages: 0 };

  constructor(
    private readonly opts: UplinkOptions,
    private readonly outbox: Outbox,
    private readonly events: UplinkEvents,
    private readonly random: () => number = Math.random,
  ) {}

  private statusPayload(state: "online" | "offline", reason?: string): string {
    return JSON.stringify({ v: MESSAGE_VERSION, gatewayId: this.opts.gatewayId, state, ...(reason ? { reason } : {}) });
  }

  start(): void {
    const url = new URL(this.opts.url);
    const secure = url.protocol === "mqtts:";
    const host = url.hostname;
    const port = Number(url.port || (secure ? 8883 : 1883));
    const statusTopic = formatTopic("status", { gatewayId: this.opts.gatewayId });
    const commandTopic = formatTopic("command", { gatewayId: this.opts.gatewayId });
    const options: IClientOptions = {
      clientId: this.opts.gatewayId,
      username: this.opts.gatewayId,
      password: this.opts.password,
      clean: false,
      keepalive: this.opts.keepaliveS,
      protocolVersion: 4,
      // We reconnect ourselves, with back-off and jitter: a village of gateways must not reconnect in lock-step.
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      // The last will is fixed at connect time, so it cannot carry an outbox seq (see protocols/README.md).
      will: { topic: statusTopic, payload: Buffer.from(this.statusPayload("offline", "connection lost")), qos: 1, retain: true },
    };
    const tlsOptions = secure
      ? {
          ...(this.opts.caFile ? { ca: readFileSync(this.opts.caFile) } : {}),
          ...(this.opts.certFile ? { cert: readFileSync(this.opts.certFile) } : {}),
          ...(this.opts.keyFile ? { key: readFileSync(this.opts.keyFile) } : {}),
          servername: host,
        }
      : {};
    // mqtt.js leaves Nagle on; with delayed ACKs every QoS 1 exchange then waits ~40 ms (performance-notes.md).
    const streamBuilder = (): net.Socket => {
      const socket = secure ? tls.connect({ host, port, ...tlsOptions }) : net.connect({ host, port });
      socket.setNoDelay(true);
      return socket;
    };
    const client = new mqtt.MqttClient(streamBuilder, options);
    this.client = client;
    client.on("connect", () => {
      this.attempt = 0;
      this.stats.connected = true;
      this.stats.connects++;
      this.stats.lastConnectedAt = new Date().toISOString();
      this.inflight.clear();
      client.publish(statusTopic, this.statusPayload("online"), { qos: 1, retain: true });
      client.subscribe(commandTopic, { qos: 1 });
      this.events.onConnected();
      this.kick();
    });
    // Only our own command topic reaches the agent (invariant 10). The broker should deliver nothing else, but a
    // persistent session (clean: false) keeps whatever an earlier client with this id subscribed to, and a broker
    // without an ACL does not stop that: a grant or relay order for another gateway must never be executed here.
    client.on("message", (topic, payload) => {
      if (topic !== commandTopic) {
        this.stats.ignoredMessages++;
        return;
      }
      this.events.onCommand(topic, payload);
    });
    client.on("error", (err) => {
      this.stats.lastError = err.message;
    });
    client.on("close", () => {
      const was = this.stats.connected;
      this.stats.connected = false;
      this.inflight.clear();
      this.stats.inflight = 0;
      if (was) this.events.onDisconnected(this.stats.lastError ?? "connection closed");
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer) return;
    const base = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectMinMs * 2 ** this.attempt);
    const delay = base / 2 + this.random() * (base / 2); // "equal jitter"
    this.attempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopped) this.client?.reconnect();
    }, delay);
  }

  /** Publish whatever the outbox holds, in its order; call after every append (alarms especially). */
  kick(): void {
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = true;
    try {
      do {
        this.drainAgain = false;
        this.drainOnce();
      } while (this.drainAgain);
    } finally {
      this.draining = false;
    }
  }

  private drainOnce(): void {
    const client = this.client;
    if (!client || !this.stats.connected) return;
    const room = this.opts.inflight - this.inflight.size;
    if (room <= 0) return;
    // Peek past the messages in flight and those acknowledged but not yet deleted: both are still in the outbox.
    const entries = this.outbox
      .peek(room + this.inflight.size + this.acked.size)
      .filter((e) => !this.inflight.has(e.seq) && !this.acked.has(e.seq))
      .slice(0, room);
    for (const e of entries) {
      this.inflight.add(e.seq);
      this.stats.inflight = this.inflight.size;
      this.stats.published++;
      client.publish(e.topic, e.payloadJson, { qos: 1, retain: false }, (err) => {
        if (!this.inflight.delete(e.seq)) return;
        this.stats.inflight = this.inflight.size;
        if (err) {
          this.stats.lastError = err.message;
          return; // stays in the outbox; published again after reconnect
        }
        this.acked.add(e.seq);
        this.stats.acked++;
        this.scheduleAckFlush();
      });
    }
  }

  /**
   * Delete acknowledged messages in one transaction per event-loop turn instead of one synced commit per PUBACK
   * (472 µs vs 44 µs per message measured here): per-message commits filled the event loop while draining a
   * backlog and made a fresh alarm wait behind them. A power cut between PUBACK and this commit only re-sends those
   * messages, which the cloud drops by (gatewayId, seq).
   */
  private scheduleAckFlush(): void {
    if (this.ackFlushScheduled) return;
    this.ackFlushScheduled = true;
    setImmediate(() => {
      this.ackFlushScheduled = false;
      if (this.stopped) return; // stop() flushed them, and the outbox may be closed by now
      this.flushAcks();
      this.kick();
    });
  }

  private flushAcks(): void {
    const seqs = [...this.acked];
    this.acked.clear();
    if (seqs.length > 0) this.outbox.ackMany(seqs);
  }

  async stop(graceful = true): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const client = this.client;
    if (!client) return;
    if (graceful && this.stats.connected) {
      await new Promise<void>((resolve) => {
        client.publish(formatTopic("status", { gatewayId: this.opts.gatewayId }), this.statusPayload("offline", "stopped"), { qos: 1, retain: true }, () => resolve());
        setTimeout(resolve, 1000);
      });
    }
    // A graceful end waits for in-flight messages; with no connection (broker gone or refusing us) it would wait
    // forever, so end by force then, and force anyway after two seconds. Unacknowledged messages stay in the outbox.
    const force = !graceful || !this.stats.connected;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => client.end(true, {}, () => resolve()), 2000);
      client.end(force, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.flushAcks();
  }
}
