// Turning a statement of account (GET /households/:id/statement) into what a farmer reads: the latest top-ups, the
// latest charges, and kWh per day summed over the household's meters. Pure (integer arithmetic on fen and Wh), so
// the vitest suite checks it directly.

import { sumFen } from "./money.js";

/**
 * @typedef {{ postingId: number, kind: string, atMs: number, amountFen: number, balanceAfterFen: number, memo: string, actor: string }} StatementLine
 * @typedef {{ meterId: string, source: string, days: readonly { day: string, energyWh: number }[] }} MeterEnergy
 */

/**
 * The newest `limit` lines of one kind, newest first.
 * @param {readonly StatementLine[]} lines
 * @param {string} kind
 * @param {number} limit
 */
export function latestOfKind(lines, kind, limit) {
  return lines
    .filter((l) => l.kind === kind)
    .sort((a, b) => b.atMs - a.atMs || b.postingId - a.postingId)
    .slice(0, limit);
}

/**
 * kWh per day over all meters, oldest day first (integer Wh per day).
 * @param {readonly MeterEnergy[]} energy
 * @returns {{ day: string, energyWh: number }[]}
 */
export function energyByDay(energy) {
  /** @type {Map<string, number[]>} */
  const days = new Map();
  for (const meter of energy) {
    for (const d of meter.days) {
      const list = days.get(d.day) ?? [];
      list.push(d.energyWh);
      days.set(d.day, list);
    }
  }
  return [...days.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([day, list]) => ({ day, energyWh: sumFen(list) }));
}

/**
 * What the household paid for electricity in the statement (a positive number of fen): the charge lines are debits.
 * @param {readonly StatementLine[]} lines
 */
export function chargedFen(lines) {
  return -sumFen(lines.filter((l) => l.kind === "charge").map((l) => l.amountFen));
}

/**
 * Low-credit stage as words and a tone for the page (DL/T 1490-2015's two stages of 请购电).
 * @param {0 | 1 | 2} stage
 * @param {number} balanceFen
 * @returns {{ tone: "ok" | "warn" | "danger", zh: string, en: string, short: string }}
 */
export function creditStage(stage, balanceFen) {
  if (balanceFen < 0) return { tone: "danger", zh: "已透支，请尽快购电", en: "Overdrawn — please top up now", short: "已透支" };
  if (stage === 2) return { tone: "danger", zh: "余额严重不足，即将停电，请购电", en: "Very low credit — power will be cut soon", short: "即将停电" };
  if (stage === 1) return { tone: "warn", zh: "余额不足，请购电", en: "Low credit — please top up", short: "请购电" };
  return { tone: "ok", zh: "余额充足", en: "Credit OK", short: "充足" };
}
