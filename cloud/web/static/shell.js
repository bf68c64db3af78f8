// The frame every console page shares: who is logged in (GET /auth/me, or back to the login page), a header with
// their name, the pages their roles may open and a logout button, and one way to show the API's refusal.

import { api, ApiError, me } from "./api.js";
import { bilingual, byId, h, replaceChildren } from "./dom.js";
import { label, ROLE } from "./labels.js";

/** Which page each role works on, in the order shown. */
const PAGES = [
  { href: "account.html", zh: "我的账户", en: "My account", roles: ["farmer"] },
  { href: "village.html", zh: "本村", en: "Village", roles: ["village-officer", "village-approver"] },
  { href: "command.html", zh: "指挥中心", en: "Command room", roles: ["police-dispatcher"] },
];

/** @param {{ roles: readonly string[] }} principal */
export function pagesFor(principal) {
  const admin = principal.roles.includes("admin");
  return PAGES.filter((p) => admin || p.roles.some((r) => principal.roles.includes(r)));
}

/** The page a principal lands on after logging in. @param {{ roles: readonly string[] }} principal */
export function homeOf(principal) {
  return pagesFor(principal)[0]?.href ?? "index.html";
}

/**
 * The logged-in principal, with the header drawn; redirects to the login page (and never resolves) when nobody is.
 * @returns {Promise<any>}
 */
export async function startPage() {
  const principal = await me();
  if (principal === undefined) {
    location.replace("index.html");
    return new Promise(() => undefined);
  }
  const header = byId("top");
  const roles = principal.roles.map((/** @type {string} */ r) => label(ROLE, r)[0]).join("、");
  const nav = h("nav", { "aria-label": "pages" }, ...pagesFor(principal).map((p) => h("a", { href: p.href, "aria-current": location.pathname.endsWith(p.href) ? "page" : undefined }, bilingual(p.zh, p.en))));
  const logout = h("button", { type: "button", class: "quiet", id: "logout", onclick: () => void logoutNow() }, bilingual("退出", "Log out"));
  replaceChildren(header, h("div", { class: "who" }, h("strong", { id: "who-name" }, principal.name), h("span", { class: "en" }, ` ${roles}`)), nav, logout);
  return principal;
}

async function logoutNow() {
  try {
    await api("POST", "/auth/logout");
  } finally {
    location.replace("index.html");
  }
}

/**
 * Show an error where the page's data would be: the API's own status, code and detail.
 * @param {HTMLElement} el
 * @param {unknown} error
 */
export function showError(el, error) {
  const status = error instanceof ApiError ? error.status : 0;
  const title =
    status === 403 || status === 404
      ? bilingual("无权查看或不存在", "Not yours, or not found")
      : status === 400 || status === 409 || status === 422
        ? bilingual("未执行", "Refused — nothing was changed")
        : bilingual("出错了", "Something went wrong");
  const detail = error instanceof ApiError ? `${error.status} ${error.code}: ${error.detail}` : String(error);
  replaceChildren(el, h("div", { class: "problem", role: "alert" }, h("strong", null, title), h("p", { class: "detail" }, detail)));
}
