// Epoch-aligned bucketing of raw samples into TelemetryPoints, for backends whose query language cannot do the same
// bucketing itself (VictoriaMetrics' lookbehind windows are (t − step, t], not [start, start + step)), and for raw
// queries, which are 1 ms buckets: samples of several gateways at the same instant become one point, as in SQL. Pure.

import type { TelemetryPoint } from "./sink.js";

export interface RawSample {
  readonly atMs: number;
  readonly value: number;
}

/** One series' samples sorted by time, one per timestamp (the later in input order wins, as a replay overwrites). */
export function dedupeByTime(samples: readonly RawSample[]): RawSample[] {
  const byTime = new Map<number, number>();
  for (const s of samples) byTime.set(s.atMs, s.value);
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([atMs, value]) => ({ atMs, value }));
}

/** Buckets of everyMs (default 1) starting at atMs − atMs mod everyMs, in time order. */
export function downsample(samples: readonly RawSample[], everyMs = 1): TelemetryPoint[] {
  const sorted = [...samples].sort((a, b) => a.atMs - b.atMs);
  const points: TelemetryPoint[] = [];
  let bucket: { atMs: number; sum: number; min: number; max: number; last: number; count: number } | undefined;
  const close = (): void => {
    if (bucket) points.push({ atMs: bucket.atMs, mean: bucket.sum / bucket.count, min: bucket.min, max: bucket.max, last: bucket.last, count: bucket.count });
  };
  for (const s of sorted) {
    const start = s.atMs - (((s.atMs % everyMs) + everyMs) % everyMs);
    if (!bucket || bucket.atMs !== start) {
      close();
      bucket = { atMs: start, sum: 0, min: s.value, max: s.value, last: s.value, count: 0 };
    }
    bucket.sum += s.value;
    bucket.min = Math.min(bucket.min, s.value);
    bucket.max = Math.max(bucket.max, s.value);
    bucket.last = s.value;
    bucket.count += 1;
  }
  close();
  return points;
}
