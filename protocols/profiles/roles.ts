// Semantic roles of device points and the engineering units they may carry. A role says what a value means to the
// rest of the system (the edge bills on import_energy, the fire guard watches smoke_alarm), independent of where a
// particular device keeps it.

export const UNITS = {
  V: "volt",
  A: "ampere",
  W: "watt",
  kW: "kilowatt",
  var: "volt-ampere reactive",
  kvar: "kilovolt-ampere reactive",
  VA: "volt-ampere",
  kVA: "kilovolt-ampere",
  Hz: "hertz",
  Wh: "watt-hour",
  kWh: "kilowatt-hour",
  MWh: "megawatt-hour",
  kvarh: "kilovar-hour",
  "°C": "degree Celsius",
  "%RH": "percent relative humidity",
  "%": "percent",
  "dB/m": "decibel per metre (optical smoke obscuration, EN 54-7 / GB 4715)",
  mV: "millivolt",
  s: "second",
  "1": "dimensionless (ratio, flag, code, count)",
} as const;
export type Unit = keyof typeof UNITS;
export const UNIT_NAMES = Object.keys(UNITS) as [Unit, ...Unit[]];

/** Which units each role may be expressed in; the profile test checks every point against this. */
export const ROLES = {
  import_energy: { units: ["Wh", "kWh", "MWh"], description: "cumulative active energy imported (billing register)" },
  export_energy: { units: ["Wh", "kWh", "MWh"], description: "cumulative active energy exported" },
  total_energy: { units: ["Wh", "kWh", "MWh"], description: "cumulative total active energy (device-defined sum)" },
  reactive_energy: { units: ["kvarh"], description: "cumulative reactive energy" },
  active_power: { units: ["W", "kW"], description: "instantaneous active power, positive = import" },
  reactive_power: { units: ["var", "kvar"], description: "instantaneous reactive power" },
  apparent_power: { units: ["VA", "kVA"], description: "instantaneous apparent power" },
  power_factor: { units: ["1"], description: "power factor, -1..1" },
  voltage: { units: ["V"], description: "RMS voltage" },
  current: { units: ["A"], description: "RMS current" },
  frequency: { units: ["Hz"], description: "line frequency" },
  relay_state: { units: ["1"], description: "supply relay or contactor state: 1 = closed (power on), 0 = open (cut)" },
  smoke_alarm: { units: ["1"], description: "the device's own smoke alarm flag" },
  heat_alarm: { units: ["1"], description: "the device's own heat alarm flag" },
  smoke_density: { units: ["dB/m"], description: "optical smoke obscuration" },
  temperature: { units: ["°C"], description: "air temperature" },
  humidity: { units: ["%RH"], description: "relative humidity" },
  battery: { units: ["mV", "%"], description: "battery voltage or state of charge" },
  low_battery: { units: ["1"], description: "low-battery flag" },
  fault: { units: ["1"], description: "device fault flag or fault code (0 = healthy)" },
  service_alarm: { units: ["1"], description: "device asks for service (dirty chamber, failed self-test)" },
  tamper: { units: ["1"], description: "enclosure or terminal cover opened" },
  self_test: { units: ["1"], description: "self-test running (1) or command" },
  detector_mounted: { units: ["1"], description: "detector head present in its base" },
  alarm_threshold: { units: ["dB/m"], description: "configured alarm threshold" },
  serial_number: { units: ["1"], description: "device serial number" },
  uptime: { units: ["s"], description: "seconds since the device started" },
  ct_ratio: { units: ["1"], description: "current-transformer ratio the meter applies" },
  unit_id_config: { units: ["1"], description: "configured Modbus unit id" },
  baud_config: { units: ["1"], description: "configured baud-rate code" },
} as const satisfies Record<string, { units: readonly Unit[]; description: string }>;
export type Role = keyof typeof ROLES;
export const ROLE_NAMES = Object.keys(ROLES) as [Role, ...Role[]];

/** Roles whose values are cumulative counters that the edge must treat as a chain (never backwards). */
export const CUMULATIVE_ROLES: readonly Role[] = ["import_energy", "export_energy", "total_energy", "reactive_energy"];

/** Roles a write target may drive. */
export const WRITE_ROLES = ["relay", "alarm_reset", "self_test"] as const;
export type WriteRole = (typeof WRITE_ROLES)[number];
