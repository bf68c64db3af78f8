// Typed failures of a Modbus transaction, each with a stable code and a retry flag. Exceptions from the device
// keep their Modbus exception code (Modbus Application Protocol V1.1b3 §7).

export class ModbusError extends Error {
  constructor(
    readonly code: string,
    readonly retryable: boolean,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** No (complete) answer within the timeout: dead device, wrong unit id, wrong baud, broken wire. */
export class ModbusTimeoutError extends ModbusError {
  constructor(message: string) {
    super("EDGE_MODBUS_TIMEOUT", true, message);
  }
}

/** The device answered with an exception response. Busy (6) and acknowledge (5) are worth retrying. */
export class ModbusExceptionError extends ModbusError {
  constructor(
    readonly exceptionCode: number,
    message: string,
  ) {
    super("EDGE_MODBUS_EXCEPTION", exceptionCode === 5 || exceptionCode === 6, message);
  }
}

/** A frame arrived but was wrong: bad CRC, truncated, mismatching function code, byte count or echo. */
export class ModbusFrameError extends ModbusError {
  constructor(message: string) {
    super("EDGE_MODBUS_FRAME", true, message);
  }
}

/** The port or connection is not there: serial adapter unplugged, TCP refused or reset. */
export class ModbusPortError extends ModbusError {
  constructor(message: string) {
    super("EDGE_MODBUS_PORT", true, message);
  }
}

export const MODBUS_ERROR_TABLE = [
  { code: "EDGE_MODBUS_TIMEOUT", retryable: true, cause: "no complete answer in time", fix: "check wiring, unit id, baud/parity, termination; a dead device is reported offline" },
  { code: "EDGE_MODBUS_EXCEPTION", retryable: "for codes 5 and 6", cause: "the device refused the request", fix: "check the profile's addresses and function codes against the device manual" },
  { code: "EDGE_MODBUS_FRAME", retryable: true, cause: "CRC error, truncated or mismatching answer", fix: "noise on RS-485: check shielding, termination and ground; two masters on one bus" },
  { code: "EDGE_MODBUS_PORT", retryable: true, cause: "serial port gone or TCP connection refused", fix: "the agent reopens it by itself; check the adapter, cable or network" },
] as const;
