// Pure decision on a downlink command before anything is executed: parse and validate it, refuse it when expired
// (a stale credit grant or relay command must never be replayed after an offline period), answer a replay of an
// already executed command with the stored result instead of executing it twice, and refuse commands for meters this
// gateway does not guard. Only a command that passes all of that is handed to the agent to execute.

import { commandExpired, parseMessage, type Command } from "../../protocols/mqtt/messages.js";

export type AckStatus = "accepted" | "rejected" | "done" | "failed";

export type CommandDecision =
  /** Not a command at all (no usable commandId): nothing to acknowledge. */
  | { readonly kind: "drop"; readonly reason: string }
  /** Acknowledge without executing. `remember`: store the result so a replay gets the same answer. */
  | { readonly kind: "ack"; readonly commandId: string; readonly status: AckStatus; readonly reason?: string; readonly detail?: string; readonly remember: boolean }
  | { readonly kind: "execute"; readonly command: Command };

export interface CommandContext {
  readonly nowMs: number;
  /** The stored outcome of an earlier execution of this commandId, if any. */
  seen(commandId: string): { status: "done" | "rejected" | "failed"; reason?: string; detail?: string } | undefined;
  /** Meters with a supply this gateway can cut. */
  readonly meterIds: ReadonlySet<string>;
}

const COMMAND_ID = /^[A-Za-z0-9-]{8,64}$/;
/** MQTT payloads above this are refused before JSON.parse (a config update is the largest legitimate command). */
export const MAX_COMMAND_BYTES = 128 * 1024;

export function decideCommand(payload: Uint8Array, ctx: CommandContext): CommandDecision {
  if (payload.length > MAX_COMMAND_BYTES) return { kind: "drop", reason: `command of ${payload.length} bytes exceeds ${MAX_COMMAND_BYTES}` };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch (err) {
    return { kind: "drop", reason: `not UTF-8 JSON: ${(err as Error).message}` };
  }
  const rawId = typeof json === "object" && json !== null ? (json as Record<string, unknown>).commandId : undefined;
  const commandId = typeof rawId === "string" && COMMAND_ID.test(rawId) ? rawId : undefined;
  const parsed = parseMessage("command", json);
  if (!parsed.ok) {
    const reason = `invalid command: ${parsed.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`.slice(0, 200);
    return commandId ? { kind: "ack", commandId, status: "rejected", reason, remember: false } : { kind: "drop", reason };
  }
  const cmd = parsed.value;
  const previous = ctx.seen(cmd.commandId);
  if (previous) {
    return { kind: "ack", commandId: cmd.commandId, status: previous.status, ...(previous.reason ? { reason: previous.reason } : {}), detail: `replay: ${previous.detail ?? "already executed"}`.slice(0, 1000), remember: false };
  }
  if (commandExpired(cmd, ctx.nowMs)) {
    return { kind: "ack", commandId: cmd.commandId, status: "rejected", reason: `expired at ${cmd.expiresAt}`, remember: true };
  }
  const body = cmd.command;
  const meterId = body.type === "credit.grant" ? body.meterId : body.type === "relay.set" ? body.deviceId : undefined;
  if (meterId !== undefined && !ctx.meterIds.has(meterId)) {
    return { kind: "ack", commandId: cmd.commandId, status: "rejected", reason: `no guarded meter ${meterId} on this gateway`, remember: true };
  }
  return { kind: "execute", command: cmd };
}
