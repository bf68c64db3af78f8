// Test harness for interop tests: finds the peer programs (mbpoll, socat, Debian's python3 with pymodbus), runs
// them with a time limit, hands out temporary paths, and starts a simulated field on free ports. A missing program
// fails the test with the Debian package to install; it never skips (ARCHITECTURE.md §6).

import { execFile, spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { accessSync, constants } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { Field } from "../../firmware-sim/field.js";
import { parseScenario } from "../../firmware-sim/scenario.js";

const execFileAsync = promisify(execFile);

/** The Debian package that provides each program the interop tests use. */
export const DEBIAN_PACKAGES: Readonly<Record<string, string>> = {
  mbpoll: "mbpoll",
  socat: "socat",
  "/usr/bin/python3": "python3-pymodbus",
};

export class MissingProgramError extends Error {
  readonly code = "TEST_PROGRAM_MISSING";
  readonly retryable = false;
  constructor(message: string) {
    super(message);
    this.name = "MissingProgramError";
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A program name with a slash is taken as a path; otherwise the first executable of that name on PATH. */
function resolveOnPath(name: string): string | undefined {
  if (name.includes("/")) return isExecutable(name) ? name : undefined;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The path of `name`, checked by running it with `probeArgs` (which must exit 0 within 10 s, e.g.
 * `["-c", "import pymodbus"]`). Throws when the program is missing or the probe fails, naming the Debian
 * package to install; under CI (process.env.CI set) the message says the CI image is incomplete.
 */
export function requireProgram(name: string, probeArgs: readonly string[], debianPackage = DEBIAN_PACKAGES[name] ?? name): string {
  const path = resolveOnPath(name);
  let problem: string | undefined;
  if (path === undefined) problem = `${name} was not found${name.includes("/") ? "" : " on PATH"}`;
  else {
    const probe = spawnSync(path, probeArgs, { timeout: 10_000, encoding: "utf8" });
    if (probe.error) problem = `${path} ${probeArgs.join(" ")} could not run: ${probe.error.message}`;
    else if (probe.status !== 0) problem = `${path} ${probeArgs.join(" ")} exited with ${String(probe.status ?? probe.signal)}: ${probe.stderr.trim().slice(0, 500)}`;
  }
  if (problem === undefined && path !== undefined) return path;
  const install = `install it with: apt-get install ${debianPackage}`;
  if (process.env.CI) throw new MissingProgramError(`${problem ?? name}; the CI image must provide Debian package ${debianPackage} (${install})`);
  throw new MissingProgramError(`${problem ?? name}; ${install} (interop tests never skip)`);
}

export interface ProgramResult {
  /** Exit code, or null when the program was killed (time limit or signal). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Kill the program (SIGKILL) after this long. */
  readonly timeoutMs: number;
  /** Written to the program's stdin, which is then closed. */
  readonly input?: string;
}

interface ExecFailure {
  code?: number | string | null;
  signal?: NodeJS.Signals | null;
  stdout?: string;
  stderr?: string;
}

/** Run a program to completion. A non-zero exit or a kill is a result, not an error; a failure to start throws. */
export async function runProgram(path: string, args: readonly string[], opts: RunOptions): Promise<ProgramResult> {
  const running = execFileAsync(path, [...args], { timeout: opts.timeoutMs, killSignal: "SIGKILL", encoding: "utf8", maxBuffer: 16 * 1024 * 1024 });
  const stdin = running.child.stdin;
  if (stdin) {
    stdin.on("error", () => undefined); // the program may exit before reading its input
    stdin.end(opts.input ?? "");
  }
  try {
    const { stdout, stderr } = await running;
    return { code: 0, signal: null, stdout, stderr };
  } catch (err) {
    const failure = err as ExecFailure;
    // A string code (ENOENT, EACCES) means the program never ran.
    if (typeof failure.code === "string") throw err;
    return { code: failure.code ?? null, signal: failure.signal ?? null, stdout: failure.stdout ?? "", stderr: failure.stderr ?? "" };
  }
}

/** A path in the temporary directory that no other test (or run) uses, e.g. for a pty link. */
export function tempPath(prefix: string): string {
  return join(tmpdir(), `${prefix}-${process.pid}-${randomUUID().slice(0, 8)}`);
}

/** Await `promise`, but fail with a clear message instead of hanging until the test runner's own time-out. */
export async function settleWithin<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export interface RunningField {
  readonly field: Field;
  /** The port the bus's TCP server actually listens on (scenarios use port 0). */
  tcpPort(busId: string): number;
  /** Stop the field; fails after 10 s rather than hanging the test file. */
  close(): Promise<void>;
}

/** Parse a scenario, start its buses (TCP on free ports, RTU ptys through socat) with the clock driven by advance(). */
export async function startField(input: unknown, opts: { readonly socatPath?: string; readonly autoTick?: boolean } = {}): Promise<RunningField> {
  const scenario = parseScenario(input);
  const field = new Field(scenario, undefined, { autoTick: opts.autoTick ?? false, ...(opts.socatPath !== undefined ? { socatPath: opts.socatPath } : {}) });
  try {
    await field.start();
  } catch (err) {
    await settleWithin(field.stop(), 10_000, "Field.stop()").catch(() => undefined);
    throw err;
  }
  return {
    field,
    tcpPort: (busId) => {
      const tcp = field.requireBus(busId).tcp;
      if (!tcp) throw new Error(`bus ${busId} has no TCP server`);
      return tcp.port;
    },
    close: () => settleWithin(field.stop(), 10_000, "Field.stop()"),
  };
}
