// Answer one Modbus request PDU from a simulated device's register bank, as the real device would: the
// profile's request limits (Eastron's 80 registers in pairs), ILLEGAL DATA ADDRESS outside the map, ILLEGAL
// FUNCTION for write codes the device does not understand (DDS238 takes FC 16 only), and the device's own
// refusal of a write. Pure: device in, response PDU out.

import { decodeRequest, encodeResponse, EXCEPTION_CODES, type ModbusResponse } from "../../protocols/modbus/pdu.js";
import type { SimDevice } from "../models/device.js";

function acceptedWriteCodes(device: SimDevice): Set<number> {
  const codes = new Set<number>();
  for (const w of device.profile.writes) {
    codes.add(w.fc);
    // A device that takes single writes takes the multiple form too; the reverse is not true (DDS238).
    if (w.fc === 5) codes.add(15);
    if (w.fc === 6) codes.add(16);
  }
  return codes;
}

export function handleRequestPdu(device: SimDevice, pdu: Uint8Array, nowMs: number): ModbusResponse {
  const decoded = decodeRequest(pdu);
  const fc = pdu[0] ?? 0;
  if (!decoded.ok) return { fc, exception: decoded.exception };
  const req = decoded.value;
  const limits = device.profile.limits;
  switch (req.fc) {
    case 1:
    case 2: {
      const table = req.fc === 1 ? "coil" : "discrete";
      if (req.quantity > limits.maxBitsPerRead) return { fc, exception: EXCEPTION_CODES.ILLEGAL_DATA_VALUE };
      if (!device.bank.readable(table, req.address, req.quantity)) return { fc, exception: EXCEPTION_CODES.ILLEGAL_DATA_ADDRESS };
      return { fc: req.fc, bits: device.bank.readBits(table, req.address, req.quantity) };
    }
    case 3:
    case 4: {
      const table = req.fc === 3 ? "holding" : "input";
      if (req.quantity > limits.maxRegistersPerRead) return { fc, exception: EXCEPTION_CODES.ILLEGAL_DATA_VALUE };
      if (limits.evenAlignment && (req.address % 2 !== 0 || req.quantity % 2 !== 0)) return { fc, exception: EXCEPTION_CODES.ILLEGAL_DATA_ADDRESS };
      if (!device.bank.readable(table, req.address, req.quantity)) return { fc, exception: EXCEPTION_CODES.ILLEGAL_DATA_ADDRESS };
      return { fc: req.fc, words: device.bank.readWords(table, req.address, req.quantity) };
    }
    default: {
      if (!acceptedWriteCodes(device).has(req.fc)) return { fc, exception: EXCEPTION_CODES.ILLEGAL_FUNCTION };
      const table = req.fc === 5 || req.fc === 15 ? "coil" : "holding";
      const values =
        req.fc === 5 ? [req.value ? 1 : 0] : req.fc === 6 ? [req.value] : req.fc === 15 ? req.values.map((b) => (b ? 1 : 0)) : [...req.values];
      if (req.fc === 16 && values.length > limits.maxWriteRegisters) return { fc, exception: EXCEPTION_CODES.ILLEGAL_DATA_VALUE };
      const outcome = device.write(table, req.address, values, nowMs);
      if (outcome.exception !== undefined) return { fc, exception: outcome.exception };
      if (req.fc === 5) return { fc: 5, address: req.address, value: req.value ? 0xff00 : 0 };
      if (req.fc === 6) return { fc: 6, address: req.address, value: req.value };
      return { fc: req.fc, address: req.address, quantity: values.length };
    }
  }
}

export function answerPdu(device: SimDevice, pdu: Uint8Array, nowMs: number): Uint8Array {
  return encodeResponse(handleRequestPdu(device, pdu, nowMs));
}
