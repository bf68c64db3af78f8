// One physical bus: a single loop that performs one Modbus transaction at a time (RS-485 is half duplex, and
// modbus-serial has no queue of its own), all buses running in parallel. It polls each device by its read plan,
// serves commands (relay writes, read-backs) before polls and fire sensors before meters, retries with back-off,
// gives up on a device's poll at its first timeout so a dead device cannot starve the bus, and reports readings,
// failures and online/offline changes to the agent.

import type { PointReading } from "../../protocols/codec/point-codec.js";
import type { ModbusRequest } from "../../protocols/modbus/pdu.js";
import type { DeviceProfile } from "../../protocols/profiles/schema.js";
import { ModbusError, ModbusFrameError, ModbusPortError, ModbusTimeoutError } from "./errors.js";
import { decodeReadResult, type ReadRequest } from "./read-planner.js";
import { nextPollDelayMs, pickNext, updateHealth, type DeviceHealth, type HealthPolicy, type PriorityClass } from "./schedule.js";
import type { ModbusAnswer, ModbusTransport } from "./transport.js";

export interface PolledDevice {
  readonly id: string;
  readonly unitId: number;
  readonly profile: DeviceProfile;
  readonly priority: Exclude<PriorityClass, "command">;
  readonly pollIntervalMs: number;
  readonly plan: readonly ReadRequest[];
}

export interface BusEngineOptions {
  readonly busId: string;
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly retryBackoffMs: number;
  readonly health: HealthPolicy;
}

export interface BusEngineEvents {
  /** A complete poll: every planned request answered. Readings may still hold undecodable values (ok:false). */
  onReadings(device: PolledDevice, readings: readonly PointReading[], atMs: number, latencyMs: number, startedAtMs: number): void;
  onPollFailed(device: PolledDevice, error: ModbusError, atMs: number): void;
  onHealthChange(device: PolledDevice, online: boolean, health: DeviceHealth, lastError: ModbusError | undefined, atMs: number): void;
  /** An event handler threw; the loop logged nothing itself and went on. */
  onLoopError?(err: Error): void;
}

export interface BusCounters {
  transactions: number;
  errors: number;
  timeouts: number;
  exceptions: number;
  frameErrors: number;
  portErrors: number;
  retries: number;
  /** Sum and count of successful transaction latencies, for the mean; max for the worst. */
  latencyMsSum: number;
  latencyMsMax: number;
}

interface Command {
  readonly unitId: number;
  readonly req: ModbusRequest;
  resolve(a: ModbusAnswer): void;
  reject(e: Error): void;
}

interface DeviceRuntime {
  readonly device: PolledDevice;
  health: DeviceHealth;
  dueAtMs: number;
  lastError: ModbusError | undefined;
  lastPollAtMs: number | undefined;
  lastOkAtMs: number | undefined;
}

