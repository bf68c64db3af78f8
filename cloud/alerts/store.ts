// The alerts store: one SQLite file of its own (alerts.db, beside cloud.db), opened with openDurableDatabase and
// migrated in its own table (alerts_schema_migrations). It holds the sensors and jurisdictions, the current row of
// every incident, the append-only incident event log (every step, with actor and server time), the mutes, the
// stream log whose autoincrement id is the SSE event id (Last-Event-ID replay) and the webhook outbox.
//
// Why its own file: the alarm path commits with synchronous FULL on every alarm and every SSE/webhook step, and
// must never wait behind the ledger's writer lock held by a CLI top-up in another process (busy timeout), nor the
// other way round; no transaction spans alerts and money, so nothing is lost by the split, and the file can be kept
// and backed up on its own retention.

import type Database from "better-sqlite3";
import { planMigrations } from "../schema-migrations.js";
import { openDurableDatabase } from "../sqlite.js";
import { AlertsError, ALERTS_ERROR_CODES } from "./errors.js";
import type { Incident, Jurisdiction, Mute, Sensor } from "./types.js";

interface Migration {
  readonly version: number;
  readonly sql: string;
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: `
CREATE TABLE alerts_jurisdictions (
  jurisdiction_id     TEXT PRIMARY KEY,
  parent_id           TEXT,
  tier                TEXT NOT NULL CHECK (tier IN ('village', 'township', 'county')),
  name                TEXT NOT NULL,
  ack_timeout_ms      INTEGER NOT NULL CHECK (ack_timeout_ms > 0),
  on_scene_timeout_ms INTEGER NOT NULL CHECK (on_scene_timeout_ms > 0),
  updated_at_ms       INTEGER NOT NULL
) STRICT;
CREATE TABLE alerts_sensors (
  sensor_id       TEXT PRIMARY KEY,
  gateway_id      TEXT NOT NULL,
  jurisdiction_id TEXT NOT NULL,
  lat             REAL NOT NULL CHECK (lat BETWEEN -90 AND 90),
  lon             REAL NOT NULL CHECK (lon BETWEEN -180 AND 180),
  name            TEXT NOT NULL,
  mode            TEXT NOT NULL CHECK (mode IN ('normal', 'calibration', 'test')),
  updated_at_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX alerts_sensors_gateway ON alerts_sensors (gateway_id);
CREATE TABLE alerts_incidents (
  incident_id     TEXT PRIMARY KEY,
  class           TEXT NOT NULL,
  state           TEXT NOT NULL,
  jurisdiction_id TEXT,
  opened_at_ms    INTEGER NOT NULL,
  updated_at_ms   INTEGER NOT NULL,
  body            TEXT NOT NULL
) STRICT;
CREATE INDEX alerts_incidents_open ON alerts_incidents (state) WHERE state <> 'resolved';
CREATE INDEX alerts_incidents_opened ON alerts_incidents (opened_at_ms);
-- Append-only: every step of every incident, who did it, and the server's time.
CREATE TABLE alerts_incident_events (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  incident_id TEXT NOT NULL REFERENCES alerts_incidents (incident_id),
  kind        TEXT NOT NULL,
  actor       TEXT NOT NULL,
  at_ms       INTEGER NOT NULL,
  detail      TEXT NOT NULL
) STRICT;
CREATE INDEX alerts_incident_events_incident ON alerts_incident_events (incident_id, seq);
-- Which incident a gateway's signal (alarmId, gap, fault) went to: a redelivered message joins the same one.
CREATE TABLE alerts_signal_keys (
  gateway_id  TEXT NOT NULL,
  signal_key  TEXT NOT NULL,
  incident_id TEXT NOT NULL,
  PRIMARY KEY (gateway_id, signal_key)
) STRICT, WITHOUT ROWID;
CREATE TABLE alerts_mutes (
  mute_id       TEXT PRIMARY KEY,
  sensor_id     TEXT NOT NULL,
  from_ms       INTEGER NOT NULL,
  until_ms      INTEGER NOT NULL,
  reason        TEXT NOT NULL,
  actor         TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  lifted_at_ms  INTEGER,
  lifted_by     TEXT
) STRICT;
-- The stream log: its id is the SSE event id, so replay after Last-Event-ID is one range scan.
CREATE TABLE alerts_stream (
  stream_id       INTEGER PRIMARY KEY AUTOINCREMENT,
  incident_id     TEXT NOT NULL,
  jurisdiction_id TEXT,
  kind            TEXT NOT NULL,
  at_ms           INTEGER NOT NULL,
  body            TEXT NOT NULL
) STRICT;
CREATE TABLE alerts_webhook_receivers (
  receiver_id     TEXT PRIMARY KEY,
  url             TEXT NOT NULL,
  secret          TEXT NOT NULL,
  format          TEXT NOT NULL CHECK (format IN ('json', 'cap')),
  jurisdiction_id TEXT,
  enabled         INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  updated_at_ms   INTEGER NOT NULL
) STRICT;
-- One row per (receiver, stream event); delivered strictly in stream order per receiver.
CREATE TABLE alerts_webhook_outbox (
  receiver_id     TEXT NOT NULL,
  stream_id       INTEGER NOT NULL,
  incident_id     TEXT NOT NULL,
  state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'undelivered')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  created_at_ms   INTEGER NOT NULL,
  next_attempt_ms INTEGER NOT NULL,
  last_error      TEXT,
  done_at_ms      INTEGER,
  PRIMARY KEY (receiver_id, stream_id)
) STRICT;
CREATE INDEX alerts_webhook_outbox_pending ON alerts_webhook_outbox (receiver_id, stream_id) WHERE state = 'pending';
CREATE INDEX alerts_webhook_outbox_incident ON alerts_webhook_outbox (incident_id);
`,
  },
];

