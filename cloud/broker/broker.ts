// The cloud's embedded MQTT broker: aedes behind a TCP (or TLS) listener, with the pure policy in policy.ts wired
// into aedes's authenticate / authorizePublish / authorizeSubscribe hooks, secrets checked with scrypt, a packet
// size guard in front of the MQTT parser, a per-address connection-rate guard in front of everything, TCP_NODELAY
// on every accepted socket, and counters for the status page.
//
// With handOffUplinks, a gateway's PUBLISH that the ACL allowed is handed to the cloud's ingest (attachUplinks)
// before aedes goes on: aedes's authorizePublish runs before it PUBACKs a QoS 1 PUBLISH or forwards anything
// (lib/handlers/publish.js), so answering the hook only once the ingest has committed the message makes the
// gateway's PUBACK mean "stored in the cloud" (invariant 8), and a refusal closes the gateway's connection, so that
// it sends the message again (MQTT 3.1.1 has no negative PUBACK). Subscribers then see only committed uplinks.

import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from "aedes";
import type { Logger } from "pino";
import { z } from "zod";
import { AgriError } from "../../protocols/errors.js";
import { issuesToText } from "../../protocols/validation.js";
import { ConnectRateLimiter, peerKey } from "./connect-rate-limit.js";
import { guardFrames, type FrameViolation } from "./frame-guard-stream.js";
import {
  BROKER_DENY,
  CONNACK_REFUSAL,
  admitClient,
  authorizePublish,
  authorizeSubscribe,
  lookupUser,
  stillRegistered,
  type ConnackRefusal,
  type Decision,
  type DenyReason,
  type Identity,
  type RegistrySnapshot,
} from "./policy.js";
import { SecretHashError, hashSecret, verifySecret } from "./secrets.js";
import { boundSessionQueues, type OutgoingQueuePersistence, type SessionQueueBound, type SessionQueueBoundOptions } from "./session-queue-bound.js";

/** The logger port: pino's, narrowed to what the broker calls. */
export type BrokerLog = Pick<Logger, "info" | "warn" | "error">;

export interface BrokerTlsOptions {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA bundle for client certificates; with requestCert, only clients with a certificate it signed get in. */
  readonly caFile?: string | undefined;
  readonly requestCert?: boolean | undefined;
}

export interface BrokerOptions {
  readonly host: string;
  /** 0 picks a free port; the chosen one is RunningBroker.port. */
  readonly port: number;
  /** Called on every login, publish and subscribe: return a cached snapshot, not a database query. */
  readonly registry: () => RegistrySnapshot;
  /** Whole MQTT packet (fixed header included). A client declaring a larger one is disconnected at once. */
  readonly maxPacketBytes: number;
  /** Publish payload limit the policy applies; defaults to maxPacketBytes. */
  readonly maxPayloadBytes?: number | undefined;
  readonly maxConnectionsPerIpPerMinute: number;
  readonly log: BrokerLog;
  readonly tls?: BrokerTlsOptions | undefined;
  /** Time a socket may take to send CONNECT (aedes default 30 s). */
  readonly connectTimeoutMs?: number | undefined;
  /** Clock for the connection-rate guard. */
  readonly now?: (() => number) | undefined;
  /**
   * Bound what aedes queues for these persistent sessions (taps of the uplinks): past maxMessages unacknowledged,
   * their copies are dropped and counted (session-queue-bound.ts). Unbounded when absent.
   */
  readonly boundedSessions?: SessionQueueBoundOptions | undefined;
  /**
   * Hand every gateway publish the ACL allowed to the handler given to attachUplinks, and complete it (PUBACK,
   * forwarding) only when the handler says it is stored. Publishes arriving before attachUplinks wait for it.
   */
  readonly handOffUplinks?: boolean | undefined;
}

/** A gateway's PUBLISH the ACL allowed, handed to the ingest. */
export interface GatewayUplink {
  readonly gatewayId: string;
  readonly topic: string;
  readonly payload: Buffer;
  /** The aedes client: one per MQTT connection. */
  readonly connection: object;
}

