// The police command room: every incident in the dispatcher's jurisdictions, newest first, on an offline SVG map
// with the fire sensors; live over SSE (live-stream.js), with a visible banner while the stream is down and a
// visual and audible alert when a new fire incident arrives; and the buttons for the transitions the incident's
// state allows (incident-actions.js), each one POST /alerts/incidents/:id/transitions.
//
// Stream events carry the whole incident with its version, so the list is a map from id to the highest version
// seen: the initial GET, the live events and a replay after reconnecting can arrive in any order and agree.

import { api, ApiError, me } from "./api.js";
import { bilingual, byId, h, replaceChildren, s } from "./dom.js";
import { allowedDispositions, NEEDS_ASSIGNEE, nextActions } from "./incident-actions.js";
import { ACTION, CERTAINTY, DISPOSITION, INCIDENT_CLASS, INCIDENT_STATE, label, shanghaiTime } from "./labels.js";
import { openLiveStream } from "./live-stream.js";
import { fitProjection } from "./map-projection.js";
import { showError, startPage } from "./shell.js";

/** User units ≈ CSS pixels on a phone held upright, so labels stay legible without zooming. */
const MAP = { width: 480, height: 400, paddingPx: 36 };

/** @type {Map<string, any>} */
const incidents = new Map();
/** @type {any[]} */
let sensors = [];
/** @type {string | undefined} */
let selectedId;
/** @type {AudioContext | undefined} */
let audio;

const listEl = byId("incidents");
const detailEl = byId("detail");
const mapEl = byId("map");
const lostBanner = byId("connection-lost");
const fireBanner = byId("fire-alert");
const streamState = byId("stream-state");

/** @param {any} incident @returns {boolean} whether it was new to the page */
function merge(incident) {
  const known = incidents.get(incident.incidentId);
  if (known !== undefined && known.version >= incident.version) return false;
  incidents.set(incident.incidentId, incident);
  return known === undefined;
}

const newestFirst = () => [...incidents.values()].sort((a, b) => b.openedAtMs - a.openedAtMs || (a.incidentId < b.incidentId ? 1 : -1));

/** @param {readonly [string, string]} pair */
const zh = (pair) => pair[0];

function renderList() {
  const rows = newestFirst();
  listEl.setAttribute("aria-busy", "false");
  if (rows.length === 0) {
    replaceChildren(listEl, h("p", { class: "empty" }, bilingual("暂无警情", "No incidents")));
    return;
  }
  replaceChildren(
    listEl,
    h(
      "ol",
      { class: "incidents", id: "incident-list" },
      ...rows.map((i) =>
        h(
          "li",
          {
            class: `incident ${i.class} state-${i.state}${i.incidentId === selectedId ? " selected" : ""}${i.class === "fire" && i.state === "new" ? " urgent" : ""}`,
            "data-incident": i.incidentId,
            "data-state": i.state,
          },
          h(
            "button",
            { type: "button", class: "row", onclick: () => select(i.incidentId) },
            h("span", { class: "time" }, shanghaiTime(i.openedAtMs)),
            h("span", { class: "class" }, zh(label(INCIDENT_CLASS, i.class))),
            h("span", { class: "certainty" }, zh(label(CERTAINTY, i.certainty))),
            h("span", { class: "state" }, zh(label(INCIDENT_STATE, i.state))),
            h("span", { class: "sensors en" }, i.sensorIds.join(", ")),
          ),
        ),
      ),
    ),
  );
}