function migrate(db: Database.Database, nowMs: number): void {
  db.exec("CREATE TABLE IF NOT EXISTS alerts_schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL) STRICT");
  db.transaction(() => {
    const applied = db.prepare("SELECT version FROM alerts_schema_migrations ORDER BY version").all() as { version: number }[];
    const plan = planMigrations(applied, MIGRATIONS);
    // The table records versions, not names, so the one refusal it can give is a database newer than this code.
    if (!plan.ok) {
      const { problem } = plan;
      const current = problem.kind === "too-new" ? problem.fromVersion : problem.version;
      throw new AlertsError(ALERTS_ERROR_CODES.schemaTooNew, `alerts database is at schema ${current}, newer than this code (${MIGRATIONS.at(-1)?.version ?? 0})`, 500);
    }
    for (const m of plan.pending) {
      db.exec(m.sql);
      db.prepare("INSERT INTO alerts_schema_migrations (version, applied_at_ms) VALUES (?, ?)").run(m.version, nowMs);
    }
  }).immediate();
}

export interface StreamEvent {
  readonly id: number;
  readonly incidentId: string;
  readonly jurisdictionId: string | null;
  readonly kind: string;
  readonly atMs: number;
  /** JSON text, sent as is (SSE data, webhook body). */
  readonly body: string;
}

export interface WebhookReceiver {
  readonly receiverId: string;
  readonly url: string;
  readonly secret: string;
  readonly format: "json" | "cap";
  readonly jurisdictionId: string | null;
  readonly enabled: boolean;
}

export interface OutboxRow {
  readonly receiverId: string;
  readonly streamId: number;
  readonly incidentId: string;
  readonly state: "pending" | "delivered" | "undelivered";
  readonly attempts: number;
  readonly createdAtMs: number;
  readonly nextAttemptMs: number;
  readonly lastError: string | null;
  readonly doneAtMs: number | null;
}

export interface IncidentLogEntry {
  readonly seq: number;
  readonly incidentId: string;
  readonly kind: string;
  readonly actor: string;
  readonly atMs: number;
  readonly detail: unknown;
}

type Row = Record<string, unknown>;
const str = (v: unknown): string => String(v);
const num = (v: unknown): number => Number(v);

