// What people take away (cloud/subsidy/notice.ts): masked names, the public notice as CSV and as a printable page,
// and the village's report.

import { describe, expect, it } from "vitest";
import { maskName, noticeCsv, noticeHtml, noticeRows, villageReport, type Notice } from "../../cloud/subsidy/notice.js";
import type { StatementLine } from "../../cloud/subsidy/settle.js";

const line = (householdId: string, plotId: string, refundFen: number, extra: Partial<StatementLine> = {}): { line: StatementLine; refundFen: number } => ({
  refundFen,
  line: {
    lineNo: 1, householdId, plotId, meters: [], crops: ["rice"], grainMilliMu: 2_500, energyWh: 150_000, chargedFen: 7_925, eligibleWh: 150_000, eligibleChargedFen: 7_925,
    capWh: 250_000, refundableWh: 150_000, nightWh: 0, outsideSeasonWh: 0, nonGrainWh: 0, proposedRefundFen: refundFen, maxRefundFen: refundFen, refundFen, status: "payable", flags: [], ...extra,
  },
});

const names: Record<string, string> = { "hh-chen": "陈德伯", "hh-li": "李明", "hh-oy": "欧阳明华", "hh-x": '<b>"A,B"</b>' };
const notice = (rows: ReturnType<typeof noticeRows>): Notice => ({
  villageName: "红庙村", statementId: "st-1", seasonName: "2026年早稻季", fromDay: "2026-05-10", toDay: "2026-05-31", policyName: "种粮电费补贴", policyVersion: 2, rows,
  totalFen: rows.reduce((s, r) => s + r.refundFen, 0), publishedAt: "2026-06-05", noticeUntil: "2026-06-12",
});

describe("maskName", () => {
  it("keeps the first and last character and masks the middle", () => {
    expect([maskName("陈德伯"), maskName("李明"), maskName("欧阳明华"), maskName("王")]).toEqual(["陈*伯", "李*", "欧**华", "王"]);
  });
});

describe("the public notice", () => {
  const rows = noticeRows([line("hh-li", "p1", 100), line("hh-chen", "p2", 3_963), line("hh-chen", "p3", 37)], (h) => names[h]);

  it("sums a household's plots into one row with its masked name, in household order", () => {
    expect(rows.map((r) => [r.maskedName, r.grainMilliMu, r.refundFen])).toEqual([
      ["陈*伯", 5_000, 4_000],
      ["李*", 2_500, 100],
    ]);
  });

  it("is a CSV with a BOM, the village, the period, the policy version, one row per household and the total", () => {
    const csv = noticeCsv(notice(rows));
    expect(csv.startsWith("\uFEFF村,红庙村\r\n")).toBe(true);
    expect(csv).toContain("补贴政策,种粮电费补贴 第2版\r\n");
    expect(csv).toContain("陈*伯,5.000,300.000,300.000,40.00\r\n");
    expect(csv.endsWith("合计,7.500,450.000,450.000,41.00\r\n")).toBe(true);
  });

  it("quotes a CSV cell with a comma or a quote, and escapes HTML in the printable page", () => {
    const odd = noticeRows([line("hh-x", "p", 1)], (h) => names[h]);
    expect(noticeCsv(notice(odd))).toContain("\r\n<**********>,2.500,");
    expect(noticeCsv({ ...notice(odd), villageName: 'A,"B"' })).toContain('村,"A,""B"""');
    const html = noticeHtml({ ...notice(odd), villageName: "<script>x</script>" });
    expect(html).not.toContain("<script>");
    expect(html).toContain("&lt;script&gt;");
  });

  it("is a printable A4 page with the table and the notice period", () => {
    const html = noticeHtml(notice(rows));
    expect(html).toContain("@page { size: A4");
    expect(html).toContain("<tr><td>陈*伯</td><td>5.000</td><td>300.000</td><td>300.000</td><td>40.00</td></tr>");
    expect(html).toContain("公示期：2026-06-05 至 2026-06-12");
  });
});

describe("the village report", () => {
  it("shows spend, refunds, flagged lines and what the village saves against paying all farm electricity", () => {
    const report = villageReport("st-1", [line("hh-chen", "p1", 3_963), line("hh-li", "p2", 0, { status: "flagged", chargedFen: 9_509, flags: [{ code: "above-cap", detail: "" }] })]);
    expect(report).toEqual({ statementId: "st-1", lines: 2, flaggedLines: 1, households: 2, farmSpendFen: 17_434, refundFen: 3_963, villageSavesFen: 13_471, flags: { "above-cap": 1 } });
  });
});
