// The gateway agent: the imperative shell around the pure cores. It builds one BusEngine per configured bus,
// turns each poll into telemetry, billing readings (after the energy check), prepaid-guard steps (relay writes with
// read-back verification) and fire-guard steps (alarms on the alarm lane), persists guard state, puts every uplink
// message into the durable outbox and lets the uplink drain it. Commands from the cloud come back through
// handleCommand. Everything that decides lives in the cores; this file only moves data between them and the world.

import type { Logger } from "pino";
import type { PointReading } from "../../protocols/codec/point-codec.js";
import { BILLING_ROLES, type GatewayEvent } from "../../protocols/mqtt/messages.js";
import { formatTopic, type TopicName } from "../../protocols/mqtt/topics.js";
import type { DeviceProfile, Point, WriteTarget } from "../../protocols/profiles/schema.js";
import type { BusConfig, DeviceConfig, EdgeConfig } from "../config/schema.js";
import { creditGuard, initialCreditGuardState, type CreditEffect, type CreditGuardConfig, type CreditGuardInput, type CreditGuardState, type RelayEventDraft, type RelayState, type RelayVerifyFailedEvent } from "../guards/prepaid-guard.js";
import { FIRE_GUARD_DEFAULTS, fireGuard, initialFireGuardState, type FireEffect, type FireGuardConfig, type FireGuardInput, type FireGuardState } from "../guards/fire-guard.js";
import { BusEngine, type PolledDevice } from "../modbus/bus-engine.js";
import type { ModbusError } from "../modbus/errors.js";
import { planReads } from "../modbus/read-planner.js";
import { RtuTransport } from "../modbus/rtu-transport.js";
import { TcpTransport } from "../modbus/tcp-transport.js";
import type { ModbusTransport } from "../modbus/transport.js";
import type { Outbox, OutboxPriority } from "../outbox/outbox.js";
import { checkEnergy, type EnergyBaseline } from "./energy-check.js";
import type { StateStore } from "./state-store.js";
import { decideCommand, type CommandDecision } from "./commands.js";

export interface AgentDeps {
  readonly outbox: Outbox;
  readonly state: StateStore;
  readonly log: Logger;
  readonly profiles: ReadonlyMap<string, DeviceProfile>;
  readonly version: string;
  readonly now?: () => number;
  /** Called after every append, so the uplink publishes at once (alarms especially). */
  readonly onAppend?: (priority: OutboxPriority) => void;
  /**
   * A config.update (schema-checked as a command only): the runner validates the configuration, swaps it in and
   * sends every acknowledgement of it — rejected, or accepted then done / failed.
   */
  readonly applyConfig?: (config: unknown, configVersion: number, commandId: string) => Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Build a transport for a bus (tests inject; default TCP or RTU from the config). */
  readonly transportFor?: (bus: BusConfig) => ModbusTransport;
}

interface RelayBinding {
  /** The device whose register or coil switches the supply (the meter itself, or a relay board). */
  readonly deviceId: string;
  readonly target: WriteTarget;
  /** Point to read back after a write (on the same device). */
  readonly readBack: Point | undefined;
  /** Normally-closed contactor: coil energised = supply open. */
  readonly inverted: boolean;
}

interface MeterRuntime {
  readonly cfg: DeviceConfig;
  readonly profile: DeviceProfile;
  readonly importPoint: Point;
  readonly billingPoints: readonly Point[];
  readonly relay: RelayBinding | undefined;
  readonly guardConfig: CreditGuardConfig;
  guard: CreditGuardState;
  baseline: EnergyBaseline | undefined;
  /** Latest good billing values since the last billing message, per point. */
  pendingBilling: Map<string, { wh: number; exact: boolean; droppedWh: number; words: readonly number[]; raw: number; atMs: number }>;
  lastBillingAtMs: number;
  writesInFlight: number;
  lastWriteDoneAtMs: number;
  bootPending: boolean;
}

interface DeviceView {
  readonly cfg: DeviceConfig;
  readonly profile: DeviceProfile;
  readonly engine: BusEngine;
  readonly polled: PolledDevice;
  lastReadings: Map<string, { value: number; atMs: number }>;
  lastError: string | undefined;
  errors: number;
  online: boolean;
}

