// The agri-edge forest-fire sensor node: the project's own register map, since no public map exists for a Chinese
// RS-485 smoke module or a forest-fire station (device-register-maps.md §6d). Designed so a cheap MCU can implement
// it: flags as discrete inputs (one FC 02 read), measurements as consecutive input registers (one FC 04 read),
// settings and commands as holding registers. Smoke density in dB/m ×0.001, so the EN 54-7 / GB 4715 response
// threshold 0.05 dB/m is raw 50. Default 9600 8N1, unit 1.
import { defineProfile } from "./schema.js";

export const FIRE_NODE_RESET_CODE = 0xa5a5;
export const FIRE_NODE_SELF_TEST_CODE = 0x5a5a;

export const agriFireNode = defineProfile({
  id: "agri-fire-node",
  manufacturer: "agri-edge",
  model: "Forest-fire sensor node v1",
  kind: "fire-sensor",
  description: "Solar/battery forest-fire node: optical smoke density, temperature, humidity, alarm and fault flags.",
  sources: ["agri-edge protocols/profiles/agri-fire-node.ts (own design)", "EN 54-7 / GB 4715-2024 response threshold 0.05 dB/m"],
  confidence: "own-design",
  serial: { baud: 9600, parity: "none", stopBits: 1, unitId: 1 },
  limits: { maxRegistersPerRead: 32, maxBitsPerRead: 16, evenAlignment: false, maxBridgeGap: 4 },
  points: [
    { id: "smokeAlarm", role: "smoke_alarm", fc: 2, type: "bool", address: 0, unit: "1", description: "Smoke alarm latched by the node's own detector" },
    { id: "heatAlarm", role: "heat_alarm", fc: 2, type: "bool", address: 1, unit: "1", description: "Heat alarm (fixed 57 °C or rate of rise)" },
    { id: "fault", role: "fault", fc: 2, type: "bool", address: 2, unit: "1", description: "Fault: chamber, sensor or self-test failure" },
    { id: "selfTestActive", role: "self_test", fc: 2, type: "bool", address: 3, unit: "1", description: "Self-test running" },
    { id: "tamper", role: "tamper", fc: 2, type: "bool", address: 4, unit: "1", description: "Enclosure opened" },
    { id: "lowBattery", role: "low_battery", fc: 2, type: "bool", address: 5, unit: "1", description: "Battery below 3.3 V" },
    { id: "smokeDensity", role: "smoke_density", fc: 4, type: "u16", address: 0, scale: 0.001, unit: "dB/m", description: "Smoke obscuration, ×0.001 dB/m" },
    { id: "temperature", role: "temperature", fc: 4, type: "i16", address: 1, scale: 0.1, unit: "°C", description: "Air temperature, ×0.1 °C, two's complement" },
    { id: "humidity", role: "humidity", fc: 4, type: "u16", address: 2, scale: 0.1, unit: "%RH", description: "Relative humidity, ×0.1 %RH" },
    { id: "battery", role: "battery", fc: 4, type: "u16", address: 3, unit: "mV", description: "Battery voltage, mV" },
    { id: "faultCode", role: "fault", channel: "code", fc: 4, type: "u16", address: 4, unit: "1", description: "Fault code: 0 ok, 1 chamber, 2 temperature sensor, 3 self-test failed" },
    { id: "uptime", role: "uptime", fc: 4, type: "u32", address: 5, unit: "s", description: "Seconds since power-up (u32, high word first)" },
    { id: "alarmThreshold", role: "alarm_threshold", fc: 3, type: "u16", address: 0, scale: 0.001, unit: "dB/m", poll: false, description: "Smoke alarm threshold, ×0.001 dB/m (default 50 = 0.05 dB/m)" },
  ],
  writes: [
    { role: "alarm_reset", fc: 6, address: 1, commandValue: FIRE_NODE_RESET_CODE, description: "Write 0xA5A5 to holding 1 to clear a latched alarm" },
    { role: "self_test", fc: 6, address: 2, commandValue: FIRE_NODE_SELF_TEST_CODE, description: "Write 0x5A5A to holding 2 to start a self-test" },
  ],
});
