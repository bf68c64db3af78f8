// Calectro Uniguard Superflow UG-3-O-MB-R duct smoke detector with Modbus.
// Source: Calectro mounting instructions, "Modbus configuration" page (manualshive page 5). The manual numbers
// objects 1x0001.. and 4x0001..; we take them as 0-based PDU addresses 0.. (the usual Modicon convention).
// Link settings by DIP switch; the factory setting (all off) is address 1, none/2 stop, 9600.
import { defineProfile } from "./schema.js";

export const calectroUg3 = defineProfile({
  id: "calectro-ug-3-o-mb-r",
  manufacturer: "Calectro",
  model: "Uniguard Superflow UG-3-O-MB-R",
  kind: "smoke-detector",
  description: "Optical duct smoke detector: alarm, service and relay flags as discrete inputs; reset by writing 234.",
  sources: ["Calectro UG-3-O-MB-R mounting instructions, Modbus configuration (manualshive p.5)"],
  confidence: "verified",
  serial: { baud: 9600, parity: "none", stopBits: 2, unitId: 1 },
  limits: { maxRegistersPerRead: 4, maxBitsPerRead: 4, evenAlignment: false, maxBridgeGap: 0 },
  points: [
    { id: "detectorMounted", role: "detector_mounted", fc: 2, type: "bool", address: 0, unit: "1", description: "1x0001 detector mounted" },
    { id: "serviceAlarm", role: "service_alarm", fc: 2, type: "bool", address: 1, unit: "1", description: "1x0002 service alarm" },
    { id: "smokeAlarm", role: "smoke_alarm", fc: 2, type: "bool", address: 2, unit: "1", description: "1x0003 smoke alarm" },
    { id: "relayStatus", role: "relay_state", fc: 2, type: "bool", address: 3, unit: "1", description: "1x0004 alarm relay status" },
  ],
  writes: [
    { role: "alarm_reset", fc: 6, address: 0, commandValue: 234, description: "4x0001: write 234 to reset the alarm" },
    { role: "self_test", fc: 6, address: 2, commandValue: 567, description: "4x0003: write 567 to activate the relay manually" },
  ],
});