const sensorOf = (r: Row): Sensor => ({ sensorId: str(r.sensor_id), gatewayId: str(r.gateway_id), jurisdictionId: str(r.jurisdiction_id), lat: num(r.lat), lon: num(r.lon), name: str(r.name), mode: str(r.mode) as Sensor["mode"] });
const jurisdictionOf = (r: Row): Jurisdiction => ({
  jurisdictionId: str(r.jurisdiction_id),
  parentId: r.parent_id === null ? null : str(r.parent_id),
  tier: str(r.tier) as Jurisdiction["tier"],
  name: str(r.name),
  ackTimeoutMs: num(r.ack_timeout_ms),
  onSceneTimeoutMs: num(r.on_scene_timeout_ms),
});
const muteOf = (r: Row): Mute => ({
  muteId: str(r.mute_id),
  sensorId: str(r.sensor_id),
  fromMs: num(r.from_ms),
  untilMs: num(r.until_ms),
  reason: str(r.reason),
  actor: str(r.actor),
  createdAtMs: num(r.created_at_ms),
  ...(r.lifted_at_ms === null ? {} : { liftedAtMs: num(r.lifted_at_ms) }),
  ...(r.lifted_by === null ? {} : { liftedBy: str(r.lifted_by) }),
});
const streamOf = (r: Row): StreamEvent => ({ id: num(r.stream_id), incidentId: str(r.incident_id), jurisdictionId: r.jurisdiction_id === null ? null : str(r.jurisdiction_id), kind: str(r.kind), atMs: num(r.at_ms), body: str(r.body) });
const receiverOf = (r: Row): WebhookReceiver => ({ receiverId: str(r.receiver_id), url: str(r.url), secret: str(r.secret), format: str(r.format) as "json" | "cap", jurisdictionId: r.jurisdiction_id === null ? null : str(r.jurisdiction_id), enabled: r.enabled === 1 });
const outboxOf = (r: Row): OutboxRow => ({
  receiverId: str(r.receiver_id),
  streamId: num(r.stream_id),
  incidentId: str(r.incident_id),
  state: str(r.state) as OutboxRow["state"],
  attempts: num(r.attempts),
  createdAtMs: num(r.created_at_ms),
  nextAttemptMs: num(r.next_attempt_ms),
  lastError: r.last_error === null ? null : str(r.last_error),
  doneAtMs: r.done_at_ms === null ? null : num(r.done_at_ms),
});