export class BusEngine {
  readonly counters: BusCounters = { transactions: 0, errors: 0, timeouts: 0, exceptions: 0, frameErrors: 0, portErrors: 0, retries: 0, latencyMsSum: 0, latencyMsMax: 0 };
  private readonly devices = new Map<string, DeviceRuntime>();
  private readonly commands: Command[] = [];
  private running = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly transport: ModbusTransport,
    private readonly opts: BusEngineOptions,
    private readonly events: BusEngineEvents,
    private readonly now: () => number = Date.now,
  ) {}

  addDevice(device: PolledDevice): void {
    this.devices.set(device.id, { device, health: { consecutiveFailures: 0, online: true }, dueAtMs: this.now(), lastError: undefined, lastPollAtMs: undefined, lastOkAtMs: undefined });
    this.wake?.();
  }

  deviceState(id: string): Readonly<DeviceRuntime> | undefined {
    return this.devices.get(id);
  }

  transportOpen(): boolean {
    return this.transport.isOpen();
  }

  describeTransport(): string {
    return this.transport.describe();
  }

  /** Queue a command (relay write, read-back); it runs before any poll, one transaction like any other. */
  command(unitId: number, req: ModbusRequest): Promise<ModbusAnswer> {
    return new Promise((resolve, reject) => {
      this.commands.push({ unitId, req, resolve, reject });
      this.wake?.();
    });
  }

  /** Ask for a device to be polled at once (after a write, or when the fire guard wants a fresh sample). */
  pollSoon(deviceId: string): void {
    const rt = this.devices.get(deviceId);
    if (rt) rt.dueAtMs = Math.min(rt.dueAtMs, this.now());
    this.wake?.();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    for (const c of this.commands.splice(0)) c.reject(new ModbusPortError(`bus ${this.opts.busId} stopped`));
    await this.transport.close();
  }

  private sleep(untilMs: number | undefined): Promise<void> {
    return new Promise((resolve) => {
      const timer = untilMs === undefined ? undefined : setTimeout(done, Math.max(0, untilMs - this.now()));
      function done(): void {
        if (timer) clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        await this.step();
      } catch (err) {
        // A bug in an event handler must not stop the bus: every meter and sensor on it would go unwatched.
        this.counters.errors++;
        this.events.onLoopError?.(err as Error);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async step(): Promise<void> {
    {
      const command = this.commands.shift();
      if (command) {
        await this.runCommand(command);
        return;
      }
      const now = this.now();
      const { next, wakeAtMs } = pickNext(
        [...this.devices.values()].map((d) => ({ deviceId: d.device.id, priority: d.device.priority, dueAtMs: d.dueAtMs })),
        now,
      );
      if (!next) {
        await this.sleep(wakeAtMs);
        return;
      }
      const rt = this.devices.get(next.deviceId);
      if (rt) await this.poll(rt);
    }
  }

  private async runCommand(c: Command): Promise<void> {
    try {
      c.resolve(await this.transact(c.unitId, c.req));
    } catch (err) {
      c.reject(err as Error);
    }
  }

  /** One request with retries; every attempt is one transaction on the wire. */
  private async transact(unitId: number, req: ModbusRequest): Promise<ModbusAnswer> {
    let last: ModbusError | undefined;
    for (let attempt = 1; attempt <= this.opts.attempts; attempt++) {
      if (attempt > 1) {
        this.counters.retries++;
        await new Promise((r) => setTimeout(r, this.opts.retryBackoffMs * 2 ** (attempt - 2)));
      }
      const t0 = performance.now();
      this.counters.transactions++;
      try {
        const answer = await this.transport.request(unitId, req, { timeoutMs: this.opts.timeoutMs });
        const latency = performance.now() - t0;
        this.counters.latencyMsSum += latency;
        this.counters.latencyMsMax = Math.max(this.counters.latencyMsMax, latency);
        return answer;
      } catch (err) {
        const e = err instanceof ModbusError ? err : new ModbusPortError(String(err));
        this.count(e);
        last = e;
        // A timeout already cost a full timeout of bus time; retrying a dead device twice more starves the others.
        if (!e.retryable || e instanceof ModbusTimeoutError) break;
      }
    }
    throw last ?? new ModbusPortError("no attempt made");
  }

  private count(e: ModbusError): void {
    this.counters.errors++;
    if (e.code === "EDGE_MODBUS_TIMEOUT") this.counters.timeouts++;
    else if (e.code === "EDGE_MODBUS_EXCEPTION") this.counters.exceptions++;
    else if (e.code === "EDGE_MODBUS_FRAME") this.counters.frameErrors++;
    else this.counters.portErrors++;
  }

  private async poll(rt: DeviceRuntime): Promise<void> {
    const { device } = rt;
    const started = this.now();
    const t0 = performance.now();
    rt.lastPollAtMs = started;
    const readings: PointReading[] = [];
    let error: ModbusError | undefined;
    for (const req of device.plan) {
      try {
        const answer = await this.transact(device.unitId, { fc: req.fc, address: req.address, quantity: req.quantity });
        try {
          readings.push(...decodeReadResult(req, "words" in answer ? answer.words : "bits" in answer ? answer.bits : []));
        } catch (err) {
          // An answer that does not fit the plan (PlanError) is a bad frame as far as this poll is concerned.
          const e = new ModbusFrameError(`unit ${device.unitId}: ${(err as Error).message}`);
          this.count(e);
          throw e;
        }
      } catch (err) {
        error = err instanceof ModbusError ? err : new ModbusFrameError(String(err));
        break;
      }
    }
    const at = this.now();
    const { health, change } = updateHealth(rt.health, error === undefined, this.opts.health);
    rt.health = health;
    rt.dueAtMs = started + nextPollDelayMs(health, device.pollIntervalMs, this.opts.health);
    if (error) {
      rt.lastError = error;
      this.events.onPollFailed(device, error, at);
    } else {
      rt.lastOkAtMs = at;
      this.events.onReadings(device, readings, at, performance.now() - t0, started);
    }
    if (change) this.events.onHealthChange(device, change === "came-online", health, rt.lastError, at);
  }
}