/** done(null): aedes acknowledges and forwards the publish; done(error): it closes the gateway's connection instead. */
export type UplinkHandler = (uplink: GatewayUplink, done: (error: Error | null) => void) => void;

export interface BrokerCounters {
  /** Sockets accepted past the rate guard. */
  sockets: number;
  /** MQTT sessions that authenticated and were admitted. */
  connections: number;
  refusedAuth: number;
  deniedPublish: number;
  deniedSubscribe: number;
  oversized: number;
  /** Connections closed for a Remaining Length that is not a valid variable byte integer. */
  malformed: number;
  /** Sockets destroyed by the connection-rate guard before any MQTT. */
  floodRefused: number;
  /** Gateway publishes handed to the ingest (handOffUplinks), and those it refused: their connections were closed. */
  uplinksHandedOff: number;
  uplinksRefused: number;
}

export interface BrokerStatus extends BrokerCounters {
  connectedClients: number;
}

export interface RunningBroker {
  readonly port: number;
  readonly aedes: Aedes;
  readonly counters: Readonly<BrokerCounters>;
  /** Present when boundedSessions was given. */
  readonly sessionQueues: SessionQueueBound | undefined;
  /** With handOffUplinks: where gateway publishes go from now on (once; publishes that waited for it go first). */
  attachUplinks(handler: UplinkHandler): void;
  status(): BrokerStatus;
  close(): Promise<void>;
}

export class BrokerConfigError extends AgriError {
  constructor(message: string) {
    super("BROKER_CONFIG_INVALID", false, message);
  }
}

/** A client that has not finished its TLS handshake by then is dropped (Node's default is 120 s). */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** MQTT 3.1.1 §2.2.3: the largest Remaining Length, plus a 5-byte fixed header. */
const MQTT_MAX_PACKET_BYTES = 268_435_455 + 5;

const scalarOptionsSchema = z.object({
  host: z.string().min(1),
  port: z.number().int().min(0).max(65_535),
  // Below ~64 bytes a CONNECT with a gateway id, username and password could not get through.
  maxPacketBytes: z.number().int().min(64).max(MQTT_MAX_PACKET_BYTES),
  maxPayloadBytes: z.number().int().min(0).max(MQTT_MAX_PACKET_BYTES).optional(),
  maxConnectionsPerIpPerMinute: z.number().int().min(1),
  connectTimeoutMs: z.number().int().min(100).optional(),
  tls: z
    .object({ certFile: z.string().min(1), keyFile: z.string().min(1), caFile: z.string().min(1).optional(), requestCert: z.boolean().optional() })
    .optional(),
});

