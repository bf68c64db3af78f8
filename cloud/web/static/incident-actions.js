// Which buttons an incident shows: the transitions cloud/alerts/incident-step.ts would accept from its state, so
// the command room never offers a step the server must refuse. Mirrored here because the browser cannot import
// TypeScript; test/browser/incident-actions.test.ts walks every class × state × action against incidentStep itself,
// so the two cannot drift apart silently. Pure.

/** Each action's target and the states it may be taken from (incident-step.ts ACTIONS). */
const ACTIONS = /** @type {const} */ ({
  acknowledge: ["new"],
  verify: ["new", "acknowledged"],
  confirm: ["new", "acknowledged", "verifying"],
  false_alarm: ["new", "acknowledged", "verifying"],
  dispatch: ["confirmed"],
  arrive: ["dispatched"],
});

const TECHNICAL_CLASSES = ["monitoring_gap", "sensor_fault", "low_battery", "calibration"];

/** The actions that name a person: the grid worker who verifies, the officer dispatched. */
export const NEEDS_ASSIGNEE = ["verify", "dispatch"];

/**
 * Dispositions that may close this incident now (incident-step.ts allowedDispositions).
 * @param {{ class: string, state: string }} incident
 * @returns {string[]}
 */
export function allowedDispositions(incident) {
  if (incident.class === "test") return ["test"];
  if (incident.state === "false_alarm") return ["false_alarm", "nuisance"];
  if (TECHNICAL_CLASSES.includes(incident.class)) return ["restored", "false_alarm", "nuisance"];
  if (incident.state === "confirmed" || incident.state === "dispatched" || incident.state === "on_scene") return ["fire", "false_alarm", "nuisance"];
  return ["false_alarm", "nuisance"];
}

/**
 * The actions to offer, in the order of the lifecycle; "resolve" last, whenever the incident is still open.
 * @param {{ class: string, state: string }} incident
 * @returns {string[]}
 */
export function nextActions(incident) {
  if (incident.state === "resolved") return [];
  const actions = [];
  for (const [action, from] of Object.entries(ACTIONS)) {
    if (!(/** @type {readonly string[]} */ (from).includes(incident.state))) continue;
    if (action === "dispatch" && incident.class !== "fire") continue;
    actions.push(action);
  }
  actions.push("resolve");
  return actions;
}