/** The cumulative registers billing readings carry (the protocol's list). */
const BILLING_ROLE_SET: ReadonlySet<string> = new Set(BILLING_ROLES);
/** How long a guard waits for its meter's first answer before re-asserting the relay without a register value. */
const BOOT_WAIT_MS = 5000;

export class EdgeAgent {
  private readonly engines = new Map<string, BusEngine>();
  private readonly devices = new Map<string, DeviceView>();
  private readonly meters = new Map<string, MeterRuntime>();
  private readonly fires = new Map<string, { state: FireGuardState; config: FireGuardConfig }>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly now: () => number;
  readonly counters = { badCommands: 0, tamperEvents: 0, alarms: 0, billingReadings: 0, telemetryBatches: 0, relayWrites: 0, relayWriteFailures: 0 };
  private telemetryDirty = new Map<string, Map<string, { value: number; atMs: number; point: Point }>>();
  private started = false;
  private startedAtMs = 0;

  constructor(
    readonly config: EdgeConfig,
    private readonly deps: AgentDeps,
  ) {
    this.now = deps.now ?? Date.now;
  }

  // ─── construction ────────────────────────────────────────────────────────────────────────────────────────────

  private profileOf(cfg: DeviceConfig): DeviceProfile {
    const p = this.deps.profiles.get(cfg.profile);
    if (!p) throw new Error(`unknown profile ${cfg.profile}`); // the config schema already refused this
    return p;
  }

  private transportFor(bus: BusConfig): ModbusTransport {
    if (this.deps.transportFor) return this.deps.transportFor(bus);
    if (bus.tcp) return new TcpTransport(bus.tcp.host, bus.tcp.port);
    const rtu = bus.rtu as NonNullable<BusConfig["rtu"]>;
    return new RtuTransport({ path: rtu.path, baud: rtu.baud, parity: rtu.parity, stopBits: rtu.stopBits });
  }

  start(): void {
    const c = this.config;
    for (const bus of c.buses) {
      const log = this.deps.log.child({ bus: bus.id });
      const engine = new BusEngine(
        this.transportFor(bus),
        { busId: bus.id, timeoutMs: bus.timeoutMs, attempts: bus.attempts, retryBackoffMs: bus.retryBackoffMs, health: { offlineAfterFailures: c.offlineAfterFailures, offlinePollMaxMs: c.offlinePollMaxMs } },
        {
          onReadings: (d, readings, at, _latency, startedAt) => this.onReadings(d.id, readings, at, startedAt),
          onPollFailed: (d, err, at) => this.onPollFailed(d.id, err, at, log),
          onHealthChange: (d, online, health, lastError, at) => this.onHealthChange(d.id, online, health.consecutiveFailures, lastError, at),
          onLoopError: (err) => log.error({ err: err.message, stack: err.stack }, "bus loop error (the bus keeps running)"),
        },
        this.now,
      );
      this.engines.set(bus.id, engine);
    }
    for (const cfg of c.devices) {
      const profile = this.profileOf(cfg);
      const wanted = cfg.points ? profile.points.filter((p) => cfg.points?.includes(p.id)) : profile.points.filter((p) => p.poll);
      const polled: PolledDevice = {
        id: cfg.id,
        unitId: cfg.unit,
        profile,
        priority: cfg.role,
        pollIntervalMs: cfg.pollIntervalMs,
        plan: planReads(profile, wanted, { bridgeGaps: !cfg.noGapBridging }),
      };
      const engine = this.engines.get(cfg.bus) as BusEngine;
      this.devices.set(cfg.id, { cfg, profile, engine, polled, lastReadings: new Map(), lastError: undefined, errors: 0, online: true });
      if (cfg.role === "fire-sensor") {
        const config: FireGuardConfig = { ...FIRE_GUARD_DEFAULTS, ...(cfg.fire ?? {}), pollIntervalMs: cfg.pollIntervalMs };
        const persisted = this.deps.state.get<FireGuardState>(`fire:${cfg.id}`);
        this.fires.set(cfg.id, { state: persisted ?? initialFireGuardState(cfg.id, this.now()), config });
      }
    }
    for (const cfg of c.devices) if (cfg.role === "meter") this.meters.set(cfg.id, this.buildMeter(cfg));
    this.startedAtMs = this.now();
    this.announce();
    // After a reboot each guard re-asserts its relay from disk (invariant 4): at the meter's first answer, so the
    // relay event carries the register value, or after BOOT_WAIT_MS if the meter stays silent.
    this.timers.push(setTimeout(() => this.bootPendingGuards(), BOOT_WAIT_MS));
    for (const d of this.devices.values()) d.engine.addDevice(d.polled);
    for (const e of this.engines.values()) e.start();
    this.timers.push(setInterval(() => this.flushTelemetry(), c.telemetry.intervalMs));
    this.timers.push(setInterval(() => this.flushBilling(false), Math.min(c.telemetry.billingIntervalMs, 5000)));
    this.timers.push(setInterval(() => this.tickFire(), 1000));
    this.started = true;
  }

