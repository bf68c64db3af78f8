// The simulator's control surface: a small HTTP/JSON API on loopback to look at the field and to play the field's
// events — start a fire, open a meter cover, kill a device, change a load, unplug the RS-485 adapter. Bodies are
// validated with zod and capped in size; errors are application/problem+json.

import http from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { formatIssues } from "../protocols/validation.js";
import { fireSpecOf, FieldError, type Field } from "./field.js";
import { faultSchema } from "./modbus/faults.js";
import { FireSensorModel } from "./models/fire-sensor.js";
import { MeterModel } from "./models/meter.js";
import { RelayModuleModel } from "./models/relay-module.js";
import { loadSchema } from "./scenario.js";

const MAX_BODY_BYTES = 64 * 1024;

export const deviceActionSchema = z.discriminatedUnion("action", [
  z.object({ action: z.literal("kill") }).strict(),
  z.object({ action: z.literal("revive") }).strict(),
  z.object({ action: z.literal("fault"), fault: faultSchema }).strict(),
  z.object({ action: z.literal("clear-faults") }).strict(),
  z
    .object({
      action: z.literal("start-fire"),
      smokeRiseDbPerMPerMin: z.number().positive().max(10).optional(),
      maxSmokeDbPerM: z.number().positive().max(65).optional(),
      tempRiseCPerMin: z.number().min(0).max(100).optional(),
      maxTempC: z.number().max(300).optional(),
    })
    .strict(),
  z.object({ action: z.literal("stop-fire") }).strict(),
  z.object({ action: z.literal("open-cover") }).strict(),
  z.object({ action: z.literal("close-cover") }).strict(),
  z.object({ action: z.literal("set-load"), loads: z.array(loadSchema).max(16) }).strict(),
  z.object({ action: z.literal("reverse-flow"), on: z.boolean() }).strict(),
  z.object({ action: z.literal("bypass"), watts: z.number().min(0).max(200_000) }).strict(),
  z.object({ action: z.literal("reset-register") }).strict(),
  z.object({ action: z.literal("jump-register"), wh: z.number().int().min(-1e12).max(1e12) }).strict(),
  z.object({ action: z.literal("nan-register"), on: z.boolean() }).strict(),
  z.object({ action: z.literal("set-relay"), closed: z.boolean() }).strict(),
  z.object({ action: z.literal("set-coil"), channel: z.number().int().min(1).max(8), on: z.boolean() }).strict(),
  z.object({ action: z.literal("battery"), mv: z.number().int().min(2500).max(4500) }).strict(),
  z.object({ action: z.literal("self-test-fails"), on: z.boolean() }).strict(),
]);
export type DeviceAction = z.output<typeof deviceActionSchema>;
export type DeviceActionInput = z.input<typeof deviceActionSchema>;

export const busActionSchema = z.discriminatedUnion("action", [
  z.object({ action: z.literal("unplug"), forMs: z.number().int().min(1).max(3_600_000).optional() }).strict(),
  z.object({ action: z.literal("replug") }).strict(),
  z.object({ action: z.literal("drop-connections") }).strict(),
]);
export type BusAction = z.output<typeof busActionSchema>;

export const clockActionSchema = z.object({ speed: z.number().min(0).max(10_000_000).optional(), advanceS: z.number().min(0).max(31_536_000).optional() }).strict();

class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
  }
}

function notApplicable(action: string, deviceId: string, kind: string): HttpProblem {
  return new HttpProblem(409, "Action not applicable", `${action} does not apply to ${deviceId} (a ${kind})`);
}

