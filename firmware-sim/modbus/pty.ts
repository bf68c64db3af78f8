// A pseudo-terminal for the simulated RS-485 bus: socat creates a pty, links its slave side at a stable path
// (e.g. /tmp/agri-sim-rtu0) and relays its master side to our stdin/stdout. The edge agent, mbpoll or pymodbus
// open that path as if it were a USB-RS485 adapter. Closing it and opening it again works (socat holds the master);
// unplug() removes the device node the way a pulled USB adapter does.

import { spawn, type ChildProcessByStdio } from "node:child_process";
import { existsSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { AgriError } from "../../protocols/errors.js";
import type { ByteLink } from "./rtu-server.js";

export class PtyError extends AgriError {
  constructor(message: string) {
    super("SIM_PTY_FAILED", false, message);
  }
}

export interface PtyHandle extends ByteLink {
  readonly path: string;
  close(): Promise<void>;
}

export async function openPty(linkPath: string, socatPath = "socat"): Promise<PtyHandle> {
  const listeners: ((chunk: Uint8Array) => void)[] = [];
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(socatPath, ["-d", "-d", `PTY,link=${linkPath},rawer`, "STDIO"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdout.on("data", (chunk: Buffer) => {
    for (const l of listeners) l(chunk);
  });
  child.stdin.on("error", () => undefined);
  let stderr = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      done();
      child.kill("SIGKILL");
      reject(new PtyError(`socat did not open ${linkPath} within 5 s: ${stderr.trim()}`));
    }, 5000);
    const onError = (err: Error): void => {
      done();
      reject(new PtyError(`cannot start socat (install Debian package socat): ${err.message}`));
    };
    const onExit = (code: number | null): void => {
      done();
      reject(new PtyError(`socat exited with ${String(code)} before the pty was ready: ${stderr.trim()}`));
    };
    const onStderr = (d: Buffer): void => {
      stderr += d.toString();
      if (stderr.includes("starting data transfer loop") && existsSync(linkPath)) {
        done();
        resolve();
      }
    };
    // Remove exactly the start-up listeners: close() adds its own exit listener later, and socat's "exiting on
    // signal 15" on stderr must not be able to remove it.
    function done(): void {
      clearTimeout(timer);
      child.off("error", onError);
      child.off("exit", onExit);
      child.stderr.off("data", onStderr);
      child.stderr.resume();
    }
    child.on("error", onError);
    child.on("exit", onExit);
    child.stderr.on("data", onStderr);
  });
  let closed = false;
  return {
    path: linkPath,
    write: (bytes) => {
      if (!closed && child.stdin.writable) child.stdin.write(bytes);
    },
    onData: (l) => listeners.push(l),
    close: () =>
      new Promise<void>((resolve) => {
        if (closed || child.exitCode !== null) {
          closed = true;
          resolve();
          return;
        }
        closed = true;
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
