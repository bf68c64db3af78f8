// The command room's live feed: one EventSource on /alerts/stream. The browser reconnects by itself after a drop
// and sends Last-Event-ID, and the cloud replays everything after it (cloud/alerts/routes.ts). Two cases the
// browser does not cover are handled here: a reconnect that got an error answer (EventSource gives up: readyState
// CLOSED) is retried by a new EventSource with ?after=<last id>, and a drop before any event arrived (no id to
// resume from) asks the page to reload its list, since the stream cannot replay from an unknown point.

const EVENT_KINDS = ["incident.opened", "incident.updated", "incident.escalated", "delivery.undelivered"];

/**
 * @typedef {{
 *   onEvent: (kind: string, data: any, id: number) => void,
 *   onStatus: (status: "live" | "lost") => void,
 *   onResync: () => void,
 *   onGaveUp?: () => void,
 *   retryMs?: number,
 * }} StreamHandlers
 */

/**
 * @param {string} url
 * @param {StreamHandlers} handlers
 * @returns {{ close(): void, lastEventId(): number | undefined }}
 */
export function openLiveStream(url, handlers) {
  /** @type {number | undefined} */
  let lastId;
  /** @type {EventSource | undefined} */
  let source;
  let lostSinceOpen = false;
  let closed = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let retryTimer;

  const connect = () => {
    const target = lastId === undefined ? url : `${url}${url.includes("?") ? "&" : "?"}after=${lastId}`;
    const es = new EventSource(target);
    source = es;
    es.addEventListener("open", () => {
      handlers.onStatus("live");
      if (lostSinceOpen && lastId === undefined) handlers.onResync();
      lostSinceOpen = false;
    });
    es.addEventListener("error", () => {
      lostSinceOpen = true;
      handlers.onStatus("lost");
      if (es.readyState === EventSource.CLOSED && !closed) {
        es.close();
        // An error answer (a 401 after the session expired, a 5xx): the page may want to check the login.
        handlers.onGaveUp?.();
        clearTimeout(retryTimer);
        retryTimer = setTimeout(connect, handlers.retryMs ?? 3000);
      }
    });
    for (const kind of EVENT_KINDS) {
      es.addEventListener(kind, (event) => {
        const message = /** @type {MessageEvent<string>} */ (event);
        const id = Number(message.lastEventId);
        if (Number.isSafeInteger(id) && (lastId === undefined || id > lastId)) lastId = id;
        let data;
        try {
          data = JSON.parse(message.data);
        } catch {
          return;
        }
        handlers.onEvent(kind, data, id);
      });
    }
  };
  connect();
  return {
    close() {
      closed = true;
      clearTimeout(retryTimer);
      source?.close();
    },
    lastEventId: () => lastId,
  };
}
