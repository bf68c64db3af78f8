// A TCP proxy between the browser and the cloud that a test can cut and restore: the real way a command room loses
// its stream (a village uplink drops), rather than anything the page or the server is told about. While cut, every
// open connection is destroyed and new ones are accepted and dropped at once, so the browser sees network errors.

import { createServer, type Server, type Socket } from "node:net";
import { connect } from "node:net";

export interface CuttableProxy {
  readonly port: number;
  cut(): void;
  restore(): void;
  /** Connections accepted since start (a reconnect shows here). */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startCuttableProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<CuttableProxy> {
  const sockets = new Set<Socket>();
  let isCut = false;
  let accepted = 0;
  const server: Server = createServer((client) => {
    accepted++;
    if (isCut) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no TCP address");
  return {
    port: address.port,
    get accepted() {
      return accepted;
    },
    cut() {
      isCut = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      isCut = false;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
