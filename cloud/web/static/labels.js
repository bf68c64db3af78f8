// What the console calls things: Chinese first (the users are villagers, officers and police), English second.
// Tables keyed by the API's own codes (cloud/alerts/types.ts, cloud/ledger posting kinds), so a new code shows as
// itself rather than as a blank.

/** @typedef {readonly [zh: string, en: string]} Label */

/** @type {Readonly<Record<string, Label>>} */
export const INCIDENT_CLASS = {
  fire: ["火情", "Fire"],
  monitoring_gap: ["监测中断", "Monitoring gap"],
  sensor_fault: ["传感器故障", "Sensor fault"],
  low_battery: ["电量低", "Low battery"],
  calibration: ["校准中", "Calibration"],
  test: ["测试", "Test"],
};

/** @type {Readonly<Record<string, Label>>} */
export const INCIDENT_STATE = {
  new: ["新警情", "New"],
  acknowledged: ["已接警", "Acknowledged"],
  verifying: ["核实中", "Verifying"],
  confirmed: ["已确认", "Confirmed"],
  false_alarm: ["误报", "False alarm"],
  dispatched: ["已出警", "Dispatched"],
  on_scene: ["已到场", "On scene"],
  resolved: ["已结案", "Resolved"],
};

/** @type {Readonly<Record<string, Label>>} */
export const CERTAINTY = {
  Observed: ["已证实", "Observed"],
  Likely: ["很可能", "Likely"],
  Possible: ["可能", "Possible"],
  Unlikely: ["不太可能", "Unlikely"],
};

/** @type {Readonly<Record<string, Label>>} */
export const ACTION = {
  acknowledge: ["接警", "Acknowledge"],
  verify: ["派网格员核实", "Assign grid worker"],
  confirm: ["确认火情", "Confirm"],
  false_alarm: ["误报", "False alarm"],
  dispatch: ["出警", "Dispatch"],
  arrive: ["到达现场", "On scene"],
  resolve: ["结案", "Resolve"],
};

/** @type {Readonly<Record<string, Label>>} */
export const DISPOSITION = {
  fire: ["火情", "Fire"],
  false_alarm: ["误报", "False alarm"],
  test: ["测试", "Test"],
  nuisance: ["干扰", "Nuisance"],
  restored: ["已恢复", "Restored"],
};

/** @type {Readonly<Record<string, Label>>} */
export const POSTING_KIND = {
  "top-up": ["充值", "Top-up"],
  charge: ["电费", "Charge"],
  refund: ["退款", "Refund"],
  correction: ["更正", "Correction"],
  subsidy: ["补贴", "Subsidy"],
};

/** @type {Readonly<Record<string, Label>>} */
export const ROLE = {
  farmer: ["农户", "Farmer"],
  "village-officer": ["村干部", "Village officer"],
  "village-approver": ["村审核人", "Village approver"],
  "police-dispatcher": ["指挥中心", "Police dispatcher"],
  admin: ["管理员", "Admin"],
};

/**
 * @param {Readonly<Record<string, Label>>} table
 * @param {string} code
 * @returns {Label}
 */
export function label(table, code) {
  return table[code] ?? [code, code];
}

/** "2026-11-23 14:05" in Asia/Shanghai (UTC+8, no daylight saving), whatever the phone's zone. @param {number} atMs */
export function shanghaiTime(atMs) {
  return new Date(atMs + 8 * 3_600_000).toISOString().slice(0, 16).replace("T", " ");
}