  private buildMeter(cfg: DeviceConfig): MeterRuntime {
    const profile = this.profileOf(cfg);
    const importPoint = profile.points.find((p) => p.role === "import_energy") as Point;
    let relay: RelayBinding | undefined;
    const cut = cfg.supply?.cut;
    if (cut?.kind === "meter-relay") {
      const target = profile.writes.find((w) => w.role === "relay") as WriteTarget;
      relay = { deviceId: cfg.id, target, readBack: profile.points.find((p) => p.id === target.readBack), inverted: false };
    } else if (cut?.kind === "contactor") {
      const board = this.devices.get(cut.device) as DeviceView;
      const target = board.profile.writes.find((w) => w.role === "relay" && w.channel === String(cut.channel)) as WriteTarget;
      relay = { deviceId: cut.device, target, readBack: board.profile.points.find((p) => p.id === target.readBack), inverted: cut.contactor === "normally-closed" };
    }
    const stored = this.deps.state.get<{ guard: CreditGuardState; baseline?: EnergyBaseline }>(`meter:${cfg.id}`);
    return {
      cfg,
      profile,
      importPoint,
      billingPoints: profile.points.filter((p) => BILLING_ROLE_SET.has(p.role) && (cfg.points ? cfg.points.includes(p.id) : p.poll)),
      relay,
      guardConfig: { warnAtWh: cfg.supply?.warnAtWh ?? [5000, 1000], noGrantPolicy: cfg.supply?.noGrantPolicy ?? "open" },
      guard: stored?.guard ?? initialCreditGuardState(cfg.id),
      baseline: stored?.baseline,
      pendingBilling: new Map(),
      lastBillingAtMs: this.now(),
      writesInFlight: 0,
      lastWriteDoneAtMs: 0,
      // Only a meter whose supply this gateway can cut has a prepaid guard to restore.
      bootPending: cfg.supply !== undefined,
    };
  }

  /**
   * Append a birth: version, start time and devices. At start, and through the runner on every reconnect after
   * the first, as topics.ts and protocols/README.md promise ("sent on every (re)connect"); it was only sent at start,
   * so a cloud never heard of a gateway's devices again after a broker outage.
   */
  announce(): void {
    const c = this.config;
    this.appendMessage("birth", {
      version: this.deps.version,
      startedAt: new Date(this.startedAtMs).toISOString(),
      devices: c.devices.map((d) => ({ deviceId: d.id, profileId: d.profile, kind: this.profileOf(d).kind, bus: d.bus, unitId: d.unit })),
    }, "event");
  }

  async stop(): Promise<void> {
    for (const t of this.timers.splice(0)) clearTimeout(t);
    if (this.started) {
      this.flushBilling(true);
      this.flushTelemetry();
    }
    await Promise.all([...this.engines.values()].map((e) => e.stop()));
    for (const m of this.meters.values()) this.persistMeter(m);
    for (const [id, f] of this.fires) this.deps.state.put(`fire:${id}`, f.state);
    this.started = false;
  }

  // ─── the outbox ──────────────────────────────────────────────────────────────────────────────────────────────

  private appendMessage(topicName: TopicName, body: Record<string, unknown>, priority: OutboxPriority): number {
    const payload = { v: 1, gatewayId: this.config.gateway.id, sentAt: new Date(this.now()).toISOString(), ...body };
    const { seq } = this.deps.outbox.append({ topicName, topic: formatTopic(topicName, { gatewayId: this.config.gateway.id }), payload, priority });
    this.deps.onAppend?.(priority);
    return seq;
  }

  private emitEvent(event: GatewayEvent): void {
    this.appendMessage("events", { events: [event] }, "event");
  }

