// Modbus RTU transport over a serial port (RS-485 adapter) through modbus-serial + serialport. modbus-serial has
// no request queue of its own (overlapping RTU requests all time out, modbus-serial #361): the bus queue above
// guarantees one transaction at a time. A port that vanishes (USB adapter unplugged) is closed and reopened on a
// later request with back-off, so the agent recovers without a restart when the adapter comes back.
// The bytes of a damaged answer are thrown away before the next request, so one bad frame costs one transaction.

import ModbusSerial from "modbus-serial";
import type { ModbusRTU as ModbusRtuClient } from "modbus-serial/ModbusRTU.js";
import type { ModbusRequest } from "../../protocols/modbus/pdu.js";
import { ModbusError, ModbusExceptionError, ModbusFrameError, ModbusPortError, ModbusTimeoutError } from "./errors.js";
import type { ModbusAnswer, ModbusTransport, RequestOptions } from "./transport.js";

export interface RtuLine {
  readonly path: string;
  readonly baud: number;
  readonly parity: "none" | "even" | "odd";
  readonly stopBits: 1 | 2;
}

// modbus-serial is CommonJS (module.exports = ModbusRTU); its typings describe an ES default export.
const ModbusRTU = ModbusSerial as unknown as new () => ModbusRtuClient;

interface ModbusSerialError {
  readonly message?: string;
  readonly name?: string;
  readonly errno?: string;
  readonly modbusCode?: number;
}

/**
 * Empty modbus-serial's receive buffer. Its buffered RTU port keeps every byte it has not handed out and frames the
 * next answer by expected length from the first byte matching the unit id and function code, so the rest of a
 * truncated answer (or line noise) left there makes the next, good answer fail its CRC — and the one after, until
 * some other unit's answer happens to resynchronise it. A master throws away what it received before it sends a
 * request (pymodbus: "Cleanup recv buffer before send"; libmodbus flushes on error recovery); modbus-serial 8 has no
 * call for that, so reach its buffer directly, and do nothing if a later version stores it differently.
 */
function discardStaleInput(client: ModbusRtuClient): void {
  const port = (client as unknown as { _port?: { _buffer?: unknown } })._port;
  if (port !== undefined && Buffer.isBuffer(port._buffer) && port._buffer.length > 0) port._buffer = Buffer.alloc(0);
}

export class RtuTransport implements ModbusTransport {
  private client: ModbusRtuClient | undefined;
  private opening: Promise<ModbusRtuClient> | undefined;
  private lastFailureAt = 0;
  private reopenDelayMs = 0;
  private closed = false;
  /** Fails the request on the wire at once when its port goes away (it would otherwise wait for its timeout). */
  private failInFlight: ((err: ModbusPortError) => void) | undefined;

  constructor(private readonly line: RtuLine) {}

  describe(): string {
    return `rtu ${this.line.path} ${this.line.baud} ${this.line.parity[0]?.toUpperCase() ?? "N"}${this.line.stopBits}`;
  }

  isOpen(): boolean {
    return this.client?.isOpen ?? false;
  }

  private open(): Promise<ModbusRtuClient> {
    if (this.client?.isOpen) return Promise.resolve(this.client);
    if (this.opening) return this.opening;
    if (Date.now() - this.lastFailureAt < this.reopenDelayMs) {
      return Promise.reject(new ModbusPortError(`${this.describe()} unavailable; retrying in ${this.reopenDelayMs - (Date.now() - this.lastFailureAt)} ms`));
    }
    this.opening = (async () => {
      const stale = this.client;
      this.client = undefined;
      if (stale) await new Promise<void>((resolve) => stale.close(() => resolve()));
      const client = new ModbusRTU();
      // modbus-serial re-emits serial port errors (EIO on write once the USB adapter is pulled out) as "error" on the
      // client; with no listener Node throws them as an uncaught exception and the whole agent dies. The port
      // reports a disconnect (EIO on read) only through "close". Either way this client is finished.
      client.on("error", (err) => this.portLost(client, (err as ModbusSerialError | undefined)?.message ?? String(err)));
      client.on("close", () => this.portLost(client, "port closed"));
      try {
        await client.connectRTUBuffered(this.line.path, { baudRate: this.line.baud, parity: this.line.parity, stopBits: this.line.stopBits, dataBits: 8 });
      } catch (err) {
        this.lastFailureAt = Date.now();
        this.reopenDelayMs = Math.min(10_000, Math.max(250, this.reopenDelayMs * 2));
        throw new ModbusPortError(`${this.describe()}: ${(err as Error).message}`);
      }
      this.reopenDelayMs = 0;
      this.client = client;
      return client;
    })().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  /**
   * The port of `client` went away: forget the client so the next request reopens the path (an unplugged adapter
   * comes back as a new device node), after the usual back-off, and fail the request waiting on it now.
   */
  private portLost(client: ModbusRtuClient, reason: string): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.lastFailureAt = Date.now();
    this.reopenDelayMs = Math.max(250, this.reopenDelayMs);
    // serialport already closes the port on a disconnect; close it here only if it still counts as open.
    if (client.isOpen) client.close(() => undefined);
    this.failInFlight?.(new ModbusPortError(`${this.describe()}: ${reason}`));
  }

