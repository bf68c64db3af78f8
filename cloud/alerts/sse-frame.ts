// Server-Sent Events framing (WHATWG HTML §9.2 "Server-sent events"): one event is `id:`, `event:` and one `data:`
// line per line of its payload, ended by a blank line. The id is the stream log's sequence, so a client that
// reconnects sends Last-Event-ID and gets everything after it. Pure.

/** HTML §9.2.6: a field value runs to the end of the line, so a CR or LF inside a value would end it early. */
const oneLine = (s: string): string => s.replace(/[\r\n]/g, " ");

export function sseFrame(event: { readonly id: number; readonly event: string; readonly data: string }): string {
  const data = event.data.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join("");
  return `id: ${event.id}\nevent: ${oneLine(event.event)}\n${data}\n`;
}

/** A comment line keeps proxies and the browser from timing the stream out; clients ignore it. */
export const sseComment = (text: string): string => `: ${oneLine(text)}\n\n`;

/** Tells EventSource how long to wait before reconnecting. */
export const sseRetry = (retryMs: number): string => `retry: ${Math.max(0, Math.trunc(retryMs))}\n\n`;

/** Last-Event-ID as the stream log's sequence; anything else (absent, garbage, negative) means "from now". */
export function parseLastEventId(header: string | readonly string[] | undefined): number | undefined {
  const value: string | undefined = typeof header === "string" || header === undefined ? header : header[0];
  if (typeof value !== "string" || !/^\d{1,15}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}