  // ─── polls ───────────────────────────────────────────────────────────────────────────────────────────────────

  private onReadings(deviceId: string, readings: readonly PointReading[], atMs: number, startedAtMs: number): void {
    const view = this.devices.get(deviceId);
    if (!view) return;
    view.lastError = undefined;
    const byId = new Map(readings.map((r) => [r.pointId, r]));
    const dirty = this.telemetryDirty.get(deviceId) ?? new Map<string, { value: number; atMs: number; point: Point }>();
    for (const r of readings) {
      if (!r.ok) continue;
      view.lastReadings.set(r.pointId, { value: r.value, atMs });
      const point = view.profile.points.find((p) => p.id === r.pointId);
      if (point) dirty.set(r.pointId, { value: r.value, atMs, point });
    }
    this.telemetryDirty.set(deviceId, dirty);

    const meter = this.meters.get(deviceId);
    if (meter) this.onMeterReadings(meter, byId, atMs);
    // Relay read-back for every meter whose relay lives on this device (its own relay, or a board's coil).
    for (const m of this.meters.values()) {
      const rb = m.relay?.readBack;
      if (!rb || m.relay?.deviceId !== deviceId) continue;
      // A poll that began before the last relay write finished may have read the old state: it proves nothing.
      if (m.writesInFlight > 0 || startedAtMs < m.lastWriteDoneAtMs) continue;
      const r = byId.get(rb.id);
      if (r?.ok) this.stepCredit(m, { type: "relay-readback", state: this.relayStateOf(m.relay, r.value), atMs });
    }
    const fire = this.fires.get(deviceId);
    if (fire) this.onFireSample(deviceId, view.profile, byId, atMs);
  }

  private relayStateOf(binding: RelayBinding, value: number): RelayState {
    const energised = value === binding.target.closedValue;
    return energised !== binding.inverted ? "closed" : "open";
  }

  private bootPendingGuards(): void {
    for (const m of this.meters.values()) {
      if (!m.bootPending) continue;
      m.bootPending = false;
      this.stepCredit(m, { type: "boot", atMs: this.now() });
    }
  }

  private onMeterReadings(m: MeterRuntime, byId: ReadonlyMap<string, PointReading>, atMs: number): void {
    const reading = byId.get(m.importPoint.id);
    if (reading) {
      const verdict = checkEnergy(m.importPoint, reading, m.baseline, atMs, { maxPowerW: m.profile.maxPowerW ?? 100_000 });
      m.baseline = verdict.baseline;
      if (verdict.kind === "tamper") {
        this.counters.tamperEvents++;
        this.deps.log.warn({ device: m.cfg.id, kind: verdict.tamperKind, detail: verdict.detail }, "energy register refused");
        this.emitEvent({
          type: "tamper",
          deviceId: m.cfg.id,
          at: new Date(atMs).toISOString(),
          kind: verdict.tamperKind,
          detail: verdict.detail.slice(0, 1000),
          ...(verdict.registerWh !== undefined && verdict.registerWh >= 0 ? { registerWh: verdict.registerWh } : {}),
        });
      } else {
        if (m.cfg.supply) this.stepCredit(m, { type: "reading", registerWh: verdict.wh, atMs });
        if (m.bootPending) {
          m.bootPending = false;
          this.stepCredit(m, { type: "boot", atMs });
        }
        if (reading.ok) m.pendingBilling.set(m.importPoint.id, { wh: verdict.wh, exact: verdict.conversion.exact, droppedWh: verdict.conversion.droppedWh, words: reading.words, raw: reading.raw, atMs });
      }
    }
    for (const p of m.billingPoints) {
      if (p.id === m.importPoint.id) continue;
      const r = byId.get(p.id);
      if (!r?.ok) continue;
      const v = checkEnergy(p, r, undefined, atMs, { maxPowerW: m.profile.maxPowerW ?? 100_000 });
      if (v.kind === "billing") m.pendingBilling.set(p.id, { wh: v.wh, exact: v.conversion.exact, droppedWh: v.conversion.droppedWh, words: r.words, raw: r.raw, atMs });
    }
    if (atMs - m.lastBillingAtMs >= this.config.telemetry.billingIntervalMs) this.flushMeterBilling(m, atMs);
  }

