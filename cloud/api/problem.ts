// HTTP errors as RFC 9457 problem details (application/problem+json). Route handlers throw an HttpProblem; the
// app's error handler (app.ts) renders it, and maps the domains' own AgriErrors and fastify's errors to one.

import { AgriError } from "../../protocols/errors.js";

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