function renderMap() {
  const points = [...sensors.map((x) => ({ lon: x.lon, lat: x.lat })), ...[...incidents.values()].flatMap((i) => i.points)];
  const projection = fitProjection(points, MAP);
  if (projection === undefined) {
    replaceChildren(mapEl, h("p", { class: "empty" }, bilingual("没有带坐标的传感器", "No located sensors")));
    return;
  }
  const { project, bounds, gridLon, gridLat, pxPerKm, scaleKm } = projection;
  const grid = [
    ...gridLon.map((lon) => {
      const { x } = project({ lon, lat: bounds.minLat });
      // A label that would run off the right edge is left out; the line alone still marks the degree.
      const text = x < MAP.width - 70 ? s("text", { x: x + 3, y: MAP.height - 4 }, `${lon.toFixed(3)}°E`) : null;
      return s("g", { class: "grid" }, s("line", { x1: x, y1: 0, x2: x, y2: MAP.height }), text);
    }),
    ...gridLat.map((lat) => {
      const { y } = project({ lon: bounds.minLon, lat });
      return s("g", { class: "grid" }, s("line", { x1: 0, y1: y, x2: MAP.width, y2: y }), s("text", { x: 3, y: y - 3 }, `${lat.toFixed(3)}°N`));
    }),
  ];
  const sensorMarks = sensors.map((x) => {
    const p = project(x);
    return s("g", { class: `sensor mode-${x.mode}`, "data-sensor": x.sensorId }, s("circle", { cx: p.x, cy: p.y, r: 5 }), s("text", { x: p.x + 8, y: p.y + 4 }, x.name), s("title", {}, `${x.name} (${x.sensorId}) ${x.lat}, ${x.lon}`));
  });
  const open = newestFirst()
    .filter((i) => i.state !== "resolved")
    .reverse();
  const incidentMarks = open.flatMap((i) =>
    i.points.map((/** @type {{ lon: number, lat: number }} */ pt) => {
      const p = project(pt);
      const mark = s(
        "g",
        { class: `incident-mark ${i.class === "fire" ? "fire" : "technical"}${i.state === "new" ? " urgent" : ""}${i.incidentId === selectedId ? " selected" : ""}`, "data-incident": i.incidentId },
        s("circle", { cx: p.x, cy: p.y, r: 14 }),
        s("title", {}, `${zh(label(INCIDENT_CLASS, i.class))} ${zh(label(INCIDENT_STATE, i.state))} ${i.incidentId}`),
      );
      mark.addEventListener("click", () => select(i.incidentId));
      return mark;
    }),
  );
  const barX = MAP.width - 20 - scaleKm * pxPerKm;
  const scale = s(
    "g",
    { class: "scale" },
    s("line", { x1: barX, y1: 20, x2: MAP.width - 20, y2: 20 }),
    s("text", { x: barX, y: 14 }, scaleKm >= 1 ? `${scaleKm} km` : `${Math.round(scaleKm * 1000)} m`),
  );
  replaceChildren(mapEl, s("svg", { viewBox: `0 0 ${MAP.width} ${MAP.height}`, role: "img", "aria-label": "incident map", id: "map-svg" }, ...grid, ...sensorMarks, ...incidentMarks, scale));
}

/** @param {string} incidentId */
function select(incidentId) {
  selectedId = incidentId;
  renderAll();
}

function renderDetail() {
  const i = selectedId === undefined ? undefined : incidents.get(selectedId);
  if (i === undefined) return;
  const actions = nextActions(i);
  const assignee = h("input", { id: "assignee", name: "assignee", placeholder: "姓名 / name", autocomplete: "off" });
  const disposition = h("select", { id: "disposition" }, ...allowedDispositions(i).map((d) => h("option", { value: d }, label(DISPOSITION, d).join(" "))));
  const message = h("p", { id: "action-message", class: "message", role: "status" });
  const buttons = actions.map((action) =>
    h(
      "button",
      { type: "button", class: action === "acknowledge" || action === "confirm" || action === "dispatch" ? "primary" : "quiet", "data-action": action, onclick: () => void transition(i, action, assignee, disposition, message) },
      bilingual(...label(ACTION, action)),
    ),
  );
  const field = (/** @type {string} */ zhText, /** @type {string} */ en, /** @type {unknown} */ value) =>
    h("div", { class: "field" }, h("dt", null, bilingual(zhText, en)), h("dd", null, value === undefined || value === null || value === "" ? "—" : String(value)));
  replaceChildren(
    detailEl,
    h(
      "div",
      { "data-incident": i.incidentId, id: "incident-detail" },
      h("p", { class: `headline ${i.class}` }, `${zh(label(INCIDENT_CLASS, i.class))} · `, h("span", { id: "detail-state", "data-state": i.state }, zh(label(INCIDENT_STATE, i.state))), ` · ${zh(label(CERTAINTY, i.certainty))}`),
      h(
        "dl",
        null,
        field("编号", "Id", i.incidentId),
        field("发现", "First observed", shanghaiTime(i.firstObservedAtMs)),
        field("传感器", "Sensors", i.sensorIds.join(", ")),
        field("未登记", "Unregistered", i.unregisteredSensorIds.join(", ")),
        field("网格员", "Grid worker", i.gridWorker),
        field("出警民警", "Officer", i.officer),
        field("结论", "Disposition", i.disposition === undefined ? undefined : zh(label(DISPOSITION, i.disposition))),
        field("屏蔽", "Muted by", i.mutedBy),
      ),
      actions.some((a) => NEEDS_ASSIGNEE.includes(a)) ? h("label", { for: "assignee" }, bilingual("网格员/民警", "Grid worker / officer"), assignee) : null,
      actions.includes("resolve") ? h("label", { for: "disposition" }, bilingual("结案结论", "Disposition"), disposition) : null,
      h("div", { class: "buttons", id: "actions" }, ...buttons),
      message,
    ),
  );
}

