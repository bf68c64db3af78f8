// A common 8-channel Modbus RTU relay board (the "Modbus RTU 8 relay" modules sold for DIN rails), used to drive a
// pump contactor when the meter has no relay of its own. Coils 0x0000-0x0007 map to relays 1-8, read with FC 01,
// written with FC 05 (0xFF00 = on, 0x0000 = off, Modbus Application Protocol v1.1b3 §6.5) or FC 15.
// No single vendor document covers every board of this kind; the coil layout is the one they share. With a
// normally-open contactor, coil on = supply closed; the edge configuration can invert this per output.
import { defineProfile, type PointInput } from "./schema.js";

const channels = [1, 2, 3, 4, 5, 6, 7, 8] as const;

export const relayModule8ch = defineProfile({
  id: "relay-module-8ch",
  manufacturer: "generic",
  model: "8-channel Modbus RTU relay module",
  kind: "relay-module",
  description: "Eight relay outputs on coils 0-7 driving contactors; default 9600 8N1, unit 1.",
  sources: ["Modbus Application Protocol v1.1b3 §6.1, §6.5, §6.11", "common Modbus RTU relay board documentation (coils 0x0000-0x0007)"],
  confidence: "partial",
  serial: { baud: 9600, parity: "none", stopBits: 1, unitId: 1 },
  limits: { maxRegistersPerRead: 125, maxBitsPerRead: 8, evenAlignment: false, maxBridgeGap: 0 },
  points: channels.map((ch): PointInput => ({
    id: `relay${ch}`,
    role: "relay_state",
    channel: String(ch),
    fc: 1,
    type: "bool",
    address: ch - 1,
    unit: "1",
    description: `Relay ${ch} coil: 1 = energised (contactor closed)`,
  })),
  writes: channels.map((ch) => ({
    role: "relay" as const,
    channel: String(ch),
    fc: 5 as const,
    address: ch - 1,
    openValue: 0,
    closedValue: 1,
    readBack: `relay${ch}`,
    description: `Relay ${ch}: FC 05 0x0000 de-energises (cut), 0xFF00 energises`,
  })),
});
