// The running simulated field: builds the devices and buses of a scenario, advances the simulated clock, plays
// scripted fires, serves each bus over Modbus TCP or RTU on a pty, and takes actions from the control surface.

import { AgriError } from "../protocols/errors.js";
import type { DeviceProfile } from "../protocols/profiles/schema.js";
import { SimBus } from "./modbus/bus.js";
import type { Fault } from "./modbus/faults.js";
import { openPty, type PtyHandle } from "./modbus/pty.js";
import { attachRtuEngine, type RtuEngine } from "./modbus/rtu-server.js";
import { startTcpServer, type TcpServerHandle } from "./modbus/tcp-server.js";
import type { SimDevice } from "./models/device.js";
import { FireSensorModel, type FireSpec } from "./models/fire-sensor.js";
import { MeterModel } from "./models/meter.js";
import { seededRandom, type Random } from "./models/random.js";
import { RelayModuleModel } from "./models/relay-module.js";
import { builtInProfileMap, type Scenario, type ScenarioBus, type ScenarioDevice } from "./scenario.js";

export interface BusRuntime {
  readonly spec: ScenarioBus;
  readonly bus: SimBus;
  tcp?: TcpServerHandle;
  pty?: PtyHandle | undefined;
  rtu?: RtuEngine | undefined;
}

export interface FieldOptions {
  /** Drive the clock from a timer (default) or only through advance() (tests). */
  readonly autoTick?: boolean;
  readonly socatPath?: string;
}

export class Field {
  readonly devices = new Map<string, SimDevice>();
  readonly buses = new Map<string, BusRuntime>();
  private readonly deviceSpecs = new Map<string, ScenarioDevice>();
  private readonly random: Random;
  simNowMs: number;
  speed: number;
  private timer: NodeJS.Timeout | undefined;
  private lastRealMs = 0;
  private readonly pendingFires: { deviceId: string; atMs: number; untilMs: number | undefined; started: boolean; script: FireScript }[] = [];

  constructor(
    readonly scenario: Scenario,
    private readonly profiles: ReadonlyMap<string, DeviceProfile> = builtInProfileMap(),
    private readonly opts: FieldOptions = {},
  ) {
    this.random = seededRandom(scenario.seed);
    this.simNowMs = Date.parse(scenario.clock.start);
    this.speed = scenario.clock.speed;
    for (const b of scenario.buses) this.buses.set(b.id, { spec: b, bus: new SimBus(b.id, this.random, () => this.simNowMs) });
    for (const d of scenario.devices) this.addDevice(d);
    for (const d of scenario.devices) {
      const c = d.meter?.contactor;
      if (!c) continue;
      const meter = this.devices.get(d.id) as MeterModel;
      const board = this.devices.get(c.device) as RelayModuleModel;
      meter.contactorClosed = () => board.coil(c.channel - 1);
    }
  }

  private addDevice(d: ScenarioDevice): void {
    const profile = this.profiles.get(d.profile);
    if (!profile) throw new Error(`unknown profile ${d.profile}`);
    const random = seededRandom(this.scenario.seed ^ hash(d.id));
    let device: SimDevice;
    if (profile.kind === "meter") {
      const m = d.meter;
      device = new MeterModel({
        id: d.id,
        profile,
        loads: m?.loads ?? [],
        initialImportWh: m?.initialImportWh ?? 0,
        ...(m?.rolloverWh !== undefined ? { rolloverWh: m.rolloverWh } : {}),
        relayClosed: m?.relayClosed ?? true,
        holesAreIllegal: d.holesAreIllegal,
        random,
      });
    } else if (profile.kind === "relay-module") {
      device = new RelayModuleModel(d.id, profile, d.relayModule?.initiallyOn ?? true);
    } else {
      const f = d.fire;
      device = new FireSensorModel({
        id: d.id,
        profile,
        random,
        ...(f ? { ambientC: f.ambientC, dailySwingC: f.dailySwingC, humidityPct: f.humidityPct, batteryMv: f.batteryMv, drainMvPerDay: f.drainMvPerDay, smokeNoiseDbPerM: f.smokeNoiseDbPerM } : {}),
      });
      const start = Date.parse(this.scenario.clock.start);
      for (const script of f?.fires ?? []) {
        const untilMs = script.durationS ? start + (script.atS + script.durationS) * 1000 : undefined;
        this.pendingFires.push({ deviceId: d.id, atMs: start + script.atS * 1000, untilMs, started: false, script });
      }
    }
    this.devices.set(d.id, device);
    this.deviceSpecs.set(d.id, d);
    const runtime = this.buses.get(d.bus);
    if (!runtime) throw new Error(`no bus ${d.bus}`);
    runtime.bus.attach(d.unit, device);
    for (const fault of d.faults) runtime.bus.addFault(d.unit, fault);
    if (d.dead) runtime.bus.setAlive(d.unit, false);
  }

  /** Advance simulated time by `ms`, stepping every device and playing scripted fires. */
  advance(ms: number): void {
    if (ms <= 0) return;
    this.simNowMs += ms;
    for (const f of this.pendingFires) {
      const device = this.devices.get(f.deviceId) as FireSensorModel;
      if (!f.started && this.simNowMs >= f.atMs) {
        f.started = true;
        device.startFire(f.atMs, fireSpecOf(f.script));
      }
      if (f.started && f.untilMs !== undefined && this.simNowMs >= f.untilMs && device.fire) {
        device.stopFire();
        f.untilMs = undefined;
      }
    }
    for (const d of this.devices.values()) d.step(ms, this.simNowMs);
  }

