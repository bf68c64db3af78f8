// CHINT DDSU666 single-phase meter.
// Sources: Tasmota xnrg_11_ddsu666.ino (FC 04, power ×1000) and OpenEMS MeterChintDdsu666Impl.java (FC 03,
// MSWLSW big-endian). They agree on addresses and f32 ABCD, disagree on the function code; the open map built from
// CHINT manuals ZTY0.464.922 says FC 03 read / FC 10 write, so FC 03 is the default here. Power is in kW.
import { defineProfile } from "./schema.js";

const f32 = { fc: 3, type: "f32", wordOrder: "ABCD" } as const;

export const chintDdsu666 = defineProfile({
  id: "chint-ddsu666",
  manufacturer: "CHINT",
  model: "DDSU666",
  kind: "meter",
  description: "Single-phase meter, 9600 baud; stop bits disputed (8N1 per Tasmota, 8N2 per a field guide).",
  sources: ["Tasmota xnrg_11_ddsu666.ino", "OpenEMS MeterChintDdsu666Impl.java", "nobrega8/mbmap-library ddsu666 header", "bookstack DDSU666 mbpoll reference"],
  confidence: "partial",
  serial: { baud: 9600, parity: "none", stopBits: 1, unitId: 1 },
  limits: { maxRegistersPerRead: 125, evenAlignment: false, maxBridgeGap: 8 },
  maxPowerW: 15_200, // Imax 60 A × 253 V
  phases: 1,
  points: [
    { id: "voltage", role: "voltage", ...f32, address: 0x2000, unit: "V", description: "Voltage" },
    { id: "current", role: "current", ...f32, address: 0x2002, unit: "A", description: "Current" },
    { id: "activePower", role: "active_power", ...f32, address: 0x2004, unit: "kW", description: "Active power in kW" },
    { id: "reactivePower", role: "reactive_power", ...f32, address: 0x2006, unit: "kvar", description: "Reactive power in kvar (Tasmota only)" },
    { id: "powerFactor", role: "power_factor", ...f32, address: 0x200a, unit: "1", description: "Power factor (Tasmota only)" },
    { id: "frequency", role: "frequency", ...f32, address: 0x200e, unit: "Hz", description: "Frequency" },
    { id: "importEnergy", role: "import_energy", ...f32, address: 0x4000, unit: "kWh", description: "Active (import) energy" },
    { id: "exportEnergy", role: "export_energy", ...f32, address: 0x400a, unit: "kWh", description: "Reverse active energy (Tasmota only)" },
  ],
});
