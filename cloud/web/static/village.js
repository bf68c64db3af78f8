// The village officer's page: every household of the village with its balance, low-credit ones first, and a cash
// top-up recorded in two steps — review (amount parsed to integer fen, receipt number) then confirm — so a typo is
// seen before it becomes a posting. The confirmation carries one idempotency key: pressing "confirm" twice, or
// retrying after a dropped answer, posts the receipt once.

import { api, ApiError } from "./api.js";
import { bilingual, byId, h, replaceChildren } from "./dom.js";
import { formatFen, parseYuanToFen } from "./money.js";
import { showError, startPage } from "./shell.js";
import { creditStage } from "./statement-view.js";
import { lowCreditFirst, newIdempotencyKey } from "./village-view.js";

const list = byId("households");
const form = /** @type {HTMLFormElement} */ (byId("top-up-form"));
const householdSelect = /** @type {HTMLSelectElement} */ (byId("top-up-household"));
const confirmBox = byId("top-up-confirm");
const result = byId("top-up-result");
const picker = /** @type {HTMLSelectElement} */ (byId("village-picker"));

/** @type {Map<string, { householdId: string, name: string, balanceFen: number, stage: number }>} */
let households = new Map();
let villageId = "";

/** GET /villages/:id/households, with each balance (from the list, or one GET per household when it has none). */
async function fetchHouseholds() {
  const answer = await api("GET", `/villages/${encodeURIComponent(villageId)}/households`);
  const rows = Array.isArray(answer) ? answer : answer.households;
  return Promise.all(
    rows.map(async (/** @type {any} */ row) => {
      let balanceFen = row.balanceFen;
      let stage = row.lowCredit?.stage ?? row.stage;
      if (balanceFen === undefined || stage === undefined) {
        const balance = await api("GET", `/households/${encodeURIComponent(row.householdId)}/balance`);
        balanceFen = balance.balanceFen;
        stage = balance.lowCredit.stage;
      }
      return { householdId: String(row.householdId), name: String(row.name ?? row.householdId), balanceFen: Number(balanceFen), stage: Number(stage) };
    }),
  );
}

async function refresh() {
  list.setAttribute("aria-busy", "true");
  try {
    const rows = lowCreditFirst(await fetchHouseholds());
    households = new Map(rows.map((r) => [r.householdId, r]));
    const chosen = householdSelect.value;
    replaceChildren(householdSelect, ...rows.map((r) => h("option", { value: r.householdId, selected: r.householdId === chosen }, `${r.name} (${r.householdId})`)));
    replaceChildren(
      list,
      h(
        "table",
        { id: "households-table" },
        h("thead", null, h("tr", null, h("th", null, bilingual("农户", "Household")), h("th", { class: "num" }, bilingual("余额", "Balance")), h("th", null, bilingual("状态", "Credit")), h("th", null, ""))),
        h(
          "tbody",
          null,
          ...rows.map((r) => {
            const stage = creditStage(/** @type {0 | 1 | 2} */ (r.stage), r.balanceFen);
            return h(
              "tr",
              { "data-household": r.householdId, class: stage.tone },
              h("td", null, h("a", { href: `account.html?household=${encodeURIComponent(r.householdId)}` }, r.name), h("span", { class: "en" }, ` ${r.householdId}`)),
              h("td", { class: "num balance" }, formatFen(r.balanceFen)),
              h("td", null, h("span", { class: `stage ${stage.tone}`, title: `${stage.zh} ${stage.en}` }, stage.short)),
              h("td", null, h("button", { type: "button", class: "quiet", title: "Top up", onclick: () => pick(r.householdId) }, "充值")),
            );
          }),
        ),
      ),
    );
  } catch (error) {
    showError(list, error);
  } finally {
    list.setAttribute("aria-busy", "false");
  }
}

/** @param {string} householdId */
function pick(householdId) {
  householdSelect.value = householdId;
  byId("top-up-amount").focus();
}

