// Debian's chromium driven by playwright-core (no browser download: the machine and CI have the Debian package),
// headless with a fresh profile per run. A missing chromium fails the test naming the Debian package to install
// (test/harness/programs.ts requireProgram); it never skips.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { requireProgram } from "../harness/programs.js";

export const CHROMIUM_PATH = "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
] as const;

export interface RunningBrowser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<RunningBrowser> {
  const executablePath = requireProgram(CHROMIUM_PATH, ["--version"], "chromium");
  const profile = mkdtempSync(join(tmpdir(), "console-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: [...CHROMIUM_ARGS],
      viewport: { width: 420, height: 860 },
      locale: "zh-CN",
      timezoneId: "Asia/Shanghai",
    });
    return {
      context,
      close: async () => {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
}