  private flushBilling(force: boolean): void {
    const now = this.now();
    for (const m of this.meters.values()) if (force || now - m.lastBillingAtMs >= this.config.telemetry.billingIntervalMs) this.flushMeterBilling(m, now);
  }

  private flushMeterBilling(m: MeterRuntime, now: number): void {
    m.lastBillingAtMs = now;
    if (m.pendingBilling.size === 0) return;
    const readings = [...m.pendingBilling.entries()].map(([pointId, b]) => {
      const point = m.profile.points.find((p) => p.id === pointId) as Point;
      return {
        meterId: m.cfg.id,
        unitId: m.cfg.unit,
        pointId,
        role: point.role,
        // The billing chain: a per-meter counter committed before the message exists, never reused.
        registerSeq: this.deps.state.next(`registerSeq:${m.cfg.id}`),
        at: new Date(b.atMs).toISOString(),
        raw: { words: [...b.words], value: b.raw },
        energyWh: b.wh,
        conversion: { exact: b.exact, droppedWh: b.droppedWh },
      };
    });
    m.pendingBilling.clear();
    this.counters.billingReadings += readings.length;
    this.appendMessage("billing", { readings }, "billing");
    this.persistMeter(m);
  }

  private flushTelemetry(): void {
    const samples: Record<string, unknown>[] = [];
    for (const [deviceId, points] of this.telemetryDirty) {
      for (const [pointId, s] of points) {
        samples.push({ deviceId, pointId, role: s.point.role, ...(s.point.channel ? { channel: s.point.channel } : {}), value: s.value, unit: s.point.unit, at: new Date(s.atMs).toISOString() });
      }
    }
    this.telemetryDirty = new Map();
    for (let i = 0; i < samples.length; i += 1000) {
      this.counters.telemetryBatches++;
      this.appendMessage("telemetry", { samples: samples.slice(i, i + 1000) }, "telemetry");
    }
  }

  private onPollFailed(deviceId: string, err: ModbusError, atMs: number, log: Logger): void {
    const view = this.devices.get(deviceId);
    if (view) {
      view.errors++;
      view.lastError = `${err.code}: ${err.message}`;
    }
    log.debug({ device: deviceId, code: err.code, err: err.message }, "poll failed");
    if (this.fires.has(deviceId)) this.stepFire(deviceId, { type: "poll-failed", atMs });
  }

  private onHealthChange(deviceId: string, online: boolean, failures: number, lastError: ModbusError | undefined, atMs: number): void {
    const view = this.devices.get(deviceId);
    if (view) view.online = online;
    this.deps.log[online ? "info" : "warn"]({ device: deviceId, failures, err: lastError?.message }, online ? "device online" : "device offline");
    this.emitEvent({
      type: online ? "device.online" : "device.offline",
      deviceId,
      at: new Date(atMs).toISOString(),
      ...(online ? {} : { consecutiveFailures: failures }),
      ...(!online && lastError ? { lastError: `${lastError.code}: ${lastError.message}`.slice(0, 1000) } : {}),
    });
  }

  // ─── prepaid guard shell ─────────────────────────────────────────────────────────────────────────────────────

  private persistMeter(m: MeterRuntime): void {
    this.deps.state.put(`meter:${m.cfg.id}`, { guard: m.guard, ...(m.baseline ? { baseline: m.baseline } : {}) });
  }

  private stepCredit(m: MeterRuntime, input: CreditGuardInput): CreditGuardStep {
    const before = m.guard;
    const step = creditGuard(m.guard, input, m.guardConfig);
    m.guard = step.state;
    // Persist every decision except a plain register update (that one is saved with each billing message), so an
    // SD card is not rewritten on every poll.
    const { lastRegisterWh: _a, ...restBefore } = before;
    const { lastRegisterWh: _b, ...restAfter } = step.state;
    if (JSON.stringify(restBefore) !== JSON.stringify(restAfter)) this.persistMeter(m);
    for (const effect of step.effects) this.onCreditEffect(m, effect);
    return step;
  }

