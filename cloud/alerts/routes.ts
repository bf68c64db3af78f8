// The alerts HTTP API as a fastify plugin (app.ts registers it): incidents (list, detail, transitions, CAP 1.2 XML),
// the live stream (Server-Sent Events with Last-Event-ID replay), mutes, metrics, and the admin's provisioning of
// jurisdictions, sensors and webhook receivers. Every route is declared with addRoute (zod in, zod out, roles); the
// jurisdiction scope is checked here, on the row, since only the handler has it (route.ts).

/* eslint-disable @typescript-eslint/require-await -- addRoute wants promises; these handlers answer from synchronous SQLite. */

import type { FastifyInstance, FastifyReply } from "fastify";
import type { ServerResponse } from "node:http";
import { z } from "zod";
import { coversJurisdiction, hasAnyRole, isAdmin, type Principal } from "../auth/principal.js";
import { forbidden, HttpProblem } from "../api/problem.js";
import { addRoute } from "../api/route.js";
import { AlertsError } from "./errors.js";
import { incidentTimes } from "./metrics.js";
import {
  id,
  incidentDetailSchema,
  incidentSchema,
  jurisdictionBodySchema,
  jurisdictionSchema,
  listQuerySchema,
  metricsSchema,
  muteBodySchema,
  muteSchema,
  receiverBodySchema,
  receiverViewSchema,
  sensorBodySchema,
  sensorSchema,
  transitionBodySchema,
} from "./schemas.js";
import type { AlertService } from "./service.js";
import { parseLastEventId, sseComment, sseFrame, sseRetry } from "./sse-frame.js";
import type { Incident } from "./types.js";

export interface AlertsRouteDeps {
  readonly alerts: AlertService;
  /** Comment frames keep idle streams open through proxies; default 15 s. */
  readonly sseHeartbeatMs?: number;
  /** What EventSource waits before reconnecting; default 1 s. */
  readonly sseRetryMs?: number;
  /** A stream whose unsent output exceeds this is closed (the client replays on reconnect); default 1 MiB. */
  readonly sseMaxBufferedBytes?: number;
  /**
   * How long a stream's re-authentication may take before the stream is ended (default 5,000 ms): a database that
   * stops answering must not hold incidents back from a dispatcher — the client reconnects and replays from
   * Last-Event-ID on a fresh request instead.
   */
  readonly sseReauthTimeoutMs?: number;
}

const DISPATCH = ["police-dispatcher"] as const;
const ADMIN = ["admin"] as const;
const TAGS = ["alerts"];

/** The domain's errors as problem details. */
function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof AlertsError) throw new HttpProblem(error.status, error.code, error.message);
    throw error;
  }
}

