// Electrical loads behind a simulated meter: an irrigation pump on a daily schedule, a constant load, or the
// small evening-peaked load of a pump house. Each returns its demand in watts at a simulated instant.

import { dayOfWeekShanghai, inWindow, minuteOfDayShanghai, parseClock } from "./local-time.js";

export type LoadSpec =
  | { readonly kind: "pump"; readonly ratedW: number; readonly schedule: readonly { readonly from: string; readonly to: string }[]; readonly days?: readonly number[] | undefined; readonly powerFactor?: number | undefined }
  | { readonly kind: "constant"; readonly watts: number }
  | { readonly kind: "household"; readonly baseW: number; readonly peakW: number };

export function loadWatts(load: LoadSpec, epochMs: number): number {
  const minute = minuteOfDayShanghai(epochMs);
  switch (load.kind) {
    case "pump": {
      if (load.days && !load.days.includes(dayOfWeekShanghai(epochMs))) return 0;
      return load.schedule.some((w) => inWindow(minute, parseClock(w.from), parseClock(w.to))) ? load.ratedW : 0;
    }
    case "constant":
      return load.watts;
    case "household": {
      // Evening peak 18:00-22:00, a smaller morning one 06:00-08:00.
      if (inWindow(minute, 18 * 60, 22 * 60)) return load.peakW;
      if (inWindow(minute, 6 * 60, 8 * 60)) return (load.baseW + load.peakW) / 2;
      return load.baseW;
    }
  }
}
