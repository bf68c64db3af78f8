// The farmer's "my account" page (also opened by an officer from the village page with ?household=ID): balance to
// the fen with the low-credit stage, the latest top-ups and charges, and kWh per day for the last 30 days. A
// household the caller may not see shows the API's own refusal.

import { api } from "./api.js";
import { bilingual, byId, h, replaceChildren, s } from "./dom.js";
import { label, POSTING_KIND, shanghaiTime } from "./labels.js";
import { formatFen, formatKwh, formatSignedFen } from "./money.js";
import { showError, startPage } from "./shell.js";
import { chargedFen, creditStage, energyByDay, latestOfKind } from "./statement-view.js";

const DAY_MS = 86_400_000;
const root = byId("account");

/** @param {string} zh @param {string} en @param {readonly any[]} lines */
function linesTable(zh, en, lines) {
  const rows = lines.map((l) =>
    h(
      "tr",
      { "data-posting": l.postingId },
      h("td", { class: "time" }, shanghaiTime(l.atMs).slice(5)),
      h("td", null, label(POSTING_KIND, l.kind)[0]),
      h("td", { class: "num" }, formatSignedFen(l.amountFen)),
      h("td", { class: "num" }, formatFen(l.balanceAfterFen)),
    ),
  );
  return h(
    "section",
    { class: "card" },
    h("h2", null, bilingual(zh, en)),
    rows.length === 0
      ? h("p", { class: "empty" }, bilingual("暂无记录", "Nothing yet"))
      : h(
          "table",
          null,
          h("thead", null, h("tr", null, h("th", null, bilingual("时间", "Time")), h("th", null, bilingual("类型", "Kind")), h("th", { class: "num" }, bilingual("金额", "Amount")), h("th", { class: "num" }, bilingual("余额", "Balance")))),
          h("tbody", null, ...rows),
        ),
  );
}

/** kWh per day as bars (SVG) and a table with the exact numbers. @param {{ day: string, energyWh: number }[]} days */
function energyCard(days) {
  const title = h("h2", null, bilingual("每日用电", "kWh per day"));
  if (days.length === 0) return h("section", { class: "card", id: "energy" }, title, h("p", { class: "empty" }, bilingual("暂无用电记录", "No usage recorded")));
  const maxWh = Math.max(1, ...days.map((d) => d.energyWh));
  const width = 300;
  const height = 100;
  // At least two weeks of slots: one day of use is a bar, not a wall.
  const bar = width / Math.max(days.length, 14);
  const chart = s(
    "svg",
    { viewBox: `0 0 ${width} ${height + 14}`, class: "bars", role: "img", "aria-label": "kWh per day" },
    ...days.map((d, i) => {
      const barHeight = (d.energyWh / maxWh) * height;
      return s("rect", { x: i * bar + bar * 0.15, y: height - barHeight, width: bar * 0.7, height: barHeight, class: "bar" }, s("title", {}, `${d.day}: ${formatKwh(d.energyWh)}`));
    }),
    s("text", { x: 0, y: height + 12, class: "axis" }, days[0]?.day.slice(5) ?? ""),
    s("text", { x: width, y: height + 12, class: "axis end" }, days.at(-1)?.day.slice(5) ?? ""),
  );
  const rows = [...days].reverse().slice(0, 14).map((d) => h("tr", null, h("td", null, d.day), h("td", { class: "num" }, formatKwh(d.energyWh))));
  return h("section", { class: "card", id: "energy" }, title, chart, h("table", null, h("tbody", null, ...rows)));
}

async function load() {
  const principal = await startPage();
  const wanted = new URLSearchParams(location.search).get("household") ?? principal.householdId;
  if (wanted === undefined || wanted === null) {
    replaceChildren(root, h("p", { class: "empty" }, bilingual("您的账号没有绑定农户", "Your account has no household")));
    return;
  }
  const householdId = String(wanted);
  const toMs = Date.now() + DAY_MS;
  const fromMs = toMs - 31 * DAY_MS;
  try {
    const path = `/households/${encodeURIComponent(householdId)}`;
    const [balance, statement] = await Promise.all([api("GET", `${path}/balance`), api("GET", `${path}/statement?fromMs=${fromMs}&toMs=${toMs}`)]);
    const stage = creditStage(balance.lowCredit.stage, balance.balanceFen);
    replaceChildren(
      root,
      h(
        "section",
        { class: `card balance ${stage.tone}`, id: "balance-card", "data-household": householdId },
        h("h2", null, bilingual("当前余额", "Balance"), h("span", { class: "en" }, ` · ${householdId}`)),
        h("p", { class: "amount", id: "balance" }, formatFen(balance.balanceFen)),
        h("p", { class: `stage ${stage.tone}`, id: "credit-stage", "data-stage": balance.lowCredit.stage }, bilingual(stage.zh, stage.en)),
        h(
          "p",
          { class: "en" },
          `请购电提醒 warnings at ${formatFen(balance.lowCredit.stage1Fen)} / ${formatFen(balance.lowCredit.stage2Fen)}`,
          balance.overdraftFen > 0 ? ` · 可透支 overdraft ${formatFen(balance.overdraftFen)}` : "",
        ),
        h("p", { class: "en" }, `近30天电费 paid for electricity, 30 days: ${formatFen(chargedFen(statement.lines))}`),
      ),
      linesTable("最近充值", "Latest top-ups", latestOfKind(statement.lines, "top-up", 10)),
      linesTable("最近扣费", "Latest charges", latestOfKind(statement.lines, "charge", 10)),
      energyCard(energyByDay(statement.energy)),
    );
  } catch (error) {
    showError(root, error);
  } finally {
    root.setAttribute("aria-busy", "false");
  }
}

void load();