export function openAlertStore(path: string, nowMs: number) {
  const db = openDurableDatabase(path, 5000, (d) => migrate(d, nowMs));
  const q = {
    upsertJurisdiction: db.prepare(
      `INSERT INTO alerts_jurisdictions (jurisdiction_id, parent_id, tier, name, ack_timeout_ms, on_scene_timeout_ms, updated_at_ms) VALUES (@jurisdictionId, @parentId, @tier, @name, @ackTimeoutMs, @onSceneTimeoutMs, @atMs)
       ON CONFLICT (jurisdiction_id) DO UPDATE SET parent_id = excluded.parent_id, tier = excluded.tier, name = excluded.name, ack_timeout_ms = excluded.ack_timeout_ms, on_scene_timeout_ms = excluded.on_scene_timeout_ms, updated_at_ms = excluded.updated_at_ms`,
    ),
    upsertSensor: db.prepare(
      `INSERT INTO alerts_sensors (sensor_id, gateway_id, jurisdiction_id, lat, lon, name, mode, updated_at_ms) VALUES (@sensorId, @gatewayId, @jurisdictionId, @lat, @lon, @name, @mode, @atMs)
       ON CONFLICT (sensor_id) DO UPDATE SET gateway_id = excluded.gateway_id, jurisdiction_id = excluded.jurisdiction_id, lat = excluded.lat, lon = excluded.lon, name = excluded.name, mode = excluded.mode, updated_at_ms = excluded.updated_at_ms`,
    ),
    upsertIncident: db.prepare(
      `INSERT INTO alerts_incidents (incident_id, class, state, jurisdiction_id, opened_at_ms, updated_at_ms, body) VALUES (@incidentId, @class, @state, @jurisdictionId, @openedAtMs, @updatedAtMs, @body)
       ON CONFLICT (incident_id) DO UPDATE SET state = excluded.state, jurisdiction_id = excluded.jurisdiction_id, updated_at_ms = excluded.updated_at_ms, body = excluded.body`,
    ),
    insertEvent: db.prepare("INSERT INTO alerts_incident_events (incident_id, kind, actor, at_ms, detail) VALUES (?, ?, ?, ?, ?)"),
    getSignal: db.prepare("SELECT incident_id FROM alerts_signal_keys WHERE gateway_id = ? AND signal_key = ?").pluck(),
    putSignal: db.prepare("INSERT OR IGNORE INTO alerts_signal_keys (gateway_id, signal_key, incident_id) VALUES (?, ?, ?)"),
    insertStream: db.prepare("INSERT INTO alerts_stream (stream_id, incident_id, jurisdiction_id, kind, at_ms, body) VALUES (?, ?, ?, ?, ?, ?)"),
    streamSeq: db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'alerts_stream'").pluck(),
    streamAfter: db.prepare("SELECT * FROM alerts_stream WHERE stream_id > ? ORDER BY stream_id LIMIT ?"),
    streamById: db.prepare("SELECT * FROM alerts_stream WHERE stream_id = ?"),
    lastStreamId: db.prepare("SELECT coalesce(max(stream_id), 0) FROM alerts_stream").pluck(),
    enqueue: db.prepare("INSERT OR IGNORE INTO alerts_webhook_outbox (receiver_id, stream_id, incident_id, state, attempts, created_at_ms, next_attempt_ms) VALUES (?, ?, ?, 'pending', 0, ?, ?)"),
    headOf: db.prepare("SELECT * FROM alerts_webhook_outbox WHERE receiver_id = ? AND state = 'pending' ORDER BY stream_id LIMIT 1"),
    pendingOf: db.prepare("SELECT * FROM alerts_webhook_outbox WHERE receiver_id = ? AND state = 'pending' ORDER BY stream_id"),
    markDelivered: db.prepare("UPDATE alerts_webhook_outbox SET state = 'delivered', attempts = attempts + 1, done_at_ms = ?, last_error = NULL WHERE receiver_id = ? AND stream_id = ? AND state = 'pending'"),
    markRetry: db.prepare("UPDATE alerts_webhook_outbox SET attempts = attempts + 1, next_attempt_ms = ?, last_error = ? WHERE receiver_id = ? AND stream_id = ? AND state = 'pending'"),
    markUndelivered: db.prepare("UPDATE alerts_webhook_outbox SET state = 'undelivered', attempts = attempts + 1, done_at_ms = ?, last_error = ? WHERE receiver_id = ? AND stream_id = ? AND state = 'pending'"),
    outboxOfIncident: db.prepare("SELECT * FROM alerts_webhook_outbox WHERE incident_id = ? ORDER BY receiver_id, stream_id"),
    outboxCounts: db.prepare("SELECT receiver_id, state, count(*) AS n FROM alerts_webhook_outbox GROUP BY receiver_id, state"),
    upsertReceiver: db.prepare(
      `INSERT INTO alerts_webhook_receivers (receiver_id, url, secret, format, jurisdiction_id, enabled, updated_at_ms) VALUES (@receiverId, @url, @secret, @format, @jurisdictionId, @enabled, @atMs)
       ON CONFLICT (receiver_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, format = excluded.format, jurisdiction_id = excluded.jurisdiction_id, enabled = excluded.enabled, updated_at_ms = excluded.updated_at_ms`,
    ),
    insertMute: db.prepare("INSERT INTO alerts_mutes (mute_id, sensor_id, from_ms, until_ms, reason, actor, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)"),
    liftMute: db.prepare("UPDATE alerts_mutes SET lifted_at_ms = ?, lifted_by = ? WHERE mute_id = ? AND lifted_at_ms IS NULL"),
    incidentLog: db.prepare("SELECT * FROM alerts_incident_events WHERE incident_id = ? ORDER BY seq"),
    getIncident: db.prepare("SELECT body FROM alerts_incidents WHERE incident_id = ?").pluck(),
    openIncidents: db.prepare("SELECT body FROM alerts_incidents WHERE state <> 'resolved'").pluck(),
    incidentsSince: db.prepare("SELECT body FROM alerts_incidents WHERE opened_at_ms >= ? ORDER BY opened_at_ms DESC, incident_id LIMIT ?").pluck(),
    allIncidentsSince: db.prepare("SELECT body FROM alerts_incidents WHERE opened_at_ms >= ? ORDER BY opened_at_ms DESC, incident_id").pluck(),
  };
  return {
    db,
    transaction<T>(fn: () => T): T {
      return db.transaction(fn).immediate();
    },
    jurisdictions: (): Jurisdiction[] => (db.prepare("SELECT * FROM alerts_jurisdictions ORDER BY jurisdiction_id").all() as Row[]).map(jurisdictionOf),
    sensors: (): Sensor[] => (db.prepare("SELECT * FROM alerts_sensors ORDER BY sensor_id").all() as Row[]).map(sensorOf),
    mutes: (): Mute[] => (db.prepare("SELECT * FROM alerts_mutes ORDER BY created_at_ms, mute_id").all() as Row[]).map(muteOf),
    receivers: (): WebhookReceiver[] => (db.prepare("SELECT * FROM alerts_webhook_receivers ORDER BY receiver_id").all() as Row[]).map(receiverOf),
    upsertJurisdiction: (j: Jurisdiction, atMs: number): void => void q.upsertJurisdiction.run({ ...j, atMs }),
    upsertSensor: (s: Sensor, atMs: number): void => void q.upsertSensor.run({ ...s, atMs }),
    upsertReceiver: (r: WebhookReceiver, atMs: number): void => void q.upsertReceiver.run({ ...r, enabled: r.enabled ? 1 : 0, atMs }),
    insertMute: (m: Mute): void => void q.insertMute.run(m.muteId, m.sensorId, m.fromMs, m.untilMs, m.reason, m.actor, m.createdAtMs),
    liftMute: (muteId: string, atMs: number, actor: string): boolean => q.liftMute.run(atMs, actor, muteId).changes === 1,
    saveIncident(incident: Incident): void {
      q.upsertIncident.run({ incidentId: incident.incidentId, class: incident.class, state: incident.state, jurisdictionId: incident.jurisdictionId, openedAtMs: incident.openedAtMs, updatedAtMs: incident.updatedAtMs, body: JSON.stringify(incident) });
    },
    logEvent: (incidentId: string, kind: string, actor: string, atMs: number, detail: unknown): void => void q.insertEvent.run(incidentId, kind, actor, atMs, JSON.stringify(detail ?? null)),
    signalIncident: (gatewayId: string, key: string): string | undefined => q.getSignal.get(gatewayId, key) as string | undefined,
    putSignal: (gatewayId: string, key: string, incidentId: string): void => void q.putSignal.run(gatewayId, key, incidentId),
    /**
     * Inside a write transaction only: the id is the next AUTOINCREMENT value (sqlite_sequence, never reused), read
     * first so that the body can carry it and the row is written once.
     */
    appendStream(incidentId: string, jurisdictionId: string | null, kind: string, atMs: number, body: (id: number) => string): StreamEvent {
      const id = Number(q.streamSeq.get() ?? 0) + 1;
      const text = body(id);
      q.insertStream.run(id, incidentId, jurisdictionId, kind, atMs, text);
      return { id, incidentId, jurisdictionId, kind, atMs, body: text };
    },
    streamAfter: (afterId: number, limit: number): StreamEvent[] => (q.streamAfter.all(afterId, limit) as Row[]).map(streamOf),
    streamById: (id: number): StreamEvent | undefined => {
      const r = q.streamById.get(id) as Row | undefined;
      return r === undefined ? undefined : streamOf(r);
    },
    lastStreamId: (): number => Number(q.lastStreamId.get()),
    enqueue: (receiverId: string, streamId: number, incidentId: string, atMs: number): void => void q.enqueue.run(receiverId, streamId, incidentId, atMs, atMs),
    outboxHead: (receiverId: string): OutboxRow | undefined => {
      const r = q.headOf.get(receiverId) as Row | undefined;
      return r === undefined ? undefined : outboxOf(r);
    },
    markDelivered: (row: OutboxRow, atMs: number): void => void q.markDelivered.run(atMs, row.receiverId, row.streamId),
    markRetry: (row: OutboxRow, nextAttemptMs: number, error: string): void => void q.markRetry.run(nextAttemptMs, error.slice(0, 500), row.receiverId, row.streamId),
    /** False when the row was no longer pending (already delivered or given up): nothing to report again. */
    markUndelivered: (row: OutboxRow, atMs: number, error: string): boolean => q.markUndelivered.run(atMs, error.slice(0, 500), row.receiverId, row.streamId).changes === 1,
    pendingOf: (receiverId: string): OutboxRow[] => (q.pendingOf.all(receiverId) as Row[]).map(outboxOf),
    outboxOfIncident: (incidentId: string): OutboxRow[] => (q.outboxOfIncident.all(incidentId) as Row[]).map(outboxOf),
    outboxCounts: (): { receiverId: string; state: string; count: number }[] => (q.outboxCounts.all() as Row[]).map((r) => ({ receiverId: str(r.receiver_id), state: str(r.state), count: num(r.n) })),
    incidentLog: (incidentId: string): IncidentLogEntry[] =>
      (q.incidentLog.all(incidentId) as Row[]).map((r) => ({ seq: num(r.seq), incidentId: str(r.incident_id), kind: str(r.kind), actor: str(r.actor), atMs: num(r.at_ms), detail: JSON.parse(str(r.detail)) as unknown })),
    getIncident: (incidentId: string): Incident | undefined => {
      const body = q.getIncident.get(incidentId) as string | undefined;
      return body === undefined ? undefined : (JSON.parse(body) as Incident);
    },
    openIncidents: (): Incident[] => (q.openIncidents.all() as string[]).map((b) => JSON.parse(b) as Incident),
    incidentsSince: (sinceMs: number, limit: number): Incident[] => (q.incidentsSince.all(sinceMs, limit) as string[]).map((b) => JSON.parse(b) as Incident),
    /** The same order, read lazily: a caller that filters stops reading once it has enough (return() ends the scan). */
    *iterateIncidentsSince(sinceMs: number): Generator<Incident, void, undefined> {
      for (const b of q.allIncidentsSince.iterate(sinceMs) as IterableIterator<string>) yield JSON.parse(b) as Incident;
    },
    close: (): void => {
      db.close();
    },
  };
}

export type AlertStore = ReturnType<typeof openAlertStore>;
