// The alert service: the imperative shell around the pure cores. It turns the gateway's alarm and event uplinks
// into incidents (persisted in one transaction before the ingest acknowledges the MQTT message), applies people's
// transitions and mutes, runs the escalation timer, keeps the stream log that feeds SSE subscribers (with replay
// after Last-Event-ID) and enqueues every published change for each webhook receiver (webhooks.ts delivers).
//
// Nothing is dropped: an alarm from a sensor the cloud does not know becomes an incident ("unregistered sensor",
// location unknown, the jurisdiction of its gateway's other sensors if any); a muted sensor's alarm is recorded and
// shown, only not escalated or sent out; a webhook that cannot be delivered is marked undelivered and streamed so.

import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { AlarmMessage, EventBatch, GatewayEvent } from "../../protocols/mqtt/messages.js";
import { renderCap, capMsgType } from "./cap.js";
import { CLUSTER_DEFAULTS, clusterFor, type ClusterRule } from "./clustering.js";
import { AlertsError, ALERTS_ERROR_CODES } from "./errors.js";
import { ancestry, dueEscalations } from "./escalation.js";
import { incidentStep, openIncident, type StepResult } from "./incident-step.js";
import { jurisdictionMetrics, sensorFalseAlarmRates } from "./metrics.js";
import { activeMute, checkMuteRequest } from "./mutes.js";
import { openAlertStore, type AlertStore, type OutboxRow, type StreamEvent, type WebhookReceiver } from "./store.js";
import type { AlarmRecord, Disposition, Incident, IncidentAction, IncidentClass, IncidentEffect, IncidentEvent, Jurisdiction, Mute, Sensor } from "./types.js";

export type AlertLog = Pick<Logger, "info" | "warn" | "error">;

export interface AlertServiceDeps {
  /** The alerts SQLite file (alerts.db in the cloud's data directory). */
  readonly path: string;
  readonly log: AlertLog;
  readonly now?: () => number;
  readonly newId?: (kind: "incident" | "mute") => string;
  readonly cluster?: ClusterRule;
  /** CAP sender and identifier prefix. */
  readonly capSender?: string;
  readonly capSenderName?: string;
  /** How often due escalations are looked for; 0 disables the timer (tests call runEscalations). */
  readonly escalationCheckMs?: number;
}

export interface TransitionRequest {
  readonly action: IncidentAction;
  readonly assignee?: string;
  readonly disposition?: Disposition;
  readonly note?: string;
}

export interface StreamSubscription {
  readonly replayed: number;
  close(): void;
}

export interface StreamFilter {
  /** Called with the event's jurisdiction ancestry (itself first); true to deliver. */
  readonly covers: (ancestors: readonly string[], jurisdictionId: string | null) => boolean;
}

const REPLAY_PAGE = 500;

