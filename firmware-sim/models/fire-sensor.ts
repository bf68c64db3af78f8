// A simulated fire/smoke sensor: the project's forest-fire node (smoke density, temperature, humidity, battery,
// flags) or a Calectro UG-3 duct detector (flags only). Ambient air follows the day; a fire — scripted in the
// scenario or started from the control surface — raises smoke and temperature until the node's own detector
// latches its alarm. Battery drains, self-tests can fail, the enclosure can be opened.

import type { DeviceProfile } from "../../protocols/profiles/schema.js";
import type { SimDevice, WriteOutcome } from "./device.js";
import { minuteOfDayShanghai } from "./local-time.js";
import { gaussian, type Random } from "./random.js";
import { RegisterBank, type Table } from "./register-bank.js";

export interface FireSpec {
  /** Smoke rise while burning, dB/m per minute. */
  readonly smokeRiseDbPerMPerMin: number;
  readonly maxSmokeDbPerM: number;
  /** Temperature rise while burning, °C per minute. */
  readonly tempRiseCPerMin: number;
  readonly maxTempC: number;
}

export const DEFAULT_FIRE: FireSpec = { smokeRiseDbPerMPerMin: 0.03, maxSmokeDbPerM: 0.8, tempRiseCPerMin: 3, maxTempC: 90 };

export interface FireSensorOptions {
  readonly id: string;
  readonly profile: DeviceProfile;
  readonly random: Random;
  readonly ambientC?: number;
  readonly dailySwingC?: number;
  readonly humidityPct?: number;
  readonly batteryMv?: number;
  readonly drainMvPerDay?: number;
  /** Background smoke noise (standard deviation, dB/m): dust, fog, pollen. */
  readonly smokeNoiseDbPerM?: number;
}

const SELF_TEST_MS = 10_000;
/** Heat alarm: fixed temperature of an A1 heat detector (EN 54-5). */
const HEAT_ALARM_C = 57;
const LOW_BATTERY_MV = 3300;

export class FireSensorModel implements SimDevice {
  readonly bank: RegisterBank;
  smokeDbPerM = 0;
  temperatureC: number;
  humidityPct: number;
  batteryMv: number;
  smokeAlarm = false;
  heatAlarm = false;
  fault = false;
  faultCode = 0;
  tamper = false;
  /** While set, a started self-test ends in a fault (a dirty chamber). */
  selfTestWillFail = false;
  private selfTestUntilMs: number | undefined;
  fire: (FireSpec & { startedAtMs: number }) | undefined;
  thresholdDbPerM = 0.05;
  private uptimeS = 0;
  private readonly ambientC: number;
  private readonly dailySwingC: number;
  private readonly drainMvPerDay: number;
  private readonly smokeNoise: number;
  private readonly isNode: boolean;

  constructor(
    private readonly opts: FireSensorOptions,
  ) {
    this.bank = new RegisterBank(opts.profile);
    this.ambientC = opts.ambientC ?? 18;
    this.dailySwingC = opts.dailySwingC ?? 6;
    this.temperatureC = this.ambientC;
    this.humidityPct = opts.humidityPct ?? 60;
    this.batteryMv = opts.batteryMv ?? 3900;
    this.drainMvPerDay = opts.drainMvPerDay ?? 4;
    this.smokeNoise = opts.smokeNoiseDbPerM ?? 0.002;
    this.isNode = opts.profile.points.some((p) => p.role === "smoke_density");
    const threshold = this.bank.pointByRole("alarm_threshold");
    if (threshold) this.bank.set(threshold.id, this.thresholdDbPerM);
    this.publish();
  }

  get id(): string {
    return this.opts.id;
  }

  get profile(): DeviceProfile {
    return this.opts.profile;
  }

  startFire(nowMs: number, spec: Partial<FireSpec> = {}): void {
    this.fire = { ...DEFAULT_FIRE, ...spec, startedAtMs: nowMs };
  }

  stopFire(): void {
    this.fire = undefined;
  }