/** Apply one action to a device (validated again here, so library callers get the same checks as HTTP ones). */
export function applyDeviceAction(field: Field, deviceId: string, input: DeviceActionInput): Record<string, unknown> {
  const a: DeviceAction = deviceActionSchema.parse(input);
  const device = field.requireDevice(deviceId);
  const kind = device.profile.kind;
  switch (a.action) {
    case "kill":
      field.setAlive(deviceId, false);
      break;
    case "revive":
      field.setAlive(deviceId, true);
      break;
    case "fault":
      field.addFault(deviceId, a.fault);
      break;
    case "clear-faults":
      field.clearFaults(deviceId);
      break;
    case "start-fire":
    case "stop-fire":
    case "battery":
    case "self-test-fails":
      if (!(device instanceof FireSensorModel)) throw notApplicable(a.action, deviceId, kind);
      if (a.action === "start-fire") device.startFire(field.simNowMs, fireSpecOf(a));
      else if (a.action === "stop-fire") device.stopFire();
      else if (a.action === "battery") device.batteryMv = a.mv;
      else device.selfTestWillFail = a.on;
      break;
    case "open-cover":
    case "close-cover":
      if (device instanceof FireSensorModel) device.tamper = a.action === "open-cover";
      else if (device instanceof MeterModel) device.coverOpen = a.action === "open-cover";
      else throw notApplicable(a.action, deviceId, kind);
      break;
    case "set-coil":
      if (!(device instanceof RelayModuleModel)) throw notApplicable(a.action, deviceId, kind);
      device.write("coil", a.channel - 1, [a.on ? 1 : 0], field.simNowMs);
      break;
    default:
      if (!(device instanceof MeterModel)) throw notApplicable(a.action, deviceId, kind);
      if (a.action === "set-load") device.loads = [...a.loads];
      else if (a.action === "reverse-flow") device.reverseFlow = a.on;
      else if (a.action === "bypass") device.bypassW = a.watts;
      else if (a.action === "reset-register") device.resetRegister();
      else if (a.action === "jump-register") device.jumpRegister(a.wh);
      else if (a.action === "nan-register") device.nanImport = a.on;
      else device.relayClosed = a.closed; // the local button on the meter
      break;
  }
  // Let the registers show the change at once rather than at the next tick.
  device.step(0, field.simNowMs);
  return { ...device.describe(), ...field.placement(deviceId) };
}

export interface ControlServerHandle {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpProblem(413, "Body too large", `request bodies are limited to ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return text.length === 0 ? {} : (JSON.parse(text) as unknown);
  } catch (err) {
    throw new HttpProblem(400, "Invalid JSON", (err as Error).message);
  }
}

function parseWith<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new HttpProblem(400, "Invalid action", "the body does not match the action schema", { issues: formatIssues(r.error.issues) });
  return r.data;
}

export async function startControlServer(field: Field, host: string, port: number): Promise<ControlServerHandle> {
  const unplugTimers = new Set<NodeJS.Timeout>();
  const route = async (req: http.IncomingMessage): Promise<{ status: number; body: unknown }> => {
    const url = new URL(req.url ?? "/", "http://sim");
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    const method = req.method ?? "GET";
    if (method === "GET" && parts.length === 1 && parts[0] === "health") return { status: 200, body: { ok: true } };
    if (method === "GET" && parts.length === 1 && parts[0] === "field") return { status: 200, body: field.describe() };
    if (method === "GET" && parts.length === 2 && parts[0] === "devices") {
      const d = field.requireDevice(parts[1] as string);
      return { status: 200, body: { ...d.describe(), ...field.placement(d.id) } };
    }
    if (method === "POST" && parts.length === 3 && parts[0] === "devices" && parts[2] === "actions") {
      const action = parseWith(deviceActionSchema, await readJson(req));
      return { status: 200, body: applyDeviceAction(field, parts[1] as string, action) };
    }
    if (method === "POST" && parts.length === 3 && parts[0] === "buses" && parts[2] === "actions") {
      const busId = parts[1] as string;
      const action = parseWith(busActionSchema, await readJson(req));
      if (action.action === "drop-connections") field.requireBus(busId).tcp?.dropConnections();
      else if (action.action === "replug") await field.replug(busId);
      else {
        await field.unplug(busId);
        if (action.forMs !== undefined) {
          const t = setTimeout(() => {
            unplugTimers.delete(t);
            field.replug(busId).catch(() => undefined);
          }, action.forMs);
          unplugTimers.add(t);
        }
      }
      return { status: 200, body: field.describe() };
    }
    if (method === "POST" && parts.length === 1 && parts[0] === "clock") {
      const c = parseWith(clockActionSchema, await readJson(req));
      if (c.speed !== undefined) field.speed = c.speed;
      if (c.advanceS !== undefined) field.advance(c.advanceS * 1000);
      return { status: 200, body: { simTime: new Date(field.simNowMs).toISOString(), speed: field.speed } };
    }
    throw new HttpProblem(404, "Not found", `${method} ${url.pathname} is not a control route`);
  };

  const server = http.createServer((req, res) => {
    route(req)
      .then(({ status, body }) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      })
      .catch((err: unknown) => {
        const problem =
          err instanceof HttpProblem
            ? err
            : err instanceof FieldError
              ? new HttpProblem(err.code === "SIM_NOT_RTU" ? 409 : 404, err.code, err.message)
              : new HttpProblem(500, "Internal error", (err as Error).message);
        res.writeHead(problem.status, { "content-type": "application/problem+json" });
        res.end(JSON.stringify({ type: "about:blank", title: problem.title, status: problem.status, detail: problem.detail, ...problem.extra }));
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    port: address.port,
    host,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of unplugTimers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
