// What people take away from a statement, rendered from stored data (pure): the public notice (公示) in Chinese as
// CSV and as a printable HTML page for the notice board, with masked names (陈德伯 → 陈*伯, 李明 → 李*); a
// household's own statement, line by line; and the village's report (farm electricity spend of grain-plot meters,
// refunds, flagged lines, and what the village saves against the old rule under which it paid all farm electricity
// itself). Money is shown from integer fen with fenToYuan; energy from Wh with three decimals of kWh.

import { fenToYuan } from "../../protocols/units.js";
import type { StatementLine } from "./settle.js";

/** Keep the first and last character, mask the middle: 陈德伯 → 陈*伯, 欧阳明华 → 欧**华, 李明 → 李*, 李 → 李. */
export function maskName(name: string): string {
  const chars = [...name.trim()];
  if (chars.length <= 1) return chars.join("");
  if (chars.length === 2) return `${chars[0]}*`;
  return `${chars[0]}${"*".repeat(chars.length - 2)}${chars[chars.length - 1]}`;
}

export const whToKwh = (wh: number): string => `${Math.floor(wh / 1000)}.${String(wh % 1000).padStart(3, "0")}`;
export const milliMuToMu = (milliMu: number): string => `${Math.floor(milliMu / 1000)}.${String(milliMu % 1000).padStart(3, "0")}`;

export interface NoticeRow {
  readonly maskedName: string;
  readonly grainMilliMu: number;
  readonly energyWh: number;
  readonly eligibleWh: number;
  readonly refundFen: number;
}

export interface Notice {
  readonly villageName: string;
  readonly statementId: string;
  readonly seasonName: string;
  readonly fromDay: string;
  readonly toDay: string;
  readonly policyName: string;
  readonly policyVersion: number;
  readonly correctsStatementId?: string;
  readonly publishedAt?: string;
  readonly noticeUntil?: string;
  readonly rows: readonly NoticeRow[];
  readonly totalFen: number;
}

/** One row per household (its plots summed), in household order. */
export function noticeRows(lines: readonly { line: StatementLine; refundFen: number }[], nameOf: (householdId: string) => string | undefined): NoticeRow[] {
  const byHousehold = new Map<string, { grainMilliMu: number; energyWh: number; eligibleWh: number; refundFen: number }>();
  for (const { line, refundFen } of lines) {
    const row = byHousehold.get(line.householdId) ?? { grainMilliMu: 0, energyWh: 0, eligibleWh: 0, refundFen: 0 };
    row.grainMilliMu += line.grainMilliMu;
    row.energyWh += line.energyWh;
    row.eligibleWh += line.eligibleWh;
    row.refundFen += refundFen;
    byHousehold.set(line.householdId, row);
  }
  return [...byHousehold.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([householdId, r]) => ({ maskedName: maskName(nameOf(householdId) ?? householdId), ...r }));
}

