// CHINT DTSU666 three-phase four-wire meter, and its firmware variant with energy at 0x4000.
// Sources: CHINT DTSU666-CT manual ZTY0.464.1448 p.13 (03H read / 10H write, "Floating Inverse (AB CD)"),
// CHINT DTSU666 quick operation manual p.4, volkszaehler/mbmd meters/rs485/dtsu666.go (FC 03, scalers 10/1000/100),
// OpenEMS MeterChintDtsu666Impl.java + readme (FC 04, energy 0x4000 "verified live"), smart-stuff DTSU666 emulation.
// The electricity block is in raw units: V ×0.1, A ×0.001, W ×0.1, PF ×0.001, Hz ×0.01; energy in kWh.
// Energy-address conflict (see device-register-maps.md §4): the default profile reads 0x101E/0x1028 with FC 03;
// the variant reads 0x4000 with FC 04, which is what a gateway falls back to when 0x101E answers exception 02.
import { defineProfile, type DeviceProfileInput, type PointInput } from "./schema.js";

function measurement(fc: 3 | 4): PointInput[] {
  const f = { fc, type: "f32", wordOrder: "ABCD" } as const;
  const phase = ["L1", "L2", "L3"] as const;
  return [
    ...phase.map((p, i): PointInput => ({ id: `voltage${p}`, role: "voltage", channel: p, ...f, address: 0x2006 + 2 * i, scale: 0.1, unit: "V", description: `U${"abc"[i]} phase voltage, ×0.1 V` })),
    ...phase.map((p, i): PointInput => ({ id: `current${p}`, role: "current", channel: p, ...f, address: 0x200c + 2 * i, scale: 0.001, unit: "A", description: `I${"abc"[i]} current, ×0.001 A` })),
    { id: "totalActivePower", role: "active_power", channel: "total", ...f, address: 0x2012, scale: 0.1, unit: "W", description: "Pt total active power, ×0.1 W" },
    ...phase.map((p, i): PointInput => ({ id: `activePower${p}`, role: "active_power", channel: p, ...f, address: 0x2014 + 2 * i, scale: 0.1, unit: "W", description: `P${"abc"[i]} active power, ×0.1 W` })),
    { id: "totalPowerFactor", role: "power_factor", ...f, address: 0x202a, scale: 0.001, unit: "1", description: "PFt total power factor, ×0.001" },
    { id: "frequency", role: "frequency", ...f, address: 0x2044, scale: 0.01, unit: "Hz", description: "Frequency, ×0.01 Hz" },
  ];
}

const base = {
  manufacturer: "CHINT",
  kind: "meter",
  confidence: "partial",
  // Factory default may be DL/T 645-2007 E.1; in Modbus mode the manuals disagree on n.1 / n.2. We default to 8N1
  // and the edge probes 8N2 and 8E1 (device-register-maps.md §4).
  serial: { baud: 9600, parity: "none", stopBits: 1, unitId: 1 },
  limits: { maxRegistersPerRead: 125, evenAlignment: false, maxBridgeGap: 8 },
  maxPowerW: 61_000, // 3 × Imax 80 A × 253 V (direct-connected 10(80) A version)
  phases: 3,
} as const satisfies Partial<DeviceProfileInput>;

export const chintDtsu666 = defineProfile({
  ...base,
  id: "chint-dtsu666",
  model: "DTSU666",
  description: "Three-phase meter, energy at 0x101E/0x1028 (FC 03), as mbmd and the 2023 manual transcription read it.",
  sources: ["CHINT DTSU666-CT manual ZTY0.464.1448 p.13", "volkszaehler/mbmd dtsu666.go", "smart-stuff DTSU666 emulation", "star.ke.st DTSU666 (imp_ep 4126)"],
  points: [
    ...measurement(3),
    { id: "importEnergy", role: "import_energy", fc: 3, type: "f32", address: 0x101e, unit: "kWh", description: "ImpEp positive active energy" },
    { id: "exportEnergy", role: "export_energy", fc: 3, type: "f32", address: 0x1028, unit: "kWh", description: "ExpEp negative active energy" },
    { id: "ctRatio", role: "ct_ratio", fc: 3, type: "i16", address: 0x0006, unit: "1", poll: false, description: "IrAt current transformer ratio (values are CT-secondary)" },
  ],
});

export const chintDtsu666Energy4000 = defineProfile({
  ...base,
  id: "chint-dtsu666-4000",
  variantOf: "chint-dtsu666",
  model: "DTSU666 (energy at 0x4000)",
  description: "DTSU666 firmware read with FC 04 and import energy at 0x4000, as OpenEMS verified on hardware.",
  sources: ["OpenEMS MeterChintDtsu666Impl.java + readme.adoc", "bookstack.nearlyfreeenergy.com DTSU666 mbpoll reference"],
  points: [
    ...measurement(4),
    { id: "importEnergy", role: "import_energy", fc: 4, type: "f32", address: 0x4000, unit: "kWh", description: "Total import active energy" },
  ],
});