  private onCreditEffect(m: MeterRuntime, effect: CreditEffect): void {
    switch (effect.kind) {
      case "write-relay":
        void this.writeRelay(m, effect.state, effect.attempt);
        return;
      case "event": {
        const e = effect.event;
        if (e.type === "grant.applied" || e.type === "grant.rejected") this.emitEvent(e);
        // The guard reports a relay change once a read-back confirmed it (or the relay cannot be read back), and a
        // read-back that disagrees as verify-failed: published as the relay event with verified false.
        else this.publishRelayEvent(m, e, draftState(e), e.type === "relay.verify-failed" ? false : e.verified);
        return;
      }
      case "warning":
        this.emitEvent({ type: "credit.low", meterId: m.cfg.id, at: new Date(effect.atMs).toISOString(), level: effect.level, remainingWh: effect.remainingWh, grantSeq: effect.grantSeq });
        return;
      case "audit":
        this.deps.log.info({ audit: effect }, "officer relay override");
        return;
    }
  }

  /** Write the relay and read it back; the guard turns the read-back into the relay event (or a retry). */
  private async writeRelay(m: MeterRuntime, state: RelayState, attempt: number): Promise<void> {
    const binding = m.relay;
    if (!binding) return;
    const view = this.devices.get(binding.deviceId) as DeviceView;
    const t = binding.target;
    const energise = (state === "closed") !== binding.inverted;
    const value = (energise ? t.closedValue : t.openValue) as number;
    const req =
      t.fc === 5 ? { fc: 5 as const, address: t.address, value: value !== 0 }
      : t.fc === 15 ? { fc: 15 as const, address: t.address, values: [value !== 0] }
      : t.fc === 6 ? { fc: 6 as const, address: t.address, value }
      : { fc: 16 as const, address: t.address, values: [value] };
    this.counters.relayWrites++;
    m.writesInFlight++;
    try {
      await view.engine.command(view.cfg.unit, req);
      if (!binding.readBack) {
        this.stepCredit(m, { type: "relay-unverifiable", atMs: this.now() });
        return;
      }
      const rb = binding.readBack;
      try {
        const answer = await view.engine.command(view.cfg.unit, { fc: rb.fc, address: rb.address, quantity: 1 });
        const raw = "bits" in answer ? (answer.bits[0] ? 1 : 0) : "words" in answer ? (answer.words[0] ?? -1) : -1;
        const observed = this.relayStateOf(binding, raw);
        this.stepCredit(m, { type: "relay-readback", state: observed, atMs: this.now() });
      } catch (err) {
        this.deps.log.warn({ device: m.cfg.id, err: (err as Error).message }, "relay read-back failed; the next poll verifies");
      }
    } catch (err) {
      this.counters.relayWriteFailures++;
      // The next poll's read-back disagrees with the commanded state and the guard retries the write.
      this.deps.log.error({ device: m.cfg.id, relayDevice: binding.deviceId, attempt, err: (err as Error).message }, "relay write failed");
    } finally {
      m.writesInFlight--;
      m.lastWriteDoneAtMs = this.now();
    }
  }

  private publishRelayEvent(m: MeterRuntime, draft: RelayDraft, state: RelayState, verified: boolean): void {
    const t = m.relay?.target;
    const energise = (state === "closed") !== (m.relay?.inverted ?? false);
    this.emitEvent({
      type: state === "open" ? "relay.opened" : "relay.closed",
      deviceId: m.cfg.id,
      at: draft.at,
      reason: draft.reason,
      registerWh: draft.registerWh ?? m.guard.lastRegisterWh ?? m.baseline?.registerWh ?? 0,
      ...(draft.grantSeq !== undefined ? { grantSeq: draft.grantSeq } : {}),
      // The raw value that means this state on the relay register or coil.
      registerValue: (energise ? t?.closedValue : t?.openValue) ?? 0,
      verified,
    });
  }

  // ─── fire guard shell ────────────────────────────────────────────────────────────────────────────────────────