const csvCell = (value: string): string => (/[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value);

export const NOTICE_CSV_HEADER = ["户主", "种粮面积(亩)", "用电量(千瓦时)", "补贴电量(千瓦时)", "补贴金额(元)"] as const;

/** RFC 4180 CSV with a UTF-8 BOM (so spreadsheet programs on Windows read the Chinese), CRLF line ends. */
export function noticeCsv(n: Notice): string {
  const rows = [
    ["村", n.villageName],
    ["公示", `${n.seasonName} ${n.fromDay} 至 ${n.toDay}`],
    ["补贴政策", `${n.policyName} 第${n.policyVersion}版`],
    ...(n.correctsStatementId === undefined ? [] : [["更正", `更正 ${n.correctsStatementId}`]]),
    [],
    [...NOTICE_CSV_HEADER],
    ...n.rows.map((r) => [r.maskedName, milliMuToMu(r.grainMilliMu), whToKwh(r.energyWh), whToKwh(r.eligibleWh), fenToYuan(r.refundFen)]),
    ["合计", milliMuToMu(n.rows.reduce((s, r) => s + r.grainMilliMu, 0)), whToKwh(n.rows.reduce((s, r) => s + r.energyWh, 0)), whToKwh(n.rows.reduce((s, r) => s + r.eligibleWh, 0)), fenToYuan(n.totalFen)],
  ];
  return `\uFEFF${rows.map((r) => r.map(csvCell).join(",")).join("\r\n")}\r\n`;
}

const escapeHtml = (s: string): string => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;").replaceAll("'", "&#39;");

/** A self-contained A4 page (no scripts, no external assets) for the notice board. */
export function noticeHtml(n: Notice): string {
  const e = escapeHtml;
  const body = n.rows
    .map((r) => `<tr><td>${e(r.maskedName)}</td><td>${milliMuToMu(r.grainMilliMu)}</td><td>${whToKwh(r.energyWh)}</td><td>${whToKwh(r.eligibleWh)}</td><td>${fenToYuan(r.refundFen)}</td></tr>`)
    .join("\n");
  return `<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>${e(n.villageName)} 种粮电费补贴公示</title>
<style>
@page { size: A4; margin: 15mm; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "SimSun", serif; font-size: 12pt; }
h1 { text-align: center; font-size: 18pt; }
table { width: 100%; border-collapse: collapse; }
th, td { border: 1px solid #000; padding: 3px 6px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tfoot td { font-weight: bold; }
tr { page-break-inside: avoid; }
</style></head>
<body>
<h1>${e(n.villageName)} 种粮电费补贴公示</h1>
<p>${e(n.seasonName)}：${e(n.fromDay)} 至 ${e(n.toDay)}。补贴政策：${e(n.policyName)}（第${n.policyVersion}版）。编号：${e(n.statementId)}${n.correctsStatementId === undefined ? "" : `，更正 ${e(n.correctsStatementId)}`}。</p>
${n.publishedAt === undefined ? "" : `<p>公示期：${e(n.publishedAt)} 至 ${e(n.noticeUntil ?? "")}。如有异议，请在公示期内向村委会提出。</p>`}
<table>
<thead><tr><th>户主</th><th>种粮面积（亩）</th><th>用电量（千瓦时）</th><th>补贴电量（千瓦时）</th><th>补贴金额（元）</th></tr></thead>
<tbody>
${body}
</tbody>
<tfoot><tr><td>合计</td><td>${milliMuToMu(n.rows.reduce((s, r) => s + r.grainMilliMu, 0))}</td><td>${whToKwh(n.rows.reduce((s, r) => s + r.energyWh, 0))}</td><td>${whToKwh(n.rows.reduce((s, r) => s + r.eligibleWh, 0))}</td><td>${fenToYuan(n.totalFen)}</td></tr></tfoot>
</table>
</body></html>
`;
}

export interface VillageReport {
  readonly statementId: string;
  readonly lines: number;
  readonly flaggedLines: number;
  readonly households: number;
  /** What the grain-plot meters were charged in the period. */
  readonly farmSpendFen: number;
  readonly refundFen: number;
  /** Under the old rule the village paid all farm electricity itself: saved = spend − refunds. */
  readonly villageSavesFen: number;
  readonly flags: Readonly<Record<string, number>>;
}

export function villageReport(statementId: string, lines: readonly { line: StatementLine; refundFen: number }[]): VillageReport {
  const flags: Record<string, number> = {};
  for (const { line } of lines) for (const f of line.flags) flags[f.code] = (flags[f.code] ?? 0) + 1;
  const farmSpendFen = lines.reduce((s, l) => s + l.line.chargedFen, 0);
  const refundFen = lines.reduce((s, l) => s + l.refundFen, 0);
  return {
    statementId,
    lines: lines.length,
    flaggedLines: lines.filter((l) => l.line.status === "flagged").length,
    households: new Set(lines.map((l) => l.line.householdId)).size,
    farmSpendFen,
    refundFen,
    villageSavesFen: farmSpendFen - refundFen,
    flags,
  };
}