export function createAlertService(deps: AlertServiceDeps) {
  const now = deps.now ?? Date.now;
  const newId = deps.newId ?? ((kind: "incident" | "mute") => `${kind === "incident" ? "inc" : "mute"}-${randomUUID()}`);
  const rule = deps.cluster ?? CLUSTER_DEFAULTS;
  const capOptions = { sender: deps.capSender ?? "alerts@agri-edge.invalid", senderName: deps.capSenderName ?? "agri-edge fire alerts", identifierPrefix: deps.capSender ?? "agri-edge" };
  const store: AlertStore = openAlertStore(deps.path, now());
  const { log } = deps;

  // In-memory views of small, rarely changing tables and of the open incidents; this process is their only writer.
  let jurisdictions = new Map<string, Jurisdiction>(store.jurisdictions().map((j) => [j.jurisdictionId, j]));
  let sensors = new Map<string, Sensor>(store.sensors().map((s) => [s.sensorId, s]));
  let mutes: Mute[] = store.mutes();
  let receivers: WebhookReceiver[] = store.receivers();
  const open = new Map<string, Incident>(store.openIncidents().map((i) => [i.incidentId, i]));
  const listeners = new Set<(event: StreamEvent) => void>();
  const wakers = new Set<() => void>();
  const counters = { incidentsOpened: 0, signals: 0, published: 0, escalations: 0, undelivered: 0 };

  const jurisdictionOfGateway = (gatewayId: string): string | null => {
    for (const s of sensors.values()) if (s.gatewayId === gatewayId) return s.jurisdictionId;
    return null;
  };

  /** Persist one step (incident row, its log entry, the published stream event and webhook rows); the caller holds the transaction. */
  function persist(incident: Incident, effects: readonly IncidentEffect[], logKind: string, actor: string, detail: unknown, pending: StreamEvent[]): void {
    const atMs = now();
    store.saveIncident(incident);
    store.logEvent(incident.incidentId, logKind, actor, atMs, detail);
    if (incident.state === "resolved") open.delete(incident.incidentId);
    else open.set(incident.incidentId, incident);
    const publish = effects.find((e) => e.kind === "publish");
    if (publish === undefined) return;
    const notify = effects.find((e) => e.kind === "notify");
    const kind = notify !== undefined && notify.reason !== "opened" ? "incident.escalated" : incident.version === 1 ? "incident.opened" : "incident.updated";
    const event = store.appendStream(incident.incidentId, incident.jurisdictionId, kind, atMs, (id) =>
      JSON.stringify({ id, kind, msgType: capMsgType(incident), incident, ...(notify === undefined ? {} : { notify }) }),
    );
    pending.push(event);
    counters.published++;
    // A muted sensor's incident is shown in the command room but not sent to other systems.
    if (incident.mutedBy !== undefined) return;
    const chain = ancestry(jurisdictions, incident.jurisdictionId);
    for (const r of receivers) {
      if (!r.enabled) continue;
      if (r.jurisdictionId !== null && !chain.includes(r.jurisdictionId)) continue;
      store.enqueue(r.receiverId, event.id, incident.incidentId, atMs);
    }
  }

  /** After commit: push to live subscribers and wake the webhook worker. Never before: a pushed alert is a stored one. */
  function emit(events: readonly StreamEvent[]): void {
    if (events.length === 0) return;
    for (const e of events) for (const l of [...listeners]) l(e);
    for (const w of [...wakers]) w();
  }

  function applyStep(incident: Incident, event: IncidentEvent, logKind: string, actor: string, pending: StreamEvent[]): StepResult {
    const result = incidentStep(incident, event, now());
    if (!result.ok) return result;
    if (result.incident !== incident) persist(result.incident, result.effects, logKind, actor, event, pending);
    return result;
  }

  function classFor(sensor: Sensor | undefined): IncidentClass {
    if (sensor?.mode === "test") return "test";
    if (sensor?.mode === "calibration") return "calibration";
    return "fire";
  }

  /** One signal that opens or joins an incident. Idempotent on (gatewayId, key). */
  function signal(gatewayId: string, key: string, record: AlarmRecord, wanted: IncidentClass | undefined, pending: StreamEvent[]): void {
    counters.signals++;
    const known = store.signalIncident(gatewayId, key);
    if (known !== undefined) return;
    const sensor = sensors.get(record.sensorId);
    const incidentClass = wanted ?? classFor(sensor);
    const point = sensor === undefined ? undefined : { lat: sensor.lat, lon: sensor.lon };
    // This alarm's own sensor at this alarm's time: a mute that opened the incident must not silence a later one.
    const mute = activeMute(mutes, record.sensorId, record.receivedAtMs);
    const event: Extract<IncidentEvent, { kind: "alarm" }> = {
      kind: "alarm",
      alarm: record,
      registered: sensor !== undefined,
      ...(point === undefined ? {} : { point }),
      ...(mute === undefined ? {} : { mutedBy: mute.muteId }),
    };
    const target =
      incidentClass === "fire"
        ? clusterFor(open.values(), { sensorId: record.sensorId, atMs: record.atMs, ...(point === undefined ? {} : { point }) }, rule)
        : [...open.values()].find((i) => i.class === incidentClass && i.sensorIds.includes(record.sensorId));
    const actor = `gateway:${gatewayId}`;
    if (target !== undefined) {
      applyStep(target, event, "signal", actor, pending);
      store.putSignal(gatewayId, key, target.incidentId);
      return;
    }
    const opened = openIncident({ incidentId: newId("incident"), class: incidentClass, jurisdictionId: sensor?.jurisdictionId ?? jurisdictionOfGateway(gatewayId) }, event, now());
    counters.incidentsOpened++;
    persist(opened.incident, opened.effects, "opened", actor, event, pending);
    store.putSignal(gatewayId, key, opened.incident.incidentId);
    if (sensor === undefined) log.warn({ gatewayId, sensorId: record.sensorId, incidentId: opened.incident.incidentId }, "alerts: alarm from an unregistered sensor");
  }

  function recover(sensorId: string, incidentClass: IncidentClass, gatewayId: string, pending: StreamEvent[]): void {
    for (const incident of [...open.values()]) {
      if (incident.class === incidentClass && incident.sensorIds.includes(sensorId)) applyStep(incident, { kind: "sensor_recovered" }, "recovered", `gateway:${gatewayId}`, pending);
    }
  }

  function onEvent(e: GatewayEvent, gatewayId: string, pending: StreamEvent[]): void {
    const receivedAtMs = now();
    const rec = (sensorId: string, alarmId: string, cause: AlarmRecord["cause"], at: string, value?: number): AlarmRecord => ({
      alarmId,
      sensorId,
      gatewayId,
      cause,
      atMs: Date.parse(at),
      receivedAtMs,
      ...(value === undefined ? {} : { value }),
    });
    switch (e.type) {
      case "alarm.raised":
        signal(gatewayId, `alarm:${e.deviceId}:${e.alarmId}`, rec(e.deviceId, e.alarmId, e.cause, e.at, e.value), undefined, pending);
        return;
      case "alarm.cleared": {
        const incidentId = store.signalIncident(gatewayId, `alarm:${e.deviceId}:${e.alarmId}`);
        const incident = incidentId === undefined ? undefined : (open.get(incidentId) ?? store.getIncident(incidentId));
        if (incident === undefined) {
          // A clear whose raise never arrived (or arrives later): logged, nothing to close.
          log.warn({ gatewayId, deviceId: e.deviceId, alarmId: e.alarmId }, "alerts: alarm.cleared for an unknown alarm");
          return;
        }
        applyStep(incident, { kind: "alarm_cleared", alarmId: e.alarmId, atMs: Date.parse(e.at) }, "alarm_cleared", `gateway:${gatewayId}`, pending);
        return;
      }
      case "monitoring.gap":
        signal(gatewayId, `gap:${e.deviceId}:${e.silentSinceAt}`, rec(e.deviceId, `gap-${e.silentSinceAt}`, "monitoring_gap", e.at), "monitoring_gap", pending);
        return;
      case "monitoring.restored":
        recover(e.deviceId, "monitoring_gap", gatewayId, pending);
        return;
      case "sensor.fault":
        if (e.faulted) signal(gatewayId, `fault:${e.deviceId}:${e.at}`, rec(e.deviceId, `fault-${e.at}`, "sensor_fault", e.at), "sensor_fault", pending);
        else recover(e.deviceId, "sensor_fault", gatewayId, pending);
        return;
      case "battery.low":
        // Its own class, like a gap: a sensor that needs a new cell is a maintenance job, never a fire to dispatch.
        signal(gatewayId, `battery:${e.deviceId}:${e.at}`, rec(e.deviceId, `battery-${e.at}`, "low_battery", e.at, e.batteryMv), "low_battery", pending);
        return;
      case "battery.ok":
        recover(e.deviceId, "low_battery", gatewayId, pending);
        return;
      default:
        // Metering events (relay, grants, credit, tamper on meters) are not the alerts domain's.
        return;
    }
  }

  function run<T>(fn: (pending: StreamEvent[]) => T): T {
    const pending: StreamEvent[] = [];
    const result = store.transaction(() => fn(pending));
    emit(pending);
    return result;
  }

  /**
   * Give one outbox row up: marked undelivered, logged on its incident and streamed to the command room. A row that
   * is no longer pending (a receiver disabled while its delivery was in flight, then the attempt failing) is not
   * reported twice. The caller holds the transaction.
   */
  function undeliver(row: OutboxRow, error: string, pending: StreamEvent[]): void {
    if (!store.markUndelivered(row, now(), error)) return;
    counters.undelivered++;
    const incident = requireIncident(row.incidentId);
    store.logEvent(row.incidentId, "undelivered", "system", now(), { receiverId: row.receiverId, streamId: row.streamId, error });
    pending.push(
      store.appendStream(row.incidentId, incident.jurisdictionId, "delivery.undelivered", now(), (id) =>
        JSON.stringify({ id, kind: "delivery.undelivered", receiverId: row.receiverId, streamId: row.streamId, incidentId: row.incidentId, error }),
      ),
    );
    log.error({ receiverId: row.receiverId, streamId: row.streamId, incidentId: row.incidentId, error }, "alerts: webhook alert undelivered");
  }

  /** A disabled receiver's worker never takes its queue again, so what it holds is undelivered now. */
  function undeliverQueue(receiverId: string, pending: StreamEvent[]): void {
    for (const row of store.pendingOf(receiverId)) undeliver(row, `receiver ${receiverId} is disabled`, pending);
  }

  const notFound = (what: string): AlertsError => new AlertsError(ALERTS_ERROR_CODES.notFound, `no ${what}`, 404);

  function requireIncident(incidentId: string): Incident {
    const incident = open.get(incidentId) ?? store.getIncident(incidentId);
    if (incident === undefined) throw notFound(`incident ${incidentId}`);
    return incident;
  }

  function capOf(incident: Incident): string {
    const j = incident.jurisdictionId === null ? undefined : jurisdictions.get(incident.jurisdictionId);
    return renderCap(incident, { ...capOptions, ...(j === undefined ? {} : { jurisdictionName: j.name }) });
  }

  // Rows left pending for a receiver disabled before this code gave queues up on disabling (or by another writer).
  if (receivers.some((r) => !r.enabled)) {
    run((pending) => {
      for (const r of receivers) if (!r.enabled) undeliverQueue(r.receiverId, pending);
    });
  }

  const runEscalations = (): number =>
    run((pending) => {
      const due = dueEscalations([...open.values()], jurisdictions, now());
      for (const d of due) {
        const incident = open.get(d.incidentId);
        if (incident === undefined) continue;
        applyStep(incident, { kind: "escalate", escalation: d.escalation }, "escalated", "system", pending);
        counters.escalations++;
        log.warn({ incidentId: d.incidentId, level: d.escalation.level, jurisdictionId: d.escalation.jurisdictionId, reason: d.escalation.reason }, "alerts: incident escalated");
      }
      return due.length;
    });

  const escalationTimer =
    (deps.escalationCheckMs ?? 1000) > 0
      ? setInterval(() => {
          try {
            runEscalations();
          } catch (error) {
            log.error({ err: error }, "alerts: escalation check failed");
          }
        }, deps.escalationCheckMs ?? 1000)
      : undefined;
  escalationTimer?.unref();

  return {
    store,
    counters: counters as Readonly<typeof counters>,

    /** The ingest's alarm sink: stored (committed) when it returns. */
    onAlarm(message: AlarmMessage, gatewayId: string): void {
      run((pending) => onEvent(message.event, gatewayId, pending));
    },

    /** The ingest's events sink: the whole batch in one transaction, in order. */
    onEvents(batch: EventBatch, gatewayId: string): void {
      run((pending) => {
        for (const e of batch.events) onEvent(e, gatewayId, pending);
      });
    },

    transition(incidentId: string, request: TransitionRequest, actor: string): Incident {
      return run((pending) => {
        const incident = requireIncident(incidentId);
        const event: IncidentEvent = {
          kind: "action",
          action: request.action,
          actor,
          ...(request.assignee === undefined ? {} : { assignee: request.assignee }),
          ...(request.disposition === undefined ? {} : { disposition: request.disposition }),
          ...(request.note === undefined ? {} : { note: request.note }),
        };
        const result = applyStep(incident, event, request.action, actor, pending);
        if (!result.ok) throw new AlertsError(result.code, result.reason, 409);
        return result.incident;
      });
    },

    mute(request: { readonly sensorId: string; readonly fromMs?: number; readonly untilMs: number; readonly reason: string }, actor: string): Mute {
      const atMs = now();
      const fromMs = request.fromMs ?? atMs;
      const check = checkMuteRequest({ fromMs, untilMs: request.untilMs, reason: request.reason });
      if (!check.ok) throw new AlertsError(ALERTS_ERROR_CODES.invalid, check.reason, 400);
      const mute: Mute = { muteId: newId("mute"), sensorId: request.sensorId, fromMs, untilMs: request.untilMs, reason: request.reason, actor, createdAtMs: atMs };
      store.insertMute(mute);
      mutes = store.mutes();
      log.info({ muteId: mute.muteId, sensorId: mute.sensorId, untilMs: mute.untilMs, actor }, "alerts: sensor muted");
      return mute;
    },

    liftMute(muteId: string, actor: string): Mute {
      if (!store.liftMute(muteId, now(), actor)) throw notFound(`active mute ${muteId}`);
      mutes = store.mutes();
      const mute = mutes.find((m) => m.muteId === muteId);
      if (mute === undefined) throw notFound(`mute ${muteId}`);
      return mute;
    },

    mutes: (): readonly Mute[] => mutes,

    upsertJurisdiction(j: Jurisdiction): void {
      if (j.parentId !== null && ancestry(new Map([...jurisdictions, [j.jurisdictionId, j]]), j.parentId).includes(j.jurisdictionId)) {
        throw new AlertsError(ALERTS_ERROR_CODES.invalid, `jurisdiction ${j.jurisdictionId} cannot be its own ancestor`, 400);
      }
      if (j.parentId !== null && !jurisdictions.has(j.parentId)) throw new AlertsError(ALERTS_ERROR_CODES.invalid, `parent jurisdiction ${j.parentId} is not provisioned`, 400);
      store.upsertJurisdiction(j, now());
      jurisdictions = new Map(store.jurisdictions().map((x) => [x.jurisdictionId, x]));
    },

    upsertSensor(s: Sensor): void {
      if (!jurisdictions.has(s.jurisdictionId)) throw new AlertsError(ALERTS_ERROR_CODES.invalid, `jurisdiction ${s.jurisdictionId} is not provisioned`, 400);
      store.upsertSensor(s, now());
      sensors = new Map(store.sensors().map((x) => [x.sensorId, x]));
    },

    /** Disabling a receiver gives up its queue at once: those alerts are shown undelivered, never left pending. */
    upsertReceiver(r: WebhookReceiver): void {
      run((pending) => {
        store.upsertReceiver(r, now());
        if (!r.enabled) undeliverQueue(r.receiverId, pending);
      });
      receivers = store.receivers();
    },

    jurisdictions: (): readonly Jurisdiction[] => [...jurisdictions.values()],
    sensors: (): readonly Sensor[] => [...sensors.values()],
    receivers: (): readonly WebhookReceiver[] => receivers,
    ancestry: (jurisdictionId: string | null): readonly string[] => ancestry(jurisdictions, jurisdictionId),

    getIncident: (incidentId: string): Incident => requireIncident(incidentId),
    incidentLog: (incidentId: string) => store.incidentLog(requireIncident(incidentId).incidentId),
    deliveries: (incidentId: string): readonly OutboxRow[] => store.outboxOfIncident(incidentId),
    /**
     * Open incidents first, newest first; then closed ones opened since sinceMs. `covers` (the caller's scope) is
     * applied before the limit, so incidents the caller may not see never push its own out of the page.
     */
    listIncidents(options: { readonly sinceMs: number; readonly limit: number; readonly openOnly: boolean; readonly covers?: (incident: Incident) => boolean }): Incident[] {
      const { covers, limit } = options;
      const live = [...open.values()].filter((i) => covers === undefined || covers(i)).sort((a, b) => b.openedAtMs - a.openedAtMs);
      if (options.openOnly || live.length >= limit) return live.slice(0, limit);
      const list = [...live];
      for (const i of store.iterateIncidentsSince(options.sinceMs)) {
        if (open.has(i.incidentId) || (covers !== undefined && !covers(i))) continue;
        list.push(i);
        if (list.length >= limit) break;
      }
      return list;
    },

    capXml(incidentId: string): string {
      return capOf(requireIncident(incidentId));
    },

    /** CAP of an incident as it was at one version (the snapshot a stream event carries). */
    capOf,

    metrics(sinceMs: number) {
      const incidents = store.incidentsSince(sinceMs, 100_000);
      return { jurisdictions: jurisdictionMetrics(incidents), sensors: sensorFalseAlarmRates(incidents) };
    },

    runEscalations,

    /**
     * Replay everything after `afterId` that the filter covers, then every new event live. Both happen in this
     * synchronous call, and the store is only written from this process's event loop, so no event falls between.
     */
    subscribe(afterId: number | undefined, filter: StreamFilter, onEvent: (event: StreamEvent) => void): StreamSubscription {
      const deliver = (e: StreamEvent): void => {
        if (filter.covers(ancestry(jurisdictions, e.jurisdictionId), e.jurisdictionId)) onEvent(e);
      };
      let replayed = 0;
      if (afterId !== undefined) {
        let cursor = afterId;
        for (;;) {
          const page = store.streamAfter(cursor, REPLAY_PAGE);
          for (const e of page) {
            deliver(e);
            replayed++;
          }
          const last = page.at(-1);
          if (last === undefined || page.length < REPLAY_PAGE) break;
          cursor = last.id;
        }
      }
      listeners.add(deliver);
      return { replayed, close: () => void listeners.delete(deliver) };
    },

    lastStreamId: (): number => store.lastStreamId(),

    /** For the webhook worker. */
    onWake(fn: () => void): () => void {
      wakers.add(fn);
      return () => void wakers.delete(fn);
    },

    /** Record a delivery outcome; an undelivered alert is logged on the incident and streamed to the command room. */
    deliveryFailed(row: OutboxRow, error: string, giveUp: boolean, nextAttemptMs: number): void {
      if (!giveUp) {
        store.markRetry(row, nextAttemptMs, error);
        return;
      }
      run((pending) => undeliver(row, error, pending));
    },

    stop(): void {
      if (escalationTimer !== undefined) clearInterval(escalationTimer);
      listeners.clear();
      wakers.clear();
      store.close();
    },
  };
}

export type AlertService = ReturnType<typeof createAlertService>;