/** @param {{ householdId: string, amountFen: number, receiptId: string }} request */
function askToConfirm(request) {
  const household = households.get(request.householdId);
  const idempotencyKey = newIdempotencyKey(crypto);
  const confirm = h("button", { type: "button", class: "primary", id: "top-up-confirm-button" }, bilingual("确认充值", "Confirm"));
  const cancel = h("button", { type: "button", class: "quiet", onclick: () => void (confirmBox.hidden = true) }, bilingual("取消", "Cancel"));
  confirm.addEventListener("click", () => void submit(request, idempotencyKey, confirm));
  replaceChildren(
    confirmBox,
    h("p", null, `为 ${household?.name ?? request.householdId}（${request.householdId}）充值 `, h("strong", { id: "top-up-amount-check" }, formatFen(request.amountFen)), `，收据号 ${request.receiptId}？`),
    h("p", { class: "en" }, `Top up ${request.householdId} by ${formatFen(request.amountFen)}, receipt ${request.receiptId}?`),
    h("div", { class: "buttons" }, confirm, cancel),
  );
  confirmBox.hidden = false;
  confirm.focus();
}

/**
 * @param {{ householdId: string, amountFen: number, receiptId: string }} request
 * @param {string} idempotencyKey
 * @param {HTMLElement} button
 */
async function submit(request, idempotencyKey, button) {
  button.setAttribute("disabled", "");
  try {
    const posted = await api("POST", `/households/${encodeURIComponent(request.householdId)}/top-ups`, { amountFen: request.amountFen, receiptId: request.receiptId, idempotencyKey });
    confirmBox.hidden = true;
    form.reset();
    replaceChildren(
      result,
      h(
        "div",
        { class: "done", id: "top-up-done", "data-posting": posted.postingId },
        h("strong", null, posted.duplicate ? "此收据已登记过，未重复入账" : "充值成功"),
        h("span", { class: "en" }, posted.duplicate ? " Already recorded — not posted twice" : " Top-up recorded"),
        h("p", null, `${request.householdId} 新余额 new balance `, h("strong", { id: "top-up-new-balance" }, formatFen(posted.balanceFen)), ` · 记账号 posting #${posted.postingId}`),
      ),
    );
    await refresh();
  } catch (error) {
    button.removeAttribute("disabled");
    showError(result, error);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  replaceChildren(result);
  const data = new FormData(form);
  const amountFen = parseYuanToFen(String(data.get("amount") ?? ""));
  const receiptId = String(data.get("receiptId") ?? "").trim();
  if (amountFen === undefined || amountFen <= 0) {
    showError(result, new ApiError(400, "WEB_AMOUNT_INVALID", "金额应为正数，最多两位小数 / the amount is yuan with at most two decimals, e.g. 50 or 50.05"));
    return;
  }
  askToConfirm({ householdId: householdSelect.value, amountFen, receiptId });
});

picker.addEventListener("change", () => {
  villageId = picker.value;
  void refresh();
});

async function start() {
  const principal = await startPage();
  // An approver reads balances but records no money (the API would refuse with 403): no form to mislead them.
  if (!principal.roles.includes("village-officer") && !principal.roles.includes("admin")) byId("top-up-card").hidden = true;
  /** @type {string[]} */
  let villages = principal.villageIds ?? [];
  // An admin has no village scope of their own: every village is theirs.
  if (villages.length === 0 && principal.roles.includes("admin")) villages = (await api("GET", "/villages")).map((/** @type {{ villageId: string }} */ v) => v.villageId);
  if (villages.length === 0) {
    showError(list, new ApiError(403, "WEB_NO_VILLAGE", "您的账号没有负责的村 / your account has no village"));
    return;
  }
  villageId = villages[0];
  if (villages.length > 1) {
    replaceChildren(picker, ...villages.map((/** @type {string} */ v) => h("option", { value: v }, v)));
    byId("village-picker-card").hidden = false;
  }
  await refresh();
}

void start();