  async start(): Promise<void> {
    for (const runtime of this.buses.values()) await this.openTransport(runtime);
    if (this.opts.autoTick !== false) {
      this.lastRealMs = performance.now();
      this.timer = setInterval(() => {
        const real = performance.now();
        const dt = real - this.lastRealMs;
        this.lastRealMs = real;
        this.advance(dt * this.speed);
      }, this.scenario.clock.tickMs);
    }
  }

  private async openTransport(runtime: BusRuntime): Promise<void> {
    const { spec, bus } = runtime;
    if (spec.tcp) runtime.tcp = await startTcpServer(bus, spec.tcp.host, spec.tcp.port);
    if (spec.rtu) {
      const rtu = spec.rtu;
      runtime.pty = await openPty(rtu.path, this.opts.socatPath);
      runtime.rtu = attachRtuEngine(bus, runtime.pty, {
        lineTiming: rtu.lineTiming ? { baud: rtu.baud, parity: rtu.parity, stopBits: rtu.stopBits, turnaroundMs: rtu.turnaroundMs } : undefined,
      });
    }
  }

  /** A USB-RS485 adapter pulled out: the pty disappears; replug() brings it back at the same path. */
  async unplug(busId: string): Promise<void> {
    const runtime = this.requireBus(busId);
    if (!runtime.spec.rtu) throw new FieldError("SIM_NOT_RTU", `bus ${busId} is not an RTU bus`);
    runtime.rtu?.stop();
    await runtime.pty?.close();
    runtime.pty = undefined;
    runtime.rtu = undefined;
  }

  async replug(busId: string): Promise<void> {
    const runtime = this.requireBus(busId);
    if (!runtime.spec.rtu) throw new FieldError("SIM_NOT_RTU", `bus ${busId} is not an RTU bus`);
    if (!runtime.pty) await this.openTransport(runtime);
  }

  requireBus(busId: string): BusRuntime {
    const r = this.buses.get(busId);
    if (!r) throw new FieldError("SIM_NO_SUCH_BUS", `no bus ${busId}`);
    return r;
  }

  requireDevice(deviceId: string): SimDevice {
    const d = this.devices.get(deviceId);
    if (!d) throw new FieldError("SIM_NO_SUCH_DEVICE", `no device ${deviceId}`);
    return d;
  }

  /** The bus and unit id a device sits at. */
  locate(deviceId: string): { runtime: BusRuntime; unit: number } {
    const spec = this.deviceSpecs.get(deviceId);
    if (!spec) throw new FieldError("SIM_NO_SUCH_DEVICE", `no device ${deviceId}`);
    return { runtime: this.requireBus(spec.bus), unit: spec.unit };
  }

  setAlive(deviceId: string, alive: boolean): void {
    const { runtime, unit } = this.locate(deviceId);
    runtime.bus.setAlive(unit, alive);
  }

  addFault(deviceId: string, fault: Fault): void {
    const { runtime, unit } = this.locate(deviceId);
    runtime.bus.addFault(unit, fault);
  }

  clearFaults(deviceId: string): void {
    const { runtime, unit } = this.locate(deviceId);
    runtime.bus.clearFaults(unit);
  }

  describe(): Record<string, unknown> {
    return {
      scenario: this.scenario.name,
      clock: { simTime: new Date(this.simNowMs).toISOString(), speed: this.speed },
      buses: [...this.buses.values()].map((r) => ({
        id: r.spec.id,
        transport: r.spec.tcp ? { tcp: `${r.spec.tcp.host}:${r.tcp?.port ?? r.spec.tcp.port}` } : { rtu: r.spec.rtu?.path, connected: r.pty !== undefined },
        counters: r.bus.counters,
        units: r.bus.units().map(([unit, d]) => ({ unit, device: d.id, profile: d.profile.id, alive: r.bus.isAlive(unit), faults: r.bus.faultsOf(unit) })),
      })),
      devices: [...this.devices.values()].map((d) => ({ ...d.describe(), ...this.placement(d.id) })),
    };
  }

  placement(deviceId: string): Record<string, unknown> {
    const spec = this.deviceSpecs.get(deviceId);
    return spec ? { bus: spec.bus, unit: spec.unit, ...(spec.location ? { location: spec.location } : {}), ...(spec.description ? { description: spec.description } : {}) } : {};
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const r of this.buses.values()) {
      r.rtu?.stop();
      await r.pty?.close();
      await r.tcp?.close();
    }
  }
}

export class FieldError extends AgriError {
  constructor(code: string, message: string) {
    super(code, false, message);
  }
}

type FireScript = NonNullable<ScenarioDevice["fire"]>["fires"][number];

/** The optional curve parameters a script or a control action sets (omitted ones keep the defaults). */
export function fireSpecOf(script: Partial<Record<keyof FireSpec, number | undefined>>): Partial<FireSpec> {
  const spec: { -readonly [K in keyof FireSpec]?: number } = {};
  for (const key of ["smokeRiseDbPerMPerMin", "maxSmokeDbPerM", "tempRiseCPerMin", "maxTempC"] as const) {
    const v = script[key];
    if (v !== undefined) spec[key] = v;
  }
  return spec;
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}
