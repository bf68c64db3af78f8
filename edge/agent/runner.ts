// Runs the gateway: opens the outbox and state store, starts the agent, the uplink and the status page, and swaps
// configurations atomically for config.update commands — the new file is validated, written beside the old one,
// started, and rolled back to the old one if it does not start.

import { copyFileSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { Logger } from "pino";
import { stringify as toYaml } from "yaml";
import type { DeviceProfile } from "../../protocols/profiles/schema.js";
import { defaultProfiles, parseEdgeConfig, ConfigError } from "../config/load.js";
import type { EdgeConfig } from "../config/schema.js";
import { openSqliteOutbox } from "../outbox/sqlite-outbox.js";
import type { Outbox } from "../outbox/outbox.js";
import { startStatusServer, type StatusServerHandle } from "../status/status-server.js";
import { Uplink } from "../uplink/uplink.js";
import { EdgeAgent } from "./agent.js";
import { StateStore } from "./state-store.js";

export interface RunnerOptions {
  readonly configPath?: string | undefined;
  readonly log: Logger;
  readonly version: string;
  readonly profiles?: ReadonlyMap<string, DeviceProfile>;
}

/** How long a new configuration has to show answers on its buses: three slowest polls, 5..60 s. */
function verifyWindowMs(config: EdgeConfig): number {
  const slowest = Math.max(...config.devices.map((d) => d.pollIntervalMs));
  return Math.min(60_000, Math.max(5000, 3 * slowest));
}

export class EdgeRunner {
  private agent: EdgeAgent | undefined;
  private uplink: Uplink | undefined;
  private outbox: Outbox | undefined;
  private state: StateStore | undefined;
  private status: StatusServerHandle | undefined;
  private readonly profiles: ReadonlyMap<string, DeviceProfile>;
  /**
   * config.update swaps run one at a time. Two interleaved swaps both stopped the same old agent and each started
   * a new one; the first of those was never stopped and kept polling and appending beside the second.
   */
  private configQueue: Promise<unknown> = Promise.resolve();
  private connectedBefore = false;

  constructor(
    private config: EdgeConfig,
    private readonly opts: RunnerOptions,
  ) {
    this.profiles = opts.profiles ?? defaultProfiles();
  }

  get statusPort(): number | undefined {
    return this.status?.port;
  }

  get currentAgent(): EdgeAgent | undefined {
    return this.agent;
  }

  async start(): Promise<void> {
    const c = this.config;
    this.outbox = openSqliteOutbox({ path: c.outbox.path, maxBytes: c.outbox.maxBytes, maxCount: c.outbox.maxCount });
    this.state = new StateStore(c.statePath);
    const password = c.gateway.password ?? readFileSync(c.gateway.passwordFile as string, "utf8").trim();
    await this.startAgent(c);
    this.uplink = new Uplink(
      { gatewayId: c.gateway.id, password, url: c.broker.url, caFile: c.broker.caFile, certFile: c.broker.certFile, keyFile: c.broker.keyFile, keepaliveS: c.broker.keepaliveS, reconnectMinMs: c.broker.reconnectMinMs, reconnectMaxMs: c.broker.reconnectMaxMs, inflight: c.broker.inflight },
      this.outbox,
      {
        onCommand: (_topic, payload) => {
          this.agent?.handleCommand(payload).catch((err: unknown) => this.opts.log.error({ err: (err as Error).message }, "command failed"));
        },
        onConnected: () => {
          this.opts.log.info({ broker: c.broker.url }, "broker connected");
          // A birth on every (re)connect (topics.ts); the agent appended one at start, which the first connect carries.
          if (this.connectedBefore) this.agent?.announce();
          this.connectedBefore = true;
        },
        onDisconnected: (reason) => this.opts.log.warn({ reason }, "broker disconnected; outbox keeps everything"),
      },
    );
    this.uplink.start();
    this.status = await startStatusServer(c.status.host, c.status.port, () => ({ ...(this.agent?.status() ?? {}), uplink: this.uplink?.stats }));
  }

  private async startAgent(config: EdgeConfig): Promise<void> {
    const agent = new EdgeAgent(config, {
      outbox: this.outbox as Outbox,
      state: this.state as StateStore,
      log: this.opts.log.child({ gatewayId: config.gateway.id }),
      profiles: this.profiles,
      version: this.opts.version,
      onAppend: () => this.uplink?.kick(),
      applyConfig: (next, version, commandId) => this.configCommand(next, version, commandId),
    });
    try {
      agent.start();
    } catch (err) {
      // An agent that failed half-way may already run bus loops and timers; nobody could stop it later.
      await agent.stop().catch(() => undefined);
      throw err;
    }
    this.agent = agent;
  }

  /** Run config swaps one after the other (see configQueue). */
  private serialized<T>(task: () => Promise<T>): Promise<T> {
    const result = this.configQueue.then(task, task);
    this.configQueue = result.catch(() => undefined);
    return result;
  }

  /**
   * A config.update command, answered through whichever agent runs at each step: rejected (remembered) when the
   * configuration is invalid or changes what only a visit may change — it was never going to be applied, so "failed"
   * would be the wrong answer; otherwise accepted, then done, or failed when it could not be put in place.
   */
  private configCommand(input: unknown, version: number, commandId: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    return this.serialized(async () => {
      const detail = `config version ${version}`;
      const checked = this.checkConfig(input);
      if (!checked.ok) {
        this.agent?.ack(commandId, "rejected", checked.reason, detail, true);
        return checked;
      }
      this.agent?.ack(commandId, "accepted", undefined, detail, false);
      const result = await this.swapConfig(checked.config, input, version);
      this.agent?.ack(commandId, result.ok ? "done" : "failed", result.ok ? undefined : result.reason, detail, true);
      return result;
    });
  }

  /**
   * config.update: validate, keep the old file, write the new one, restart the agent on it; if it does not start,
   * put the old file back and restart on the old configuration. Broker, outbox and state paths cannot change
   * remotely: a wrong broker URL would cut the gateway off for good.
   */
  applyConfig(input: unknown, version: number): Promise<{ ok: true } | { ok: false; reason: string }> {
    return this.serialized(async () => {
      const checked = this.checkConfig(input);
      return checked.ok ? this.swapConfig(checked.config, input, version) : checked;
    });
  }

  /** Validate against the configuration in force (so call it inside serialized()). */
  private checkConfig(input: unknown): { ok: true; config: EdgeConfig } | { ok: false; reason: string } {
    let next: EdgeConfig;
    try {
      next = parseEdgeConfig(input, this.profiles);
    } catch (err) {
      return { ok: false, reason: err instanceof ConfigError ? err.issues.map((i) => `${i.path}: ${i.message}`).join("; ").slice(0, 200) : (err as Error).message };
    }
    const old = this.config;
    if (next.gateway.id !== old.gateway.id || JSON.stringify(next.broker) !== JSON.stringify(old.broker) || next.outbox.path !== old.outbox.path || next.statePath !== old.statePath) {
      return { ok: false, reason: "gateway id, broker, outbox and state paths can only be changed on site" };
    }
    return { ok: true, config: next };
  }

  private async swapConfig(next: EdgeConfig, input: unknown, version: number): Promise<{ ok: true } | { ok: false; reason: string }> {
    const old = this.config;
    const path = this.opts.configPath;
    if (path) {
      // A file that cannot be written (full card, permissions) used to throw out of the command handler: no ack,
      // and the cloud never learned the outcome. Nothing has been swapped yet, so the old agent simply keeps running.
      try {
        if (existsSync(path)) copyFileSync(path, `${path}.bak`);
        writeFileSync(`${path}.new`, toYaml(input));
        renameSync(`${path}.new`, path);
      } catch (err) {
        this.opts.log.error({ err: (err as Error).message, version }, "configuration file not written; keeping the old configuration");
        return { ok: false, reason: `cannot write ${path}: ${(err as Error).message}`.slice(0, 200) };
      }
    }
    // Buses that answered under the old configuration must answer under the new one: a wrong port, host or
    // serial path in an update would otherwise leave meters unguarded and sensors unwatched until someone visits.
    const answering = this.agent?.answeringBuses() ?? new Set<string>();
    await this.agent?.stop();
    try {
      await this.startAgent(next);
      const required = new Set([...answering].filter((b) => next.buses.some((nb) => nb.id === b)));
      const silent = await this.waitForAnswers(required, verifyWindowMs(next));
      if (silent.length > 0) throw new Error(`no device answered on bus ${silent.join(", ")} within ${verifyWindowMs(next)} ms`);
      this.config = next;
      this.opts.log.info({ version }, "configuration applied");
      return { ok: true };
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message, version }, "configuration failed; rolling back");
      await this.agent?.stop().catch(() => undefined);
      if (path && existsSync(`${path}.bak`)) renameSync(`${path}.bak`, path);
      await this.startAgent(old);
      return { ok: false, reason: `rolled back: ${(err as Error).message}`.slice(0, 200) };
    }
  }

  /** Wait until every bus in `required` has a device that answered; returns the buses still silent at the end. */
  private async waitForAnswers(required: ReadonlySet<string>, windowMs: number): Promise<string[]> {
    const deadline = Date.now() + windowMs;
    for (;;) {
      const answering = this.agent?.answeringBuses() ?? new Set<string>();
      const silent = [...required].filter((b) => !answering.has(b));
      if (silent.length === 0 || Date.now() >= deadline) return silent;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    // Let a config swap in progress finish first: otherwise it starts its new agent after this one was stopped,
    // and that agent polls on into a closed outbox.
    await this.configQueue;
    await this.status?.close();
    await this.agent?.stop();
    await this.uplink?.stop(true);
    this.outbox?.close();
    this.state?.close();
  }
}
