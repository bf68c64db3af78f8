// Codec decode rate: values decoded per second through protocols' decodePointWords (type, word order, scale,
// NaN checks), against a bare DataView.getFloat32 on the same words as the floor any decoder must pay.

import { decodePointWords } from "../protocols/codec/point-codec.js";
import { encodeRaw } from "../protocols/codec/word-codec.js";
import { findProfile } from "../protocols/profiles/index.js";
import { report } from "./report.js";

export function codecDecode(): void {
  const profile = findProfile("eastron-sdm630-v2");
  const point = profile?.points.find((p) => p.id === "importEnergy");
  const scaled = findProfile("chint-dtsu666")?.points.find((p) => p.id === "currentL1");
  if (!point || !scaled) throw new Error("profiles missing");
  const samples = Array.from({ length: 1024 }, (_, i) => encodeRaw("f32", "ABCD", 1000 + i * 1.25));
  const n = 2_000_000;
  let sink = 0;
  // Warm up both paths so the JIT has compiled them before timing.
  for (let i = 0; i < 200_000; i++) {
    const r = decodePointWords(point, samples[i & 1023] as number[]);
    if (r.ok) sink += r.value;
  }
  let t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = decodePointWords(i & 1 ? point : scaled, samples[i & 1023] as number[]);
    if (r.ok) sink += r.value;
  }
  const codecMs = performance.now() - t0;
  const view = new DataView(new ArrayBuffer(4));
  t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const w = samples[i & 1023] as number[];
    view.setUint16(0, w[0] as number);
    view.setUint16(2, w[1] as number);
    sink += view.getFloat32(0);
  }
  const bareMs = performance.now() - t0;
  if (sink === 42) process.stdout.write("");
  const rate = (n / codecMs) * 1000;
  report({ bench: "codec-decode-rate", value: Math.round(rate), unit: "values/s", better: "higher", note: "f32 ABCD with scale and NaN checks" });
  report({ bench: "codec-decode-per-bare-float-read", value: Number((codecMs / bareMs).toFixed(1)), unit: "ratio", better: "lower", note: "cost of one checked, scaled decode in bare DataView.getFloat32 reads" });
}