export async function alertsRoutes(app: FastifyInstance, deps: AlertsRouteDeps): Promise<void> {
  const { alerts } = deps;
  const covers = (p: Principal, jurisdictionId: string | null): boolean => {
    if (jurisdictionId === null) return isAdmin(p);
    const chain = alerts.ancestry(jurisdictionId);
    return coversJurisdiction(p, chain.length > 0 ? chain : [jurisdictionId]);
  };
  const visibleIncident = (p: Principal, incidentId: string): Incident => {
    const incident = call(() => alerts.getIncident(incidentId));
    // Outside the caller's scope is answered as absent: a 403 would confirm that the incident exists.
    if (!covers(p, incident.jurisdictionId)) throw new HttpProblem(404, "API_NOT_FOUND", `no incident ${incidentId}`);
    return incident;
  };
  const incidentParams = z.strictObject({ incidentId: id });

  addRoute(app, {
    method: "GET",
    url: "/alerts/incidents",
    summary: "Incidents in the caller's jurisdictions: open ones first, then closed ones opened since sinceMs",
    tags: TAGS,
    access: DISPATCH,
    query: listQuerySchema,
    response: z.strictObject({ incidents: z.array(incidentSchema) }),
    handler: async ({ principal, query }) => ({
      // The scope goes in before the limit: incidents elsewhere must not push the caller's own out of the page.
      incidents: alerts.listIncidents({ sinceMs: query.sinceMs, limit: query.limit, openOnly: query.open === "true", covers: (i) => covers(principal, i.jurisdictionId) }),
    }),
  });

  addRoute(app, {
    method: "GET",
    url: "/alerts/incidents/:incidentId",
    summary: "One incident with its audit log and webhook deliveries",
    tags: TAGS,
    access: DISPATCH,
    params: incidentParams,
    response: incidentDetailSchema,
    handler: async ({ principal, params }) => {
      const incident = visibleIncident(principal, params.incidentId);
      const deliveries = alerts.deliveries(incident.incidentId).map((d) => ({ receiverId: d.receiverId, streamId: d.streamId, state: d.state, attempts: d.attempts, lastError: d.lastError, doneAtMs: d.doneAtMs }));
      return {
        incident,
        log: alerts.incidentLog(incident.incidentId).map((e) => ({ seq: e.seq, kind: e.kind, actor: e.actor, atMs: e.atMs, detail: e.detail })),
        deliveries,
        durationsMs: incidentTimes(incident),
        delivered: deliveries.every((d) => d.state === "delivered"),
        undelivered: deliveries.filter((d) => d.state === "undelivered").length,
      };
    },
  });

  addRoute(app, {
    method: "POST",
    url: "/alerts/incidents/:incidentId/transitions",
    summary: "Move an incident forward (acknowledge, verify, confirm, false_alarm, dispatch, arrive, resolve)",
    tags: TAGS,
    access: DISPATCH,
    params: incidentParams,
    body: transitionBodySchema,
    response: z.strictObject({ incident: incidentSchema }),
    handler: async ({ principal, params, body }) => {
      visibleIncident(principal, params.incidentId);
      const request = {
        action: body.action,
        ...(body.assignee === undefined ? {} : { assignee: body.assignee }),
        ...(body.disposition === undefined ? {} : { disposition: body.disposition }),
        ...(body.note === undefined ? {} : { note: body.note }),
      };
      return { incident: call(() => alerts.transition(params.incidentId, request, principal.userId)) };
    },
  });

  addRoute(app, {
    method: "GET",
    url: "/alerts/incidents/:incidentId/cap.xml",
    summary: "The incident's current version as a CAP 1.2 alert (Alert, Update referencing it, or Cancel)",
    tags: TAGS,
    access: DISPATCH,
    params: incidentParams,
    response: z.string(),
    produces: "application/xml",
    handler: async ({ principal, params, reply }) => {
      visibleIncident(principal, params.incidentId);
      return reply.code(200).type("application/cap+xml; charset=utf-8").send(call(() => alerts.capXml(params.incidentId)));
    },
  });

  const streams = new Set<ServerResponse>();
  app.addHook("onClose", async () => {
    for (const s of streams) s.end();
  });

  addRoute(app, {
    method: "GET",
    url: "/alerts/stream",
    summary: "Live incident stream (Server-Sent Events); send Last-Event-ID (or ?after=) to replay everything missed",
    tags: TAGS,
    access: DISPATCH,
    query: z.strictObject({ after: z.string().regex(/^\d{1,15}$/).optional() }),
    response: z.string(),
    produces: "text/event-stream",
    handler: async ({ principal, request, reply, query }): Promise<FastifyReply> => {
      const after = parseLastEventId(request.headers["last-event-id"]) ?? parseLastEventId(query.after);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache, no-transform", connection: "keep-alive", "x-accel-buffering": "no" });
      // Each frame is its own small write; Nagle would hold it for the previous one's ACK.
      res.socket?.setNoDelay(true);
      res.write(sseRetry(deps.sseRetryMs ?? 1000));
      streams.add(res);
      // The stream outlives the request that opened it: the caller's credential is checked again (it may live in
      // PostgreSQL, so the check is asynchronous) before each write, and the frames that waited for that check go out
      // only if it passed — a logout, a disable or a password reset ends the stream before another frame is sent. A
      // changed scope (roles, jurisdictions) ends it too: the client reconnects with Last-Event-ID and the replay is
      // filtered by the new scope, so a narrowed dispatcher never sees an incident queued under the old one.
      let current: Principal | undefined = principal;
      const reauthTimeoutMs = deps.sseReauthTimeoutMs ?? 5_000;
      const scopeOf = (p: Principal): string => JSON.stringify([p.userId, [...p.roles].sort(), [...p.jurisdictionIds].sort()]);
      const scope = principal === undefined ? "" : scopeOf(principal);
      const end = (): void => {
        current = undefined;
        pending.length = 0;
        res.end();
      };
      const stillAllowed = async (): Promise<boolean> => {
        if (current === undefined) return false;
        if (request.reauthenticate === undefined) return true;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`re-authentication took over ${reauthTimeoutMs} ms`)), reauthTimeoutMs);
        });
        const fresh = await Promise.race([request.reauthenticate(), timedOut]).finally(() => clearTimeout(timer));
        if (fresh === undefined || !hasAnyRole(fresh, DISPATCH) || scopeOf(fresh) !== scope) end();
        return current !== undefined;
      };
      const pending: string[] = [];
      let draining = false;
      const drain = async (): Promise<void> => {
        if (draining) return;
        draining = true;
        try {
          while (pending.length > 0 && current !== undefined) {
            // Only the frames queued before this check started are sent on its word.
            const ready = pending.length;
            if (!(await stillAllowed())) break;
            for (const frame of pending.splice(0, ready)) {
              // A client that does not read must not grow this process without bound: drop it, and its EventSource
              // reconnects with Last-Event-ID and replays the rest from the durable stream log.
              if (res.writableLength > (deps.sseMaxBufferedBytes ?? 1 << 20)) {
                end();
                break;
              }
              res.write(frame);
            }
          }
        } catch (error) {
          request.log.warn({ err: error }, "alerts: stream re-authentication failed; stream ended");
          end();
        } finally {
          draining = false;
        }
      };
      const send = (frame: string): void => {
        if (current === undefined) return;
        pending.push(frame);
        void drain();
      };
      const covers = (chain: readonly string[], jurisdictionId: string | null): boolean => {
        const p = current;
        if (p === undefined) return false;
        return jurisdictionId === null ? isAdmin(p) : coversJurisdiction(p, chain.length > 0 ? chain : [jurisdictionId]);
      };
      const subscription = alerts.subscribe(after, { covers }, (e) => send(sseFrame({ id: e.id, event: e.kind, data: e.body })));
      // Tells a client that started without Last-Event-ID where "now" is, so its first reconnect misses nothing.
      send(sseComment(`connected; last event id ${alerts.lastStreamId()}; replayed ${subscription.replayed}`));
      const heartbeat = setInterval(() => send(sseComment("ping")), deps.sseHeartbeatMs ?? 15_000);
      const close = (): void => {
        clearInterval(heartbeat);
        subscription.close();
        streams.delete(res);
      };
      request.raw.on("close", close);
      res.on("close", close);
      return reply;
    },
  });

  addRoute(app, {
    method: "GET",
    url: "/alerts/mutes",
    summary: "Mutes (active and past) on sensors in the caller's jurisdictions",
    tags: TAGS,
    access: DISPATCH,
    response: z.strictObject({ mutes: z.array(muteSchema) }),
    handler: async ({ principal }) => {
      const sensors = new Map(alerts.sensors().map((s) => [s.sensorId, s]));
      return { mutes: alerts.mutes().filter((m) => covers(principal, sensors.get(m.sensorId)?.jurisdictionId ?? null)) };
    },
  });

  const muteScope = (principal: Principal, sensorId: string): void => {
    const sensor = alerts.sensors().find((s) => s.sensorId === sensorId);
    if (sensor === undefined) throw new HttpProblem(404, "API_NOT_FOUND", `no sensor ${sensorId}`);
    if (!covers(principal, sensor.jurisdictionId)) throw forbidden(`sensor ${sensorId} is outside your jurisdictions`);
  };

  addRoute(app, {
    method: "POST",
    url: "/alerts/mutes",
    summary: "Mute a sensor for a limited time, with a reason (audited)",
    tags: TAGS,
    access: DISPATCH,
    body: muteBodySchema,
    response: z.strictObject({ mute: muteSchema }),
    status: 201,
    handler: async ({ principal, body }) => {
      muteScope(principal, body.sensorId);
      return { mute: call(() => alerts.mute({ sensorId: body.sensorId, untilMs: body.untilMs, reason: body.reason, ...(body.fromMs === undefined ? {} : { fromMs: body.fromMs }) }, principal.userId)) };
    },
  });

  addRoute(app, {
    method: "DELETE",
    url: "/alerts/mutes/:muteId",
    summary: "Lift a mute early (audited)",
    tags: TAGS,
    access: DISPATCH,
    params: z.strictObject({ muteId: id }),
    response: z.strictObject({ mute: muteSchema }),
    handler: async ({ principal, params }) => {
      const mute = alerts.mutes().find((m) => m.muteId === params.muteId);
      if (mute === undefined) throw new HttpProblem(404, "API_NOT_FOUND", `no mute ${params.muteId}`);
      muteScope(principal, mute.sensorId);
      return { mute: call(() => alerts.liftMute(params.muteId, principal.userId)) };
    },
  });

  addRoute(app, {
    method: "GET",
    url: "/alerts/metrics",
    summary: "Response times per jurisdiction and false-alarm rates per sensor (fire incidents only; test traffic never counts)",
    tags: TAGS,
    access: DISPATCH,
    query: z.strictObject({ sinceMs: z.coerce.number().int().nonnegative().default(0) }),
    response: metricsSchema,
    handler: async ({ principal, query }) => {
      const m = alerts.metrics(query.sinceMs);
      const sensors = new Map(alerts.sensors().map((s) => [s.sensorId, s]));
      return {
        jurisdictions: m.jurisdictions.filter((j) => covers(principal, j.jurisdictionId)),
        sensors: m.sensors.filter((s) => covers(principal, sensors.get(s.sensorId)?.jurisdictionId ?? null)),
      };
    },
  });

  addRoute(app, {
    method: "GET",
    url: "/alerts/jurisdictions",
    summary: "The jurisdiction tree (the caller's part of it)",
    tags: TAGS,
    access: DISPATCH,
    response: z.strictObject({ jurisdictions: z.array(jurisdictionSchema) }),
    handler: async ({ principal }) => ({ jurisdictions: alerts.jurisdictions().filter((j) => covers(principal, j.jurisdictionId)) }),
  });

  addRoute(app, {
    method: "PUT",
    url: "/alerts/jurisdictions/:jurisdictionId",
    summary: "Create or change a jurisdiction (tier, parent, escalation timeouts)",
    tags: TAGS,
    access: ADMIN,
    params: z.strictObject({ jurisdictionId: id }),
    body: jurisdictionBodySchema,
    response: z.strictObject({ jurisdiction: jurisdictionSchema }),
    handler: async ({ params, body }) => {
      const jurisdiction = { jurisdictionId: params.jurisdictionId, ...body };
      call(() => alerts.upsertJurisdiction(jurisdiction));
      return { jurisdiction };
    },
  });

  addRoute(app, {
    method: "GET",
    url: "/alerts/sensors",
    summary: "Fire sensors in the caller's jurisdictions",
    tags: TAGS,
    access: DISPATCH,
    response: z.strictObject({ sensors: z.array(sensorSchema) }),
    handler: async ({ principal }) => ({ sensors: alerts.sensors().filter((s) => covers(principal, s.jurisdictionId)) }),
  });

  addRoute(app, {
    method: "PUT",
    url: "/alerts/sensors/:sensorId",
    summary: "Register or change a fire sensor (location, jurisdiction, mode normal | calibration | test)",
    tags: TAGS,
    access: ADMIN,
    params: z.strictObject({ sensorId: id }),
    body: sensorBodySchema,
    response: z.strictObject({ sensor: sensorSchema }),
    handler: async ({ params, body }) => {
      const sensor = { sensorId: params.sensorId, ...body };
      call(() => alerts.upsertSensor(sensor));
      return { sensor };
    },
  });

  const receiverView = (r: ReturnType<AlertService["receivers"]>[number], counts: readonly { receiverId: string; state: string; count: number }[]) => {
    const n = (state: string): number => counts.find((c) => c.receiverId === r.receiverId && c.state === state)?.count ?? 0;
    return { receiverId: r.receiverId, url: r.url, format: r.format, jurisdictionId: r.jurisdictionId, enabled: r.enabled, outbox: { pending: n("pending"), delivered: n("delivered"), undelivered: n("undelivered") } };
  };

  addRoute(app, {
    method: "GET",
    url: "/alerts/webhooks",
    summary: "Webhook receivers with their outbox counts (secrets are never answered)",
    tags: TAGS,
    access: ADMIN,
    response: z.strictObject({ receivers: z.array(receiverViewSchema) }),
    handler: async () => {
      const counts = alerts.store.outboxCounts();
      return { receivers: alerts.receivers().map((r) => receiverView(r, counts)) };
    },
  });

  addRoute(app, {
    method: "PUT",
    url: "/alerts/webhooks/:receiverId",
    summary: "Create or change a webhook receiver (URL, HMAC secret, json or CAP, jurisdiction filter)",
    tags: TAGS,
    access: ADMIN,
    params: z.strictObject({ receiverId: id }),
    body: receiverBodySchema,
    response: z.strictObject({ receiver: receiverViewSchema }),
    handler: async ({ params, body }) => {
      const receiver = { receiverId: params.receiverId, ...body };
      call(() => alerts.upsertReceiver(receiver));
      return { receiver: receiverView(receiver, alerts.store.outboxCounts()) };
    },
  });
}
