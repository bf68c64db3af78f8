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

export class EdgeRunner {
  private agent: EdgeAgent | undefined;
  private uplink: Uplink | undefined;
  private outbox: Outbox | undefined;
  private state: StateStore | undefined;
  private status: StatusServerHandle | undefined;
  private readonly profiles: ReadonlyMap<string, DeviceProfile>;

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
    this.startAgent(c);
    this.uplink = new Uplink(
      { gatewayId: c.gateway.id, password, url: c.broker.url, caFile: c.broker.caFile, certFile: c.broker.certFile, keyFile: c.broker.keyFile, keepaliveS: c.broker.keepaliveS, reconnectMinMs: c.broker.reconnectMinMs, reconnectMaxMs: c.broker.reconnectMaxMs, inflight: c.broker.inflight },
      this.outbox,
      {
        onCommand: (_topic, payload) => {
          this.agent?.handleCommand(payload).catch((err: unknown) => this.opts.log.error({ err: (err as Error).message }, "command failed"));
        },
        onConnected: () => this.opts.log.info({ broker: c.broker.url }, "broker connected"),
        onDisconnected: (reason) => this.opts.log.warn({ reason }, "broker disconnected; outbox keeps everything"),
      },
    );
    this.uplink.start();
    this.status = await startStatusServer(c.status.host, c.status.port, () => ({ ...(this.agent?.status() ?? {}), uplink: this.uplink?.stats }));
  }

  private startAgent(config: EdgeConfig): void {
    const agent = new EdgeAgent(config, {
      outbox: this.outbox as Outbox,
      state: this.state as StateStore,
      log: this.opts.log.child({ gatewayId: config.gateway.id }),
      profiles: this.profiles,
      version: this.opts.version,
      onAppend: () => this.uplink?.kick(),
      applyConfig: async (next, version, commandId) => {
        const result = await this.applyConfig(next, version);
        this.agent?.ack(commandId, result.ok ? "done" : "failed", result.ok ? undefined : result.reason, `config version ${version}`, true);
        return result;
      },
    });
    agent.start();
    this.agent = agent;
  }

  /**
   * config.update: validate, keep the old file, write the new one, restart the agent on it; if it does not start,
   * put the old file back and restart on the old configuration. Broker, outbox and state paths cannot change
   * remotely: a wrong broker URL would cut the gateway off for good.
   */
  async applyConfig(input: unknown, version: number): Promise<{ ok: true } | { ok: false; reason: string }> {
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
    const path = this.opts.configPath;
    if (path) {
      if (existsSync(path)) copyFileSync(path, `${path}.bak`);
      writeFileSync(`${path}.new`, toYaml(input));
      renameSync(`${path}.new`, path);
    }
    await this.agent?.stop();
    try {
      this.startAgent(next);
      this.config = next;
      this.opts.log.info({ version }, "configuration applied");
      return { ok: true };
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message, version }, "configuration failed to start; rolling back");
      if (path && existsSync(`${path}.bak`)) renameSync(`${path}.bak`, path);
      this.startAgent(old);
      return { ok: false, reason: `did not start: ${(err as Error).message}`.slice(0, 200) };
    }
  }

  async stop(): Promise<void> {
    await this.status?.close();
    await this.agent?.stop();
    await this.uplink?.stop(true);
    this.outbox?.close();
    this.state?.close();
  }
}