  private onFireSample(deviceId: string, profile: DeviceProfile, byId: ReadonlyMap<string, PointReading>, atMs: number): void {
    const value = (role: Point["role"], channel?: string): number | undefined => {
      const p = profile.points.find((x) => x.role === role && x.channel === channel);
      const r = p ? byId.get(p.id) : undefined;
      return r?.ok ? r.value : undefined;
    };
    const flag = (role: Point["role"]): boolean | undefined => {
      const v = value(role);
      return v === undefined ? undefined : v !== 0;
    };
    const batteryPoint = profile.points.find((x) => x.role === "battery" && x.channel === undefined);
    const sample: Extract<FireGuardInput, { type: "sample" }> = {
      type: "sample",
      atMs,
      ...(flag("smoke_alarm") !== undefined ? { smokeAlarmFlag: flag("smoke_alarm") as boolean } : {}),
      ...(flag("heat_alarm") !== undefined ? { heatAlarmFlag: flag("heat_alarm") as boolean } : {}),
      ...(value("smoke_density") !== undefined ? { smokeDbPerM: value("smoke_density") as number } : {}),
      ...(value("temperature") !== undefined ? { temperatureC: value("temperature") as number } : {}),
      ...(flag("fault") !== undefined ? { faultFlag: flag("fault") as boolean } : flag("service_alarm") !== undefined ? { faultFlag: flag("service_alarm") as boolean } : {}),
      // A battery point in % (state of charge) has no voltage threshold to compare with; only mV feeds the guard.
      ...(batteryPoint?.unit === "mV" && value("battery") !== undefined ? { batteryMv: value("battery") as number } : {}),
    };
    this.stepFire(deviceId, sample);
  }

  private tickFire(): void {
    const now = this.now();
    for (const id of this.fires.keys()) this.stepFire(id, { type: "tick", atMs: now });
  }

  private stepFire(deviceId: string, input: FireGuardInput): void {
    const f = this.fires.get(deviceId);
    if (!f) return;
    const step = fireGuard(f.state, input, f.config);
    const changed = step.effects.length > 0 || step.state.active.length !== f.state.active.length;
    f.state = step.state;
    for (const e of step.effects) this.onFireEffect(e);
    if (changed) this.deps.state.put(`fire:${deviceId}`, f.state);
  }

  private onFireEffect(effect: FireEffect): void {
    if (effect.kind === "battery") {
      // Maintenance, not an alarm: the events lane in order, never the alarm lane (protocols: batteryLevelSchema).
      this.deps.log.info({ event: effect.event }, "fire guard: battery");
      this.emitEvent(effect.event);
      return;
    }
    this.counters.alarms++;
    const event: GatewayEvent =
      effect.kind === "fault" ? { type: "sensor.fault", deviceId: effect.deviceId, at: effect.at, faulted: effect.faulted } : effect.event;
    this.deps.log.warn({ event }, "fire guard");
    // The alarm lane first (published ahead of any backlog), then the complete event log in order.
    this.appendMessage("alarm", { event }, "alarm");
    this.emitEvent(event);
  }

  // ─── commands ────────────────────────────────────────────────────────────────────────────────────────────────

  /** A downlink command: validated, expiry- and replay-checked, executed at most once, always acknowledged. */
  async handleCommand(payload: Buffer): Promise<void> {
    const decision: CommandDecision = decideCommand(payload, {
      nowMs: this.now(),
      seen: (id) => this.deps.state.get<{ status: "done" | "rejected" | "failed"; reason?: string; detail?: string }>(`cmd:${id}`),
      meterIds: new Set([...this.meters.values()].filter((m) => m.cfg.supply).map((m) => m.cfg.id)),
    });
    if (decision.kind === "drop") {
      this.counters.badCommands++;
      this.deps.log.warn({ reason: decision.reason }, "command dropped");
      return;
    }
    if (decision.kind === "ack") {
      if (decision.status !== "done") this.counters.badCommands++;
      this.ack(decision.commandId, decision.status, decision.reason, decision.detail, decision.remember);
      return;
    }
    const cmd = decision.command;
    const body = cmd.command;
    const now = this.now();
    switch (body.type) {
      case "credit.grant": {
        const m = this.meters.get(body.meterId) as MeterRuntime;
        const step = this.stepCredit(m, { type: "grant", grant: body, atMs: now });
        const rejected = step.effects.find((e) => e.kind === "event" && e.event.type === "grant.rejected");
        if (rejected && rejected.kind === "event" && rejected.event.type === "grant.rejected") this.ack(cmd.commandId, "rejected", rejected.event.reason, undefined, true);
        else this.ack(cmd.commandId, "done", undefined, `grant ${body.grantSeq} in force: run until ${body.limitWh} Wh`, true);
        return;
      }
      case "relay.set": {
        const m = this.meters.get(body.deviceId) as MeterRuntime;
        this.stepCredit(m, { type: "officer", state: body.state, officerId: body.officerId, reason: body.reason, atMs: now });
        this.ack(cmd.commandId, "done", undefined, `relay ${body.state} by officer ${body.officerId}`, true);
        return;
      }
      case "ping":
        this.ack(cmd.commandId, "done", undefined, `pong ${body.nonce}`, false);
        return;
      case "config.update": {
        if (!this.deps.applyConfig) {
          this.ack(cmd.commandId, "rejected", "remote configuration is not enabled on this gateway", undefined, true);
          return;
        }
        // The runner acknowledges: an invalid configuration is rejected outright (this agent used to send
        // "accepted" first, so an update that was never going to be applied ended as "failed"), a valid one is
        // accepted, then done or failed once swapped or rolled back — through whichever agent is running by then.
        await this.deps.applyConfig(body.config, body.configVersion, cmd.commandId);
        return;
      }
    }
  }