export async function startBroker(options: BrokerOptions): Promise<RunningBroker> {
  const parsed = scalarOptionsSchema.safeParse(options);
  if (!parsed.success) throw new BrokerConfigError(`broker options are invalid:\n${issuesToText(parsed.error.issues)}`);
  const { log, registry } = options;
  const now = options.now ?? Date.now;
  const limits = { maxPayloadBytes: options.maxPayloadBytes ?? options.maxPacketBytes };
  const counters: BrokerCounters = { sockets: 0, connections: 0, refusedAuth: 0, deniedPublish: 0, deniedSubscribe: 0, oversized: 0, malformed: 0, floodRefused: 0, uplinksHandedOff: 0, uplinksRefused: 0 };
  const identities = new WeakMap<Client, Identity>();
  const peers = new WeakMap<Client, string>();
  const rateLimiter = new ConnectRateLimiter(options.maxConnectionsPerIpPerMinute, 60_000);
  // Checked against when the username is unknown, so an unknown user costs the same scrypt time as a known one.
  const decoyHash = await hashSecret(randomBytes(16).toString("hex"));
  const tlsMaterial = parsed.data.tls === undefined ? undefined : await readTlsMaterial(parsed.data.tls);

  function snapshot(): RegistrySnapshot | undefined {
    try {
      return registry();
    } catch (error) {
      log.error({ err: error, reason: BROKER_DENY.REGISTRY_UNAVAILABLE }, "broker: registry snapshot failed");
      return undefined;
    }
  }

  function refuseLogin(client: Client, username: string | undefined, reason: DenyReason, returnCode: ConnackRefusal): AuthenticateError {
    counters.refusedAuth++;
    // The username is logged to trace a misconfigured gateway; the password never is.
    log.warn({ reason, returnCode, username: username ?? null, clientId: client.id, peer: peers.get(client) ?? null }, "broker: login refused");
    return Object.assign(new Error(reason), { returnCode });
  }

  async function login(client: Client, username: string | undefined, password: Buffer | undefined): Promise<AuthenticateError | Identity> {
    const before = snapshot();
    if (before === undefined) return refuseLogin(client, username, BROKER_DENY.REGISTRY_UNAVAILABLE, CONNACK_REFUSAL.SERVER_UNAVAILABLE);
    const lookup = lookupUser(before, username);
    let secretMatches: boolean;
    try {
      secretMatches = await verifySecret(password?.toString("utf8") ?? "", lookup.found ? lookup.secretHash : decoyHash);
    } catch (error) {
      if (!(error instanceof SecretHashError)) throw error;
      log.error({ username: username ?? null, problem: error.message }, "broker: stored secret hash is malformed");
      return refuseLogin(client, username, BROKER_DENY.SECRET_HASH_INVALID, CONNACK_REFUSAL.BAD_USERNAME_OR_PASSWORD);
    }
    if (!lookup.found) return refuseLogin(client, username, lookup.reason, lookup.returnCode);
    if (!secretMatches) return refuseLogin(client, username, BROKER_DENY.BAD_SECRET, CONNACK_REFUSAL.BAD_USERNAME_OR_PASSWORD);
    // The registry may have changed during the scrypt wait: admit against a fresh snapshot.
    const after = snapshot();
    if (after === undefined) return refuseLogin(client, username, BROKER_DENY.REGISTRY_UNAVAILABLE, CONNACK_REFUSAL.SERVER_UNAVAILABLE);
    const admission = admitClient(after, lookup.identity, client.id);
    if (!admission.allow) return refuseLogin(client, username, admission.reason, admission.returnCode);
    return lookup.identity;
  }

  // Publish and subscribe go through the same two checks: still registered, then the rule for the act itself.
  function decide(client: Client | null, act: (identity: Identity) => Decision): Decision {
    const identity = client === null ? undefined : identities.get(client);
    // client is null only for a will left by another, dead aedes instance (clustered persistence); we run one.
    if (identity === undefined) return { allow: false, reason: BROKER_DENY.NO_IDENTITY, detail: "no authenticated identity" };
    const current = snapshot();
    if (current === undefined) return { allow: false, reason: BROKER_DENY.REGISTRY_UNAVAILABLE, detail: "registry snapshot failed" };
    const registered = stillRegistered(current, identity);
    return registered.allow ? act(identity) : registered;
  }

  let uplinkHandler: UplinkHandler | undefined;
  // Publishes handed over before attachUplinks, or while closing: answered once there is a handler, or refused.
  let waitingForHandler: ((handler: UplinkHandler | undefined) => void)[] = [];
  let handOffClosed = false;
  // One warning per connection: the first refusal closes it, and what it had sent along is refused with it.
  const refusedConnections = new WeakSet<Client>();

  function handOff(client: Client, identity: Extract<Identity, { kind: "gateway" }>, packet: PublishPacket, callback: (error?: Error | null) => void): void {
    counters.uplinksHandedOff++;
    const uplink: GatewayUplink = {
      gatewayId: identity.gatewayId,
      topic: packet.topic,
      payload: typeof packet.payload === "string" ? Buffer.from(packet.payload, "utf8") : packet.payload,
      connection: client,
    };
    const done = (error: Error | null): void => {
      if (error === null) return callback(null);
      counters.uplinksRefused++;
      if (refusedConnections.has(client)) return callback(error);
      refusedConnections.add(client);
      log.warn({ clientId: client.id, topic: packet.topic, problem: error.message }, "broker: uplink not stored, connection closed so the gateway sends it again");
      callback(error);
    };
    const run = (handler: UplinkHandler | undefined): void => {
      if (handler === undefined) return done(new Error("broker closing: uplink not stored"));
      handler(uplink, done);
    };
    if (uplinkHandler !== undefined || handOffClosed) run(uplinkHandler);
    else waitingForHandler.push(run);
  }

  const aedes = await Aedes.createBroker({
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeout: options.connectTimeoutMs }),
    authenticate(client, username, password, done) {
      login(client, username, password).then(
        (result) => {
          if (result instanceof Error) return done(result, false);
          identities.set(client, result);
          done(null, true);
        },
        (error: unknown) => {
          log.error({ err: error, clientId: client.id }, "broker: authentication failed unexpectedly");
          done(Object.assign(new Error("authentication failed"), { returnCode: CONNACK_REFUSAL.SERVER_UNAVAILABLE }), false);
        },
      );
    },
    authorizePublish(client, packet: PublishPacket, callback) {
      const publish = { topic: packet.topic, retain: packet.retain, payloadBytes: Buffer.byteLength(packet.payload) };
      const decision = decide(client, (identity) => authorizePublish(identity, publish, limits));
      if (decision.allow) {
        const identity = client === null ? undefined : identities.get(client);
        if (options.handOffUplinks === true && client !== null && identity?.kind === "gateway") return handOff(client, identity, packet, callback);
        return callback(null);
      }
      counters.deniedPublish++;
      log.warn({ reason: decision.reason, detail: decision.detail, clientId: client?.id ?? null, topic: packet.topic, retain: packet.retain }, "broker: publish denied");
      // MQTT 3.1.1 has no negative PUBACK; aedes closes the connection on this error (MQTT-3.3.5-2).
      callback(new Error(decision.reason));
    },
    authorizeSubscribe(client, subscription: Subscription, callback) {
      const decision = decide(client, (identity) => authorizeSubscribe(identity, subscription.topic));
      if (decision.allow) return callback(null, subscription);
      counters.deniedSubscribe++;
      log.warn({ reason: decision.reason, detail: decision.detail, clientId: client.id, filter: subscription.topic }, "broker: subscribe denied");
      // A null subscription makes aedes answer this filter with SUBACK 0x80 (MQTT 3.1.1 §3.9.3) and keep the client.
      callback(null, null);
    },
  });

  // aedes's `persistence` is its documented pluggable store; without one it is the in-memory aedes-persistence.
  const sessionQueues = options.boundedSessions === undefined ? undefined : boundSessionQueues((aedes as unknown as { persistence: OutgoingQueuePersistence }).persistence, options.boundedSessions);

  aedes.on("clientReady", (client) => {
    counters.connections++;
    const identity = identities.get(client);
    log.info({ clientId: client.id, kind: identity?.kind ?? null, peer: peers.get(client) ?? null }, "broker: client connected");
  });

  const openSockets = new Set<net.Socket>();

  // Runs on every raw TCP socket, before TLS or MQTT: the cheapest place to turn a flood away.
  function admitSocket(socket: net.Socket): boolean {
    const peer = peerKey(socket.remoteAddress);
    const verdict = rateLimiter.admit(peer, now());
    if (!verdict.admitted) {
      counters.floodRefused++;
      if (verdict.refusedInARow === 1) {
        log.warn({ reason: BROKER_DENY.CONNECTION_RATE, peer, limitPerMinute: options.maxConnectionsPerIpPerMinute }, "broker: connection rate exceeded");
      }
      socket.destroy();
      return false;
    }
    counters.sockets++;
    openSockets.add(socket);
    socket.once("close", () => openSockets.delete(socket));
    // A reset from a peer must not surface as an unhandled 'error'; aedes has its own listener once it has the socket.
    socket.on("error", () => undefined);
    return true;
  }

  function handOver(socket: Duplex, peer: string): void {
    const guarded = guardFrames(socket, options.maxPacketBytes, (violation: FrameViolation) => {
      if (violation.problem === "too-large") counters.oversized++;
      else counters.malformed++;
      log.warn(
        {
          reason: violation.problem === "too-large" ? BROKER_DENY.PACKET_TOO_LARGE : BROKER_DENY.MALFORMED_PACKET,
          problem: violation.problem,
          packetBytes: violation.problem === "too-large" ? violation.packetBytes : null,
          maxPacketBytes: options.maxPacketBytes,
          // The callback runs on a later 'data' event, by which time `client` is set.
          clientId: client.id,
          peer,
        },
        "broker: packet refused before parsing, connection closed",
      );
    });
    const client = aedes.handle(guarded);
    peers.set(client, peer);
  }

  let deliver: (socket: net.Socket) => void = (socket) => handOver(socket, peerKey(socket.remoteAddress));
  if (tlsMaterial !== undefined) {
    const requestCert = parsed.data.tls?.requestCert ?? false;
    const tlsServer = tls.createServer({ ...tlsMaterial, requestCert, rejectUnauthorized: requestCert, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS });
    tlsServer.on("secureConnection", (socket: tls.TLSSocket) => handOver(socket, peerKey(socket.remoteAddress)));
    tlsServer.on("tlsClientError", (error: Error, socket: tls.TLSSocket) => {
      log.warn({ problem: error.message, peer: peerKey(socket.remoteAddress) }, "broker: TLS handshake failed");
    });
    // The TLS server never listens itself: the TCP listener below hands it each socket that passed the rate guard,
    // through its 'connection' event (Node's tls docs: emitted by users to inject connections), so a refused socket
    // costs no handshake.
    deliver = (socket) => void tlsServer.emit("connection", socket);
  }

  // TCP_NODELAY on every accepted socket (the TLS ones ride on these): without it each QoS 1 exchange can wait on
  // Linux's 40 ms delayed ACK (reference/performance-notes.md, MQTT).
  const server = net.createServer({ noDelay: true }, (socket) => {
    if (admitSocket(socket)) deliver(socket);
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port, options.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw error;
  }
  server.on("error", (error: Error) => log.error({ err: error }, "broker: listener error"));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  log.info({ host: options.host, port, tls: tlsMaterial !== undefined, maxPacketBytes: options.maxPacketBytes }, "broker: listening");

  let closing: Promise<void> | undefined;
  return {
    port,
    aedes,
    counters,
    sessionQueues,
    attachUplinks(handler) {
      if (uplinkHandler !== undefined) throw new BrokerConfigError("attachUplinks: an uplink handler is attached already");
      if (options.handOffUplinks !== true) throw new BrokerConfigError("attachUplinks needs the broker started with handOffUplinks");
      uplinkHandler = handler;
      for (const run of waitingForHandler.splice(0)) run(handler);
    },
    status: () => ({ ...counters, connectedClients: aedes.connectedClients }),
    close() {
      closing ??= (async () => {
        handOffClosed = true;
        const waited = waitingForHandler;
        waitingForHandler = [];
        for (const run of waited) run(undefined);
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        // Sockets that never completed CONNECT (or a TLS handshake) are not aedes clients yet and would hold
        // server.close open until aedes's connect timeout.
        for (const socket of openSockets) socket.destroy();
        await serverClosed;
      })();
      return closing;
    },
  };
}

async function readTlsMaterial(files: BrokerTlsOptions): Promise<{ cert: Buffer; key: Buffer; ca?: Buffer }> {
  const [cert, key, ca] = await Promise.all([readFile(files.certFile), readFile(files.keyFile), files.caFile === undefined ? undefined : readFile(files.caFile)]);
  return ca === undefined ? { cert, key } : { cert, key, ca };
}
