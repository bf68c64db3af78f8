// Hiking DDS238-2 ZN/SR single-phase meter with a built-in relay — the cheapest way to cut a pump at the meter.
// Source: fawno/Modbus "DDS238-2 ZN-S Modbus.md" and src/ModbusDDS238.php. FC 03 holding registers, big-endian;
// writes only with FC 10 (the meter does not understand FC 06). Relay register 0x001A: 0 = off, 1 = on.
import { defineProfile } from "./schema.js";

export const hikingDds238 = defineProfile({
  id: "hiking-dds238-2-zn",
  manufacturer: "Hiking",
  model: "DDS238-2 ZN/SR",
  kind: "meter",
  description: "Single-phase meter with a latching relay at holding register 0x001A; default 9600 8N1, unit 1.",
  sources: ["fawno/Modbus DDS238-2 ZN-S Modbus.md", "fawno/Modbus src/ModbusDDS238.php"],
  confidence: "partial",
  serial: { baud: 9600, parity: "none", stopBits: 1, unitId: 1 },
  limits: { maxRegistersPerRead: 32, evenAlignment: false, maxWriteRegisters: 1, maxBridgeGap: 8 },
  maxPowerW: 20_300, // Imax 80 A × 253 V
  phases: 1,
  points: [
    { id: "totalEnergy", role: "total_energy", fc: 3, type: "u32", address: 0x0000, scale: 0.01, unit: "kWh", description: "Total energy, ×0.01 kWh" },
    { id: "exportEnergy", role: "export_energy", fc: 3, type: "u32", address: 0x0008, scale: 0.01, unit: "kWh", description: "Export energy, ×0.01 kWh" },
    { id: "importEnergy", role: "import_energy", fc: 3, type: "u32", address: 0x000a, scale: 0.01, unit: "kWh", description: "Import energy, ×0.01 kWh" },
    { id: "voltage", role: "voltage", fc: 3, type: "u16", address: 0x000c, scale: 0.1, unit: "V", description: "Voltage, ×0.1 V" },
    { id: "current", role: "current", fc: 3, type: "u16", address: 0x000d, scale: 0.01, unit: "A", description: "Current, ×0.01 A" },
    { id: "activePower", role: "active_power", fc: 3, type: "i16", address: 0x000e, unit: "W", description: "Active power, W" },
    { id: "reactivePower", role: "reactive_power", fc: 3, type: "u16", address: 0x000f, unit: "var", description: "Reactive power, var" },
    { id: "powerFactor", role: "power_factor", fc: 3, type: "u16", address: 0x0010, scale: 0.001, unit: "1", description: "Power factor, ×0.001" },
    { id: "frequency", role: "frequency", fc: 3, type: "u16", address: 0x0011, scale: 0.01, unit: "Hz", description: "Frequency, ×0.01 Hz" },
    { id: "relay", role: "relay_state", fc: 3, type: "u16", address: 0x001a, unit: "1", description: "Relay: 1 = on (supply closed), 0 = off (cut)" },
  ],
  writes: [
    { role: "relay", fc: 16, address: 0x001a, openValue: 0, closedValue: 1, readBack: "relay", description: "Write 0 to cut the supply, 1 to restore it (FC 10 only)" },
  ],
});