  private mapError(err: unknown, unitId: number, timeoutMs: number): Error {
    const e = err as ModbusSerialError;
    if (typeof e.modbusCode === "number") return new ModbusExceptionError(e.modbusCode, `unit ${unitId} answered exception ${e.modbusCode}`);
    if (e.errno === "ETIMEDOUT" || e.name === "TransactionTimedOutError") return new ModbusTimeoutError(`unit ${unitId} on ${this.describe()}: no answer in ${timeoutMs} ms`);
    const message = e.message ?? String(err);
    if (/CRC|length|Unexpected data|Data length/i.test(message)) return new ModbusFrameError(`unit ${unitId}: ${message}`);
    // Anything else (Port Not Open, EIO after unplugging): drop the client; the next request reopens.
    this.lastFailureAt = Date.now();
    this.reopenDelayMs = Math.max(250, this.reopenDelayMs);
    const stale = this.client;
    this.client = undefined;
    stale?.close(() => undefined);
    return new ModbusPortError(`${this.describe()}: ${message}`);
  }

  async request(unitId: number, req: ModbusRequest, opts: RequestOptions): Promise<ModbusAnswer> {
    if (this.closed) throw new ModbusPortError(`${this.describe()} is closed`);
    const client = await this.open();
    client.setID(unitId);
    client.setTimeout(opts.timeoutMs);
    discardStaleInput(client);
    const lost = new Promise<never>((_, reject) => {
      this.failInFlight = reject;
    });
    try {
      return await Promise.race([this.exchange(client, req), lost]);
    } catch (err) {
      if (err instanceof ModbusError) throw err;
      throw this.mapError(err, unitId, opts.timeoutMs);
    } finally {
      this.failInFlight = undefined;
    }
  }

  private async exchange(client: ModbusRtuClient, req: ModbusRequest): Promise<ModbusAnswer> {
    switch (req.fc) {
      case 1:
        return { fc: 1, bits: (await client.readCoils(req.address, req.quantity)).data.slice(0, req.quantity) };
      case 2:
        return { fc: 2, bits: (await client.readDiscreteInputs(req.address, req.quantity)).data.slice(0, req.quantity) };
      case 3: {
        const words = (await client.readHoldingRegisters(req.address, req.quantity)).data;
        if (words.length !== req.quantity) throw new ModbusFrameError(`asked ${req.quantity} registers, got ${words.length}`);
        return { fc: 3, words };
      }
      case 4: {
        const words = (await client.readInputRegisters(req.address, req.quantity)).data;
        if (words.length !== req.quantity) throw new ModbusFrameError(`asked ${req.quantity} registers, got ${words.length}`);
        return { fc: 4, words };
      }
      case 5:
        await client.writeCoil(req.address, req.value);
        return { fc: 5, address: req.address, value: req.value ? 0xff00 : 0 };
      case 6:
        await client.writeRegister(req.address, req.value);
        return { fc: 6, address: req.address, value: req.value };
      case 15:
        await client.writeCoils(req.address, [...req.values]);
        return { fc: 15, address: req.address, quantity: req.values.length };
      case 16:
        await client.writeRegisters(req.address, [...req.values]);
        return { fc: 16, address: req.address, quantity: req.values.length };
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    if (c) await new Promise<void>((resolve) => c.close(() => resolve()));
  }
}