  /** Append a command acknowledgement (through the outbox, so it carries a seq and survives an outage). */
  ack(commandId: string, status: "accepted" | "rejected" | "done" | "failed", reason: string | undefined, detail: string | undefined, remember: boolean): void {
    if (remember && status !== "accepted") this.deps.state.put(`cmd:${commandId}`, { status, ...(reason ? { reason } : {}), ...(detail ? { detail } : {}) });
    this.appendMessage("commandAck", { commandId, status, ...(reason ? { reason: reason.slice(0, 200) } : {}), ...(detail ? { detail: detail.slice(0, 1000) } : {}) }, "event");
  }

  /** Buses on which at least one device has answered since this agent started. */
  answeringBuses(): Set<string> {
    const buses = new Set<string>();
    for (const d of this.devices.values()) if (d.engine.deviceState(d.cfg.id)?.lastOkAtMs !== undefined) buses.add(d.cfg.bus);
    return buses;
  }

  // ─── status ──────────────────────────────────────────────────────────────────────────────────────────────────

  status(): Record<string, unknown> {
    const devices = [...this.devices.values()].map((d) => {
      const rt = d.engine.deviceState(d.cfg.id);
      const meter = this.meters.get(d.cfg.id);
      const grant = meter?.guard.grant;
      const register = meter?.guard.lastRegisterWh ?? meter?.baseline?.registerWh;
      return {
        id: d.cfg.id,
        bus: d.cfg.bus,
        unit: d.cfg.unit,
        profile: d.cfg.profile,
        role: d.cfg.role,
        online: rt?.health.online ?? true,
        consecutiveFailures: rt?.health.consecutiveFailures ?? 0,
        errors: d.errors,
        lastError: d.lastError,
        lastPollAt: rt?.lastPollAtMs ? new Date(rt.lastPollAtMs).toISOString() : undefined,
        lastOkAt: rt?.lastOkAtMs ? new Date(rt.lastOkAtMs).toISOString() : undefined,
        readings: Object.fromEntries([...d.lastReadings].map(([k, v]) => [k, v.value])),
        ...(meter?.cfg.supply
          ? {
              relay: meter.guard.relay,
              ...(meter.guard.openReason ? { openReason: meter.guard.openReason } : {}),
              registerWh: register,
              grantSeq: grant?.grantSeq,
              limitWh: grant?.limitWh,
              creditLeftWh: grant && register !== undefined ? grant.limitWh - register : undefined,
              awaitingManualReconnect: meter.guard.awaitingManualReconnect,
            }
          : {}),
        ...(this.fires.has(d.cfg.id) ? { activeAlarms: this.fires.get(d.cfg.id)?.state.active.map((a) => a.cause) } : {}),
      };
    });
    const buses = [...this.engines.entries()].map(([id, e]) => ({
      id,
      transport: e.describeTransport(),
      open: e.transportOpen(),
      ...e.counters,
      latencyMsMean: e.counters.transactions > 0 ? e.counters.latencyMsSum / Math.max(1, e.counters.transactions - e.counters.errors) : undefined,
    }));
    return { gatewayId: this.config.gateway.id, version: this.deps.version, devices, buses, outbox: this.deps.outbox.stats(), counters: this.counters };
  }
}

type CreditGuardStep = ReturnType<typeof creditGuard>;
type RelayDraft = RelayEventDraft | RelayVerifyFailedEvent;

/** The relay state a relay event draft is about. */
function draftState(d: RelayDraft): RelayState {
  if (d.type === "relay.verify-failed") return d.expected;
  return d.type === "relay.opened" ? "open" : "closed";
}
