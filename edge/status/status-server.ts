// The gateway's local status page for the electrician in the field: GET /status returns the agent's snapshot as
// JSON (per device: last reading, errors, online state, relay, credit left; outbox depth; broker link; per-bus
// counters). Loopback by default; read-only.

import http from "node:http";
import type { AddressInfo } from "node:net";

export interface StatusServerHandle {
  readonly port: number;
  close(): Promise<void>;
}

export async function startStatusServer(host: string, port: number, snapshot: () => Record<string, unknown>): Promise<StatusServerHandle> {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://edge").pathname;
    if (req.method !== "GET" || (path !== "/status" && path !== "/health")) {
      res.writeHead(404, { "content-type": "application/problem+json" });
      res.end(JSON.stringify({ type: "about:blank", title: "Not found", status: 404, detail: "GET /status or /health" }));
      return;
    }
    try {
      const body = path === "/health" ? { ok: true } : snapshot();
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    } catch (err) {
      res.writeHead(500, { "content-type": "application/problem+json" });
      res.end(JSON.stringify({ type: "about:blank", title: "Status unavailable", status: 500, detail: (err as Error).message }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Render a status snapshot as the table `agri-edge status` prints. */
export function renderStatus(s: Record<string, unknown>): string {
  const lines: string[] = [];
  const uplink = s.uplink as { connected?: boolean; lastError?: string } | undefined;
  const outbox = s.outbox as { count?: number; bytes?: number; byClass?: Record<string, { count: number }> } | undefined;
  lines.push(`gateway ${String(s.gatewayId)}  version ${String(s.version)}  broker ${uplink?.connected ? "connected" : `DISCONNECTED${uplink?.lastError ? ` (${uplink.lastError})` : ""}`}`);
  lines.push(`outbox ${outbox?.count ?? 0} messages, ${Math.round((outbox?.bytes ?? 0) / 1024)} KiB` + (outbox?.byClass ? `  (${Object.entries(outbox.byClass).map(([k, v]) => `${k} ${v.count}`).join(", ")})` : ""));
  for (const b of (s.buses as Record<string, unknown>[] | undefined) ?? []) {
    lines.push(`bus ${String(b.id)} ${String(b.transport)} ${b.open ? "open" : "closed"}: ${String(b.transactions)} transactions, ${String(b.errors)} errors (${String(b.timeouts)} timeouts)`);
  }
  lines.push("");
  lines.push(["device", "bus/unit", "state", "relay", "credit left", "last reading", "last error"].join(" | "));
  for (const d of (s.devices as Record<string, unknown>[] | undefined) ?? []) {
    const credit = d.creditLeftWh === undefined ? "" : `${(Number(d.creditLeftWh) / 1000).toFixed(1)} kWh`;
    const readings = Object.entries((d.readings as Record<string, number> | undefined) ?? {})
      .slice(0, 3)
      .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`)
      .join(" ");
    lines.push([d.id, `${String(d.bus)}/${String(d.unit)}`, d.online ? "online" : "OFFLINE", d.relay ?? "", credit, readings, d.lastError ?? ""].map(String).join(" | "));
  }
  return `${lines.join("\n")}\n`;
}
