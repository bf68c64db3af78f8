// The console's one door to the cloud's JSON API (same origin, session cookie). Every refusal comes back as an
// ApiError carrying the problem+json body's status, stable code and detail (cloud/api/problem.ts), so a page can
// show the server's own reason — "household h-2 is not yours" — instead of guessing.

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request never reached the server
   * @param {string} code the problem's stable code (API_FORBIDDEN, PREPAID_TOP_UP_REFUSED, …)
   * @param {string} detail
   */
  constructor(status, code, detail) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/**
 * @param {"GET" | "POST" | "PUT" | "PATCH" | "DELETE"} method
 * @param {string} path absolute path on this origin, e.g. "/auth/me"
 * @param {unknown} [body] sent as JSON
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json, application/problem+json" };
  /** @type {RequestInit} */
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, "NETWORK_UNAVAILABLE", "无法连接服务器 / cannot reach the server");
  }
  const type = res.headers.get("content-type") ?? "";
  const json = type.includes("json") ? await res.json().catch(() => undefined) : undefined;
  if (!res.ok) {
    const problem = json !== null && typeof json === "object" ? json : {};
    throw new ApiError(res.status, String(problem.code ?? `HTTP_${res.status}`), String(problem.detail ?? problem.title ?? res.statusText));
  }
  return json;
}

/** The logged-in principal, or undefined when nobody is (401). @returns {Promise<any>} */
export async function me() {
  try {
    const answer = await api("GET", "/auth/me");
    return answer?.principal ?? answer?.user ?? answer;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return undefined;
    throw error;
  }
}
