// Test and bench helpers for the alerts API: a minimal fastify app around alertsRoutes (a test header names the
// principal, HttpProblems render as problem+json — what app.ts does for real), and an SSE client over a real socket
// that parses frames as EventSource would and can reconnect with Last-Event-ID.

import { request as httpRequest, type ClientRequest } from "node:http";
import Fastify, { type FastifyInstance } from "fastify";
import { alertsRoutes } from "../../cloud/alerts/routes.js";
import type { AlertService } from "../../cloud/alerts/service.js";
import { HttpProblem } from "../../cloud/api/problem.js";
import type { Principal } from "../../cloud/auth/principal.js";

export const TEST_USER_HEADER = "x-test-user";

export const TEST_PRINCIPALS: Readonly<Record<string, Principal>> = {
  admin: { userId: "admin-1", name: "Admin", roles: ["admin"], villageIds: [], jurisdictionIds: [] },
  mogan: { userId: "dispatcher-wang", name: "Wang", roles: ["police-dispatcher"], villageIds: [], jurisdictionIds: ["mogan"] },
  anji: { userId: "dispatcher-li", name: "Li", roles: ["police-dispatcher"], villageIds: [], jurisdictionIds: ["anji"] },
  farmer: { userId: "farmer-zhao", name: "Zhao", roles: ["farmer"], villageIds: [], householdId: "hh-zhao", jurisdictionIds: [] },
};

/** Users whose credential no longer authenticates (logged out, disabled): request.reauthenticate answers undefined. */
export const REVOKED_USERS = new Set<string>();
/** Users whose re-authentication never answers (a database that stopped answering without closing connections). */
export const HANGING_USERS = new Set<string>();

export async function startAlertsApp(alerts: AlertService): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ logger: false });
  app.decorateRequest("principal", undefined);
  app.decorateRequest("reauthenticate", undefined);
  app.addHook("onRequest", (request, _reply, done) => {
    const who = request.headers[TEST_USER_HEADER];
    request.principal = typeof who === "string" ? TEST_PRINCIPALS[who] : undefined;
    if (typeof who === "string") {
      request.reauthenticate = () => (HANGING_USERS.has(who) ? new Promise(() => undefined) : Promise.resolve(REVOKED_USERS.has(who) ? undefined : TEST_PRINCIPALS[who]));
    }
    done();
  });
  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof HttpProblem) return reply.code(error.status).type("application/problem+json").send(error.body());
    return reply.code(500).type("application/problem+json").send({ status: 500, code: "API_INTERNAL", detail: String(error) });
  });
  await app.register(alertsRoutes, { alerts, sseHeartbeatMs: 60_000, sseReauthTimeoutMs: 500 });
  const url = await app.listen({ port: 0, host: "127.0.0.1" });
  return { app, url };
}

export interface SseEvent {
  readonly id: string;
  readonly event: string;
  readonly data: string;
  /** performance.now() when the frame was parsed. */
  readonly atMs: number;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  /** The server ended the stream. */
  ended = false;
  private buffer = "";
  private waiters: (() => void)[] = [];
  private constructor(private readonly req: ClientRequest) {}

  static open(baseUrl: string, user: string, lastEventId?: number): Promise<{ client: SseClient; status: number; contentType: string }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { [TEST_USER_HEADER]: user, accept: "text/event-stream" };
      if (lastEventId !== undefined) headers["last-event-id"] = String(lastEventId);
      const req = httpRequest(`${baseUrl}/alerts/stream`, { headers });
      const client = new SseClient(req);
      req.on("socket", (socket) => socket.setNoDelay(true));
      req.on("response", (res) => {
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => client.feed(chunk));
        res.on("error", () => undefined);
        res.on("end", () => {
          client.ended = true;
        });
        resolve({ client, status: res.statusCode ?? 0, contentType: String(res.headers["content-type"]) });
      });
      req.on("error", reject);
      req.end();
    });
  }

  private feed(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf("\n\n")) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const fields = block.split("\n");
      if (fields.every((f) => f.startsWith(":"))) {
        this.comments.push(...fields.map((f) => f.slice(2)));
        continue;
      }
      const get = (name: string): string[] => fields.filter((f) => f.startsWith(`${name}: `)).map((f) => f.slice(name.length + 2));
      if (get("id").length === 0) continue; // the retry: field
      this.events.push({ id: get("id")[0] ?? "", event: get("event")[0] ?? "", data: get("data").join("\n"), atMs: performance.now() });
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** The first event (from `fromIndex` on) that matches, waiting for it up to timeoutMs. */
  async next(match: (e: SseEvent) => boolean, timeoutMs: number, what: string, fromIndex = 0): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(fromIndex).find(match);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.req.destroy();
  }
}

/** The incident inside an SSE event's data. */
export const incidentOf = (e: SseEvent): { incidentId: string; class: string; state: string; sensorIds: string[]; certainty: string; disposition?: string } =>
  (JSON.parse(e.data) as { incident: { incidentId: string; class: string; state: string; sensorIds: string[]; certainty: string; disposition?: string } }).incident;
