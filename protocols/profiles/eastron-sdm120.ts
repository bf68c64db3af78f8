// Eastron SDM120-Modbus, single-phase DIN-rail meter.
// Source: Eastron "SDM120M Smart Meter Modbus Protocol Implementation V2.5" (in nmakel/sdm_modbus
// documents/sdm120_modbus_protocol_v2.5.pdf), cross-checked with volkszaehler/mbmd meters/rs485/sdm120.go,
// evcc eastron-sdm120.yaml, reaper7/SDM_Energy_Meter SDM.h, Tasmota xnrg_08_sdm120.ino.
// Input registers (FC 04), all f32 ABCD; "read/write in register pairs" → even start and count.
import { defineProfile } from "./schema.js";

const f32 = { fc: 4, type: "f32", wordOrder: "ABCD" } as const;

export const eastronSdm120 = defineProfile({
  id: "eastron-sdm120",
  manufacturer: "Eastron",
  model: "SDM120-Modbus",
  kind: "meter",
  description: "Single-phase 5(45) A DIN-rail energy meter; default 2400 8N1, unit 1.",
  sources: ["Eastron SDM120M Modbus Protocol V2.5 p.7-8", "volkszaehler/mbmd sdm120.go", "evcc eastron-sdm120.yaml", "reaper7/SDM_Energy_Meter SDM.h"],
  confidence: "verified",
  serial: { baud: 2400, parity: "none", stopBits: 1, unitId: 1 },
  // The V2.5 document allows up to 40 values (80 registers) per request, in pairs.
  limits: { maxRegistersPerRead: 80, evenAlignment: true, maxBridgeGap: 16 },
  maxPowerW: 11_400, // Imax 45 A × 253 V (Un + 10 %)
  phases: 1,
  points: [
    { id: "voltage", role: "voltage", ...f32, address: 0x0000, unit: "V", description: "Line to neutral voltage (30001)" },
    { id: "current", role: "current", ...f32, address: 0x0006, unit: "A", description: "Current (30007)" },
    { id: "activePower", role: "active_power", ...f32, address: 0x000c, unit: "W", description: "Active power, negative = export (30013)" },
    { id: "apparentPower", role: "apparent_power", ...f32, address: 0x0012, unit: "VA", description: "Apparent power (30019)" },
    { id: "reactivePower", role: "reactive_power", ...f32, address: 0x0018, unit: "var", description: "Reactive power (30025)" },
    { id: "powerFactor", role: "power_factor", ...f32, address: 0x001e, unit: "1", description: "Power factor (30031)" },
    { id: "frequency", role: "frequency", ...f32, address: 0x0046, unit: "Hz", description: "Frequency (30071)" },
    { id: "importEnergy", role: "import_energy", ...f32, address: 0x0048, unit: "kWh", description: "Import active energy (30073)" },
    { id: "exportEnergy", role: "export_energy", ...f32, address: 0x004a, unit: "kWh", description: "Export active energy (30075)" },
    { id: "totalEnergy", role: "total_energy", ...f32, address: 0x0156, unit: "kWh", description: "Total active energy, import+export by default (30343)" },
  ],
});