/**
 * @param {any} incident
 * @param {string} action
 * @param {HTMLElement} assigneeInput
 * @param {HTMLElement} dispositionSelect
 * @param {HTMLElement} message
 */
async function transition(incident, action, assigneeInput, dispositionSelect, message) {
  /** @type {Record<string, string>} */
  const body = { action };
  if (NEEDS_ASSIGNEE.includes(action)) {
    const name = /** @type {HTMLInputElement} */ (assigneeInput).value.trim();
    if (name === "") {
      message.textContent = "请填写姓名 / name the person first";
      message.className = "message error";
      assigneeInput.focus();
      return;
    }
    body.assignee = name;
  }
  if (action === "resolve") body.disposition = /** @type {HTMLSelectElement} */ (dispositionSelect).value;
  message.textContent = "提交中… / sending…";
  message.className = "message";
  try {
    const answer = await api("POST", `/alerts/incidents/${encodeURIComponent(incident.incidentId)}/transitions`, body);
    merge(answer.incident);
    quietFireAlertIfHandled();
    renderAll();
  } catch (error) {
    message.textContent = error instanceof ApiError ? `${error.status} ${error.code}: ${error.detail}` : String(error);
    message.className = "message error";
  }
}

function renderAll() {
  renderList();
  renderMap();
  renderDetail();
}

/** A short two-tone siren from the Web Audio API (no sound file: the CSP and offline use both prefer none). */
function beep() {
  if (audio === undefined || audio.state !== "running") return;
  const now = audio.currentTime;
  for (let k = 0; k < 3; k++) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = k % 2 === 0 ? 880 : 660;
    gain.gain.value = 0.2;
    osc.connect(gain).connect(audio.destination);
    osc.start(now + k * 0.35);
    osc.stop(now + k * 0.35 + 0.3);
  }
}

/** @param {any} incident */
function raiseFireAlert(incident) {
  const where = incident.sensorIds.map((/** @type {string} */ id) => sensors.find((x) => x.sensorId === id)?.name ?? id).join("、");
  replaceChildren(
    fireBanner,
    h("strong", null, "新火情！"),
    h("span", { class: "en" }, " New fire incident "),
    `${where} · ${shanghaiTime(incident.firstObservedAtMs)} `,
    h("button", { type: "button", class: "quiet", onclick: () => select(incident.incidentId) }, bilingual("查看", "Show")),
  );
  fireBanner.hidden = false;
  fireBanner.dataset.incident = incident.incidentId;
  document.title = "🔥 新火情 · 指挥中心";
  selectedId ??= incident.incidentId;
  beep();
  navigator.vibrate?.([300, 100, 300]);
}

function quietFireAlertIfHandled() {
  const stillNew = [...incidents.values()].some((i) => i.class === "fire" && i.state === "new");
  if (!stillNew) {
    fireBanner.hidden = true;
    document.title = "指挥中心 · agri-edge";
  }
}

/** @param {"live" | "lost"} status */
function setStatus(status) {
  lostBanner.hidden = status === "live";
  streamState.textContent = status === "live" ? "实时 live" : "中断 offline";
  streamState.className = `pill ${status}`;
  document.body.dataset.stream = status;
}

async function loadIncidents() {
  const answer = await api("GET", "/alerts/incidents?limit=200");
  for (const incident of answer.incidents) merge(incident);
  renderAll();
}

byId("sound-toggle").addEventListener("click", () => {
  audio ??= new AudioContext();
  void audio.resume().then(beep);
});

async function start() {
  await startPage();
  try {
    sensors = (await api("GET", "/alerts/sensors")).sensors;
  } catch (error) {
    showError(mapEl, error);
  }
  let opened = false;
  openLiveStream("/alerts/stream", {
    onStatus(status) {
      setStatus(status);
      if (status === "live" && !opened) {
        opened = true;
        loadIncidents().catch((error) => showError(listEl, error));
      }
    },
    onResync: () => void loadIncidents().catch((error) => showError(listEl, error)),
    // The stream was refused rather than dropped: back to the login page if the session is gone.
    onGaveUp: () =>
      void me()
        .then((principal) => {
          if (principal === undefined) location.replace("index.html");
        })
        .catch(() => undefined),
    onEvent(kind, data) {
      if (data.incident === undefined) {
        if (kind === "delivery.undelivered") streamState.title = `undelivered: ${data.incidentId} → ${data.receiverId}`;
        return;
      }
      const isNew = merge(data.incident);
      if (isNew && data.incident.class === "fire" && data.incident.state === "new") raiseFireAlert(data.incident);
      renderAll();
    },
  });
}

void start();
