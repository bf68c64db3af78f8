// The login page: POST /auth/login (the answer sets the session cookie), then straight on to the page the user's
// roles work on. Someone already logged in is sent on at once.

import { api, ApiError, me } from "./api.js";
import { byId } from "./dom.js";
import { homeOf } from "./shell.js";

const form = /** @type {HTMLFormElement} */ (byId("login-form"));
const message = byId("login-message");

/** @param {unknown} error */
function reason(error) {
  if (!(error instanceof ApiError)) return String(error);
  if (error.status === 401) return "账号或密码错误 / wrong user id or password";
  if (error.status === 429) return `尝试太多，请稍后再试 / too many attempts: ${error.detail}`;
  return `${error.status} ${error.code}: ${error.detail}`;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(form);
  message.textContent = "登录中… / logging in…";
  message.className = "message";
  void (async () => {
    try {
      await api("POST", "/auth/login", { userId: String(data.get("userId") ?? "").trim(), password: String(data.get("password") ?? "") });
      // Asked again rather than taken from the answer: this also proves the browser kept the session cookie.
      const principal = await me();
      if (principal === undefined) throw new ApiError(401, "API_UNAUTHORIZED", "the session cookie was not kept");
      location.assign(homeOf(principal));
    } catch (error) {
      message.textContent = reason(error);
      message.className = "message error";
    }
  })();
});

void me()
  .then((principal) => {
    if (principal !== undefined) location.replace(homeOf(principal));
  })
  .catch(() => undefined);
