// Read-planner quality: requests per poll cycle that planReads makes for every built-in profile's pollable points,
// against requestsLowerBound (bus-budget.ts: the exact minimum by dynamic programming under the same limits, not
// the planner's greedy) and against the naive one request per point. Each request on an RS-485 line costs a
// request frame, a turnaround and two silences, so the count is line time. Also over seeded random subsets of
// each profile's points (a configuration's `points:` list), where a greedy planner is likelier to slip.

import { requestsLowerBound } from "../edge/modbus/bus-budget.js";
import { planReads } from "../edge/modbus/read-planner.js";
import { seededRandom } from "../firmware-sim/models/random.js";
import { BUILT_IN_PROFILES } from "../protocols/profiles/index.js";
import { report } from "./report.js";

const RANDOM_SUBSETS_PER_PROFILE = 500;
const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

export function plannerBench(): void {
  const totals = { bridged: { planned: 0, bound: 0 }, unbridged: { planned: 0, bound: 0 }, points: 0 };
  for (const profile of BUILT_IN_PROFILES) {
    const points = profile.points.filter((p) => p.poll);
    const planned = planReads(profile, points).length;
    const bound = requestsLowerBound(profile, points);
    const plannedStrict = planReads(profile, points, { bridgeGaps: false }).length;
    const boundStrict = requestsLowerBound(profile, points, { bridgeGaps: false });
    totals.bridged.planned += planned;
    totals.bridged.bound += bound;
    totals.unbridged.planned += plannedStrict;
    totals.unbridged.bound += boundStrict;
    totals.points += points.length;
    report({
      bench: `planner-${profile.id}-vs-lower-bound`,
      value: round(planned / bound),
      unit: "ratio",
      goal: 1,
      better: "lower",
      note: `${planned} requests for ${points.length} pollable points (lower bound ${bound}, naive ${points.length}); without gap bridging ${plannedStrict} (bound ${boundStrict})`,
    });
  }
  report({ bench: "planner-vs-lower-bound", value: round(totals.bridged.planned / totals.bridged.bound), unit: "ratio", goal: 1, better: "lower", note: `all ${BUILT_IN_PROFILES.length} built-in profiles: ${totals.bridged.planned} requests per cycle, lower bound ${totals.bridged.bound}` });
  report({ bench: "planner-vs-lower-bound-no-bridging", value: round(totals.unbridged.planned / totals.unbridged.bound), unit: "ratio", goal: 1, better: "lower", note: `bridgeGaps false (noGapBridging devices): ${totals.unbridged.planned} requests, lower bound ${totals.unbridged.bound}` });
  report({ bench: "planner-vs-naive", value: round(totals.bridged.planned / totals.points), unit: "ratio", better: "lower", note: `${totals.bridged.planned} requests against ${totals.points} with one request per point` });

  // Random subsets of each profile's points (any point, polled or not), with and without bridging.
  const random = seededRandom(20260601);
  let instances = 0;
  let worst = 1;
  let worstCase = "";
  let planned = 0;
  let bound = 0;
  for (const profile of BUILT_IN_PROFILES) {
    for (let i = 0; i < RANDOM_SUBSETS_PER_PROFILE; i++) {
      const subset = profile.points.filter(() => random() < 0.5);
      if (subset.length === 0) continue;
      const bridgeGaps = random() < 0.5;
      const p = planReads(profile, subset, { bridgeGaps }).length;
      const b = requestsLowerBound(profile, subset, { bridgeGaps });
      instances++;
      planned += p;
      bound += b;
      if (p / b > worst) {
        worst = p / b;
        worstCase = `${profile.id} [${subset.map((x) => x.id).join(",")}] bridgeGaps ${bridgeGaps}: ${p} vs ${b}`;
      }
    }
  }
  report({ bench: "planner-random-subsets-worst-vs-lower-bound", value: round(worst), unit: "ratio", goal: 1, better: "lower", note: `${instances} random point subsets of the built-in profiles (${planned} requests, bound ${bound})${worstCase ? `; worst: ${worstCase}` : ""}` });
}
