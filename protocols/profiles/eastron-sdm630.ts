// Eastron SDM630-Modbus V2, three-phase meter.
// Source: Eastron "SDM630 Protocol 2018 v2.0" (nmakel/sdm_modbus documents/sdm630_modbus_protocol_v2.0.pdf) §1.1
// (max 40 values = 80 registers per request, even start and count), cross-checked with mbmd meters/rs485/sdm.go,
// reaper7/SDM_Energy_Meter, nmakel/sdm_modbus. Input registers (FC 04), f32, most significant register first.
import { defineProfile, type PointInput } from "./schema.js";

const f32 = { fc: 4, type: "f32", wordOrder: "ABCD" } as const;
const phases = ["L1", "L2", "L3"] as const;

function perPhase(idBase: string, role: PointInput["role"], start: number, unit: PointInput["unit"], what: string, modicon: number): PointInput[] {
  return phases.map((phase, i) => ({
    id: `${idBase}${phase}`,
    role,
    channel: phase,
    ...f32,
    address: start + 2 * i,
    unit,
    description: `${phase} ${what} (${modicon + 2 * i})`,
  }));
}

export const eastronSdm630 = defineProfile({
  id: "eastron-sdm630-v2",
  manufacturer: "Eastron",
  model: "SDM630-Modbus V2",
  kind: "meter",
  description: "Three-phase 10(100) A energy meter; default 9600 8N1, unit 1; energy prefix k (holding 0x001E = 0).",
  sources: ["Eastron SDM630 Protocol 2018 v2.0 §1.1-1.3", "volkszaehler/mbmd sdm.go", "reaper7/SDM_Energy_Meter SDM.h", "nmakel/sdm_modbus sdm.py"],
  confidence: "verified",
  serial: { baud: 9600, parity: "none", stopBits: 1, unitId: 1 },
  limits: { maxRegistersPerRead: 80, evenAlignment: true, maxBridgeGap: 16 },
  maxPowerW: 76_000, // 3 × Imax 100 A × 253 V
  phases: 3,
  points: [
    ...perPhase("voltage", "voltage", 0x0000, "V", "line to neutral voltage", 30001),
    ...perPhase("current", "current", 0x0006, "A", "current", 30007),
    ...perPhase("activePower", "active_power", 0x000c, "W", "active power", 30013),
    { id: "totalActivePower", role: "active_power", channel: "total", ...f32, address: 0x0034, unit: "W", description: "Total system active power (30053)" },
    { id: "totalPowerFactor", role: "power_factor", ...f32, address: 0x003e, unit: "1", description: "Total system power factor (30063)" },
    { id: "frequency", role: "frequency", ...f32, address: 0x0046, unit: "Hz", description: "Frequency (30071)" },
    { id: "importEnergy", role: "import_energy", ...f32, address: 0x0048, unit: "kWh", description: "Import active energy (30073)" },
    { id: "exportEnergy", role: "export_energy", ...f32, address: 0x004a, unit: "kWh", description: "Export active energy (30075)" },
    { id: "neutralCurrent", role: "current", channel: "N", ...f32, address: 0x00e0, unit: "A", description: "Neutral current (30225)" },
    { id: "totalEnergy", role: "total_energy", ...f32, address: 0x0156, unit: "kWh", description: "Total active energy (30343)" },
  ],
});
