// HTTP errors as RFC 9457 problem details (application/problem+json). Route handlers throw an HttpProblem; the
// app's error handler (app.ts) renders it, and maps the domains' own AgriErrors and fastify's errors to one with
// problemFromError. Anything not known here is a 500 whose body says nothing of the cause (no message, no stack):
// the cause goes to the log, with the request id the caller can quote.

import { ZodError } from "zod";
import { AgriError } from "../../protocols/errors.js";
import { SUBSIDY_HTTP_STATUS } from "../subsidy/errors.js";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export interface ProblemBody {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  /** The stable error code (README error table). */
  readonly code: string;
  /** For 400: each invalid field, by path. */
  readonly errors?: readonly { readonly path: string; readonly message: string }[];
}

const TITLES: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export class HttpProblem extends AgriError {
  constructor(
    readonly status: number,
    code: string,
    detail: string,
    readonly errors?: readonly { readonly path: string; readonly message: string }[],
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(code, status >= 500 || status === 429, detail);
  }

  body(): ProblemBody {
    return {
      type: `https://agri-edge.invalid/problems/${this.code.toLowerCase().replaceAll("_", "-")}`,
      title: TITLES[this.status] ?? "Error",
      status: this.status,
      detail: this.message,
      code: this.code,
      ...(this.errors === undefined ? {} : { errors: this.errors }),
    };
  }
}

export const unauthorized = (detail = "log in first"): HttpProblem => new HttpProblem(401, "API_UNAUTHORIZED", detail);
export const forbidden = (detail = "outside your role or scope"): HttpProblem => new HttpProblem(403, "API_FORBIDDEN", detail);
export const notFound = (what: string): HttpProblem => new HttpProblem(404, "API_NOT_FOUND", `no ${what}`);
export const conflict = (detail: string, code = "API_CONFLICT"): HttpProblem => new HttpProblem(409, code, detail);

/**
 * The HTTP status of each domain error code the app's handler may see escaping a route. A route that knows better
 * (cloud/api/routes/domain-errors.ts) converts its errors itself; this table is the net under every plugin.
 */
export const STATUS_BY_ERROR_CODE: Readonly<Record<string, number>> = {
  REGISTRY_INVALID_INPUT: 400,
  REGISTRY_UNKNOWN_ENTITY: 404,
  REGISTRY_ALREADY_EXISTS: 409,
  LEDGER_BAD_ARGUMENT: 400,
  LEDGER_INVALID_ENTRY: 400,
  LEDGER_UNBALANCED: 422,
  LEDGER_NON_INTEGER_AMOUNT: 422,
  LEDGER_TOO_FEW_LINES: 422,
  LEDGER_IDEMPOTENCY_CONFLICT: 409,
  LEDGER_UNKNOWN_ACCOUNT: 404,
  LEDGER_ACCOUNT_CONFLICT: 409,
  LEDGER_CHARGE_STATE_CONFLICT: 409,
  LEDGER_APPEND_ONLY: 409,
  PREPAID_UNKNOWN_HOUSEHOLD: 404,
  PREPAID_TOP_UP_REFUSED: 422,
  PAYMENT_BAD_SIGNATURE: 401,
  PAYMENT_STALE_CALLBACK: 401,
  PAYMENT_MALFORMED_CALLBACK: 400,
  PAYMENT_UNKNOWN_PROVIDER: 404,
  PAYMENT_UNKNOWN_ORDER: 404,
  PAYMENT_OVER_CAP: 422,
  PAYMENT_AMOUNT_MISMATCH: 422,
  PAYMENT_ORDER_ALREADY_PAID: 409,
  AUTH_INVALID_INPUT: 400,
  AUTH_WEAK_PASSWORD: 400,
  AUTH_ALREADY_EXISTS: 409,
  AUTH_UNKNOWN_ENTITY: 404,
  AUTH_LAST_ADMIN: 409,
  AUDIT_APPEND_ONLY: 409,
  ...SUBSIDY_HTTP_STATUS,
};

/** fastify's own refusals (content-type parser, body limit, routing), by their FST_ code. */
const FASTIFY_PROBLEMS: Readonly<Record<string, { status: number; code: string; detail: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: "API_BODY_TOO_LARGE", detail: "the request body is larger than this route accepts" },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: "API_UNSUPPORTED_MEDIA_TYPE", detail: "send the body as application/json" },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: "API_MALFORMED_JSON", detail: "the request body is not valid JSON" },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: "API_MALFORMED_JSON", detail: "the request says application/json but has no body" },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: "API_BAD_CONTENT_LENGTH", detail: "the Content-Length does not match the body" },
  FST_ERR_CTP_INVALID_TYPE: { status: 400, code: "API_BAD_CONTENT_TYPE", detail: "the Content-Type header is malformed" },
  FST_ERR_CTP_BODY_TOO_LARGE_DECOMPRESSED: { status: 413, code: "API_BODY_TOO_LARGE", detail: "the request body is larger than this route accepts" },
};

export interface ClassifiedError {
  readonly problem: HttpProblem;
  /** True when the caller sees a generic 500 and the cause must be logged as an error. */
  readonly internal: boolean;
}

const INTERNAL = (): HttpProblem => new HttpProblem(500, "API_INTERNAL_ERROR", "the server failed to answer this request; the request id is in the log");

/** Any thrown value as the problem the caller sees. */
export function problemFromError(error: unknown): ClassifiedError {
  if (error instanceof HttpProblem) return { problem: error, internal: error.status >= 500 };
  if (error instanceof ZodError) {
    const errors = error.issues.map((issue) => ({ path: issue.path.map(String).join(".") || "(root)", message: issue.message }));
    return { problem: new HttpProblem(400, "API_INVALID_INPUT", `invalid input: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, errors), internal: false };
  }
  if (error instanceof AgriError) {
    const own = "status" in error && typeof error.status === "number" ? error.status : undefined;
    const status = STATUS_BY_ERROR_CODE[error.code] ?? own;
    if (status !== undefined && status >= 400 && status < 500) return { problem: new HttpProblem(status, error.code, error.message), internal: false };
    return { problem: INTERNAL(), internal: true };
  }
  if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
    const known = FASTIFY_PROBLEMS[error.code];
    if (known !== undefined) return { problem: new HttpProblem(known.status, known.code, known.detail), internal: false };
    // Another fastify refusal of the request itself (4xx): its status, a generic detail.
    const status = "statusCode" in error && typeof error.statusCode === "number" ? error.statusCode : undefined;
    if (error.code.startsWith("FST_") && status !== undefined && status >= 400 && status < 500) {
      return { problem: new HttpProblem(status, `API_${error.code.slice("FST_ERR_".length)}`, "the request was refused before reaching its handler"), internal: false };
    }
  }
  return { problem: INTERNAL(), internal: true };
}
