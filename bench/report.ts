// Benchmark figures as the house convention wants them: one JSON line each, collected into
// bench/results/latest.json at the end of a run.

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface Figure {
  readonly bench: string;
  readonly value: number;
  readonly unit: string;
  readonly goal?: number;
  readonly better: "higher" | "lower";
  readonly note?: string;
}

const figures: Figure[] = [];

export function report(figure: Figure): void {
  figures.push(figure);
  process.stdout.write(`${JSON.stringify(figure)}\n`);
}

export function writeResults(): string {
  const dir = join(dirname(fileURLToPath(import.meta.url)), "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "latest.json");
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), node: process.version, figures }, null, 2)}\n`);
  return file;
}