  step(dtMs: number, nowMs: number): void {
    this.uptimeS += dtMs / 1000;
    const minute = minuteOfDayShanghai(nowMs);
    // Warmest at 14:00, coolest at 02:00.
    const ambient = this.ambientC + this.dailySwingC * Math.cos(((minute - 14 * 60) / 1440) * 2 * Math.PI);
    const noise = Math.max(0, gaussian(this.opts.random, this.smokeNoise));
    if (this.fire) {
      const minutes = (nowMs - this.fire.startedAtMs) / 60_000;
      this.smokeDbPerM = Math.min(this.fire.maxSmokeDbPerM, this.fire.smokeRiseDbPerMPerMin * minutes) + noise;
      this.temperatureC = Math.min(this.fire.maxTempC, ambient + this.fire.tempRiseCPerMin * minutes);
      this.humidityPct = Math.max(10, (this.opts.humidityPct ?? 60) - minutes * 2);
    } else {
      // Smoke clears and air cools back towards ambient over a few minutes.
      this.smokeDbPerM = Math.max(noise, this.smokeDbPerM * Math.exp(-dtMs / 120_000));
      this.temperatureC = ambient + (this.temperatureC - ambient) * Math.exp(-dtMs / 300_000);
      this.humidityPct = (this.opts.humidityPct ?? 60) + gaussian(this.opts.random, 0.5);
    }
    this.batteryMv = Math.max(2800, this.batteryMv - (this.drainMvPerDay * dtMs) / 86_400_000);
    // The node's own detector latches its alarm; only a reset clears it (and only once the air is clear).
    if (this.smokeDbPerM >= this.thresholdDbPerM) this.smokeAlarm = true;
    if (this.temperatureC >= HEAT_ALARM_C) this.heatAlarm = true;
    if (this.selfTestUntilMs !== undefined && nowMs >= this.selfTestUntilMs) {
      this.selfTestUntilMs = undefined;
      if (this.selfTestWillFail) {
        this.fault = true;
        this.faultCode = 3;
      }
    }
    this.publish();
  }

  write(table: Extract<Table, "coil" | "holding">, address: number, values: readonly number[], nowMs: number): WriteOutcome {
    const target = this.profile.writes.find((w) => w.fc !== 5 && w.fc !== 15 && w.address === address);
    const value = values[0];
    if (table !== "holding" || values.length !== 1 || value === undefined) return { exception: 2 };
    if (target) {
      if (value !== target.commandValue) return { exception: 3 };
      if (target.role === "alarm_reset") {
        this.smokeAlarm = this.smokeDbPerM >= this.thresholdDbPerM;
        this.heatAlarm = this.temperatureC >= HEAT_ALARM_C;
      } else if (target.role === "self_test") {
        this.selfTestUntilMs = nowMs + SELF_TEST_MS;
        if (!this.selfTestWillFail) {
          this.fault = false;
          this.faultCode = 0;
        }
      }
      this.publish();
      return {};
    }
    const threshold = this.bank.pointByRole("alarm_threshold");
    if (threshold && threshold.address === address) {
      // 0.01..1.00 dB/m: below is noise, above would never alarm before the forest burns.
      if (value < 10 || value > 1000) return { exception: 3 };
      this.thresholdDbPerM = value / 1000;
      this.publish();
      return {};
    }
    return { exception: 2 };
  }

  private publish(): void {
    const b = this.bank;
    const set = (role: Parameters<RegisterBank["pointByRole"]>[0], value: number, channel?: string): void => {
      const p = b.pointByRole(role, channel);
      if (p) b.set(p.id, value);
    };
    set("smoke_alarm", this.smokeAlarm ? 1 : 0);
    set("heat_alarm", this.heatAlarm ? 1 : 0);
    set("self_test", this.selfTestUntilMs !== undefined ? 1 : 0);
    set("tamper", this.tamper ? 1 : 0);
    set("low_battery", this.batteryMv < LOW_BATTERY_MV ? 1 : 0);
    if (this.isNode) {
      // pointByRole without a channel finds the flag (listed first); the code has channel "code".
      set("fault", this.fault ? 1 : 0);
      set("fault", this.faultCode, "code");
      set("smoke_density", Math.min(65.535, this.smokeDbPerM));
      set("temperature", Math.max(-3276.8, Math.min(3276.7, this.temperatureC)));
      set("humidity", Math.min(100, Math.max(0, this.humidityPct)));
      set("battery", Math.round(this.batteryMv));
      set("uptime", Math.floor(this.uptimeS));
    } else {
      // Calectro: mounted unless tampered (head removed), service alarm on fault, relay follows the alarm.
      set("detector_mounted", this.tamper ? 0 : 1);
      set("service_alarm", this.fault ? 1 : 0);
      set("relay_state", this.smokeAlarm ? 1 : 0);
    }
  }

  describe(): Record<string, unknown> {
    return {
      id: this.id,
      kind: "fire-sensor",
      profile: this.profile.id,
      smokeDbPerM: Number(this.smokeDbPerM.toFixed(4)),
      temperatureC: Number(this.temperatureC.toFixed(1)),
      humidityPct: Number(this.humidityPct.toFixed(1)),
      batteryMv: Math.round(this.batteryMv),
      smokeAlarm: this.smokeAlarm,
      heatAlarm: this.heatAlarm,
      fault: this.fault,
      faultCode: this.faultCode,
      tamper: this.tamper,
      burning: this.fire !== undefined,
      thresholdDbPerM: this.thresholdDbPerM,
    };
  }
}
