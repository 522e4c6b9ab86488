/**
 * The embedded MQTT broker: aedes on a plain TCP server. It is only a broker;
 * the hub talks to it as an ordinary mqtt.js client (mqtt-link.ts), exactly as
 * it talks to an external one, so there is one code path (docs/architecture.md "MQTT").
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import { HUB_MAX_PACKET_BYTES } from '@fleetcast/protocol/channel-limits.js';
import { makeEmitterIterative, type EmitterStats } from './broker-emitter.js';
import { hubError } from './errors.js';
import { indexRetained } from './retained-index.js';

export interface EmbeddedBroker {
  readonly url: string;
  readonly port: number;
  /** The aedes instance, for observers (tests count the publishes it routes). */
  readonly aedes: Aedes;
  /** The current emitter's storm figures (hub/broker-emitter.ts). */
  readonly emitter: EmitterStats;
  /** Broker faults contained and restarts done since start. */
  readonly faults: BrokerFaultStats;
  /** Call `fn` each time the broker was restarted after a fault (its retained messages are gone); returns the unsubscribe. */
  onRestart(fn: () => void): () => void;
  close(): Promise<void>;
}

export interface BrokerFaultStats { faults: number; restarts: number }

/** What access control (hub/broker-auth.ts) gives the broker back: the largest packet each client may send. */
export interface BrokerSetup { packetLimit?: (client: Client) => number }

interface PacketParser { packet: { length: number; cmd: string }; _parseLength(): boolean; _emitError(e: Error): void }

/**
 * Cut a client whose next packet announces more bytes than it may send, as
 * soon as the packet's length field is read: the payload is never buffered
 * (aedes' authorizePublish only sees a packet once all of it has been read,
 * and neither aedes nor mqtt-packet's parser has a maximum packet size).
 * This reaches into aedes' per-client mqtt-packet parser (aedes 1.x
 * `client._parser`); test/integration/mqtt-limits.test.ts fails if that moves.
 */
function limitPackets(client: Client, limit: (client: Client) => number): void {
  const parser = (client as unknown as { _parser?: PacketParser })._parser;
  if (!parser || typeof parser._parseLength !== 'function') throw new Error('aedes client has no mqtt-packet parser to limit (aedes upgraded?)');
  const parseLength = parser._parseLength;
  parser._parseLength = function (this: PacketParser) {
    const done = parseLength.call(this);
    const max = limit(client);
    if (done && this.packet.length > max) {
      this._emitError(new Error(`${this.packet.cmd} packet of ${this.packet.length} bytes is over this client's limit of ${max}`));
      return false;
    }
    return done;
  };
}

/** The embedded broker's accept queue (Node's default is 511). */
const LISTEN_BACKLOG = 4096;

/** Stack frames of the broker's own code: aedes, its emitter and persistence, and the hub's hooks into them. */
const BROKER_FRAME = /node_modules[\\/](?:aedes|aedes-persistence|aedes-packet|mqemitter|fastparallel|qlobber)[\\/]|hub[\\/](?:broker|broker-auth|broker-emitter|retained-index)\.[jt]s/;

/** True when an uncaught error was thrown by the broker (its stack runs through the broker's code), not by the rest of the hub. */
export function isBrokerFault(err: unknown): boolean {
  return err instanceof Error && typeof err.stack === 'string' && BROKER_FRAME.test(err.stack);
}

/**
 * Test-only hook (test/integration/broker-fault.test.ts): with FLEETCAST_TEST_BROKER_FAULT=<topic>, every
 * message routed on that topic throws inside the broker's emitter, as a fault in aedes would, so the test
 * can check the real hub process contains it. Unset, it costs one env lookup per broker start.
 */
function testFault(aedes: Aedes): void {
  const topic = process.env.FLEETCAST_TEST_BROKER_FAULT;
  if (!topic) return;
  (aedes as unknown as { mq: { on(t: string, fn: () => void): void } }).mq.on(topic, () => { throw new Error(`test fault injected on ${topic}`); });
}

/** Every open embedded broker's fault handler; one process-wide listener serves them all. */
const faultHandlers = new Set<(err: Error) => void>();
function onUncaught(err: Error): void {
  if (!isBrokerFault(err)) {
    // Not the broker's: the process ends as it would without this listener, unless another listener handles it.
    if (process.listenerCount('uncaughtException') === 1) throw err;
    return;
  }
  for (const fn of faultHandlers) fn(err);
}
function watchFaults(fn: (err: Error) => void): () => void {
  if (faultHandlers.size === 0) process.on('uncaughtException', onUncaught);
  faultHandlers.add(fn);
  return () => { faultHandlers.delete(fn); if (faultHandlers.size === 0) process.off('uncaughtException', onUncaught); };
}

interface Listening { aedes: Aedes; server: Server; sockets: Set<Socket>; emitter: EmitterStats }

export interface BrokerOptions {
  host: string;
  port: number;
  tls?: { cert: string; key: string };
  setup?: (aedes: Aedes) => BrokerSetup | void;
  logger?: Logger;
  /** Messages routed per event-loop turn (hub/broker-emitter.ts). */
  emitsPerTick?: number;
  /** How long a client's socket may stay full before aedes disconnects it (aedes' drainTimeout; default its 60 s, 0: never). */
  drainTimeoutMs?: number;
}

async function listen(opts: BrokerOptions, tls: { cert: Buffer; key: Buffer } | undefined, port: number): Promise<Listening> {
  const aedes = await Aedes.createBroker(opts.drainTimeoutMs !== undefined ? { drainTimeout: opts.drainTimeoutMs } : {});
  // A reconnect storm must not recurse once per queued message (hub/broker-emitter.ts).
  let emitter: EmitterStats;
  try { emitter = makeEmitterIterative(aedes, opts.emitsPerTick); } catch (e) { aedes.close(); throw e; }
  testFault(aedes);
  // SUBSCRIBE to a filter with nothing retained under it (each agent's chunk filter) skips aedes' scan of every retained message.
  indexRetained(aedes);
  // Access control (hub/broker-auth.ts) is installed before the first client can connect.
  const packetLimit = opts.setup?.(aedes)?.packetLimit ?? (() => HUB_MAX_PACKET_BYTES);
  const handle = aedes.handle;
  aedes.handle = (conn, req) => {
    const client = handle(conn, req);
    // Fail closed: a client whose packets cannot be limited is not served (an aedes upgrade would show here and in the tests).
    try { limitPackets(client, packetLimit); } catch { conn.destroy(); }
    return client;
  };
  let server: Server;
  try { server = tls ? createTlsServer(tls, aedes.handle as (s: Socket) => void) as unknown as Server : createServer(aedes.handle); } catch (e) {
    aedes.close();
    throw hubError('HUB_ERR_LISTEN', `the broker TLS certificate ${opts.tls?.cert} and key ${opts.tls?.key} are not a usable PEM certificate and matching private key: ${(e as Error).message}`);
  }
  const sockets = new Set<Socket>();
  // No Nagle delay: MQTT's control packets are small and each waits for an answer (SUBACK, PUBACK, a
  // device's chunk request on its way to the hub's client). With Nagle a small write that follows one
  // not yet acknowledged sat until the peer's delayed ACK (~40 ms on Linux): an agent's subscribe before
  // its chunk request took ~80 ms on loopback. Chunks are full segments either way.
  server.on('connection', (s: Socket) => { s.setNoDelay(true); });
  server.on(tls ? 'secureConnection' : 'connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  if (tls) server.on('tlsClientError', () => {});
  // A client that misbehaves is aedes' problem to disconnect; it must never take the hub down.
  aedes.on('clientError', () => {});
  aedes.on('connectionError', () => {});
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      aedes.close();
      reject(hubError('HUB_ERR_LISTEN', `embedded broker cannot listen on ${opts.host}:${port}: ${e.code ?? e.message}; choose another --mqtt-port`));
    };
    server.once('error', onError);
    // A reconnect storm brings thousands of connections at once: a deep accept queue (capped by the kernel's
    // somaxconn) keeps them from being dropped and retried while the broker accepts the ones before.
    server.listen({ port, host: opts.host, backlog: LISTEN_BACKLOG }, () => { server.off('error', onError); resolve(); });
  });
  return { aedes, server, sockets, emitter };
}

async function shut(l: Listening): Promise<void> {
  await new Promise<void>((r) => l.aedes.close(() => r()));
  // aedes closes its clients; sockets still half-open are ended so server.close can finish.
  for (const s of l.sockets) s.destroy();
  await new Promise<void>((r) => l.server.close(() => r()));
}

export async function startBroker(opts: BrokerOptions): Promise<EmbeddedBroker> {
  let tls: { cert: Buffer; key: Buffer } | undefined;
  if (opts.tls) {
    try { tls = { cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }; } catch (e) {
      throw hubError('HUB_ERR_LISTEN', `cannot read the broker TLS certificate or key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  let current = await listen(opts, tls, opts.port);
  const port = (current.server.address() as { port: number }).port;
  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const stats: BrokerFaultStats = { faults: 0, restarts: 0 };
  const restartListeners = new Set<() => void>();
  let closed: Promise<void> | undefined;
  let restarting: Promise<void> | undefined;

  // A fault in the broker must not end the hub (API, store, rollouts): it is logged with a code, and
  // the broker, whose state after a throw is unknown, is replaced by a fresh one on the same port.
  // Clients reconnect (agents with backoff, the hub's link every second); what was retained is
  // published again by the hub (onRestart). Any other uncaught error is left to the process as before.
  const restart = async () => {
    const old = current;
    try { await shut(old); } catch (e) { opts.logger?.error({ err: e, code: 'HUB_ERR_BROKER_FAULT' }, 'closing the faulted embedded broker failed'); }
    for (;;) {
      if (closed) return;
      try { current = await listen(opts, tls, port); break; } catch (e) {
        opts.logger?.error({ err: e, code: 'HUB_ERR_BROKER_FAULT' }, 'restarting the embedded broker failed; retrying in 1 s');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    stats.restarts++;
    opts.logger?.warn({ code: 'HUB_ERR_BROKER_FAULT', restarts: stats.restarts }, 'embedded broker restarted after a fault; clients reconnect');
    for (const fn of restartListeners) { try { fn(); } catch (e) { opts.logger?.error({ err: e }, 'a broker restart listener failed'); } }
  };
  const unwatch = watchFaults((err) => {
    stats.faults++;
    opts.logger?.error({ err, code: 'HUB_ERR_BROKER_FAULT', faults: stats.faults }, 'the embedded broker failed; restarting it (the API and the store keep running)');
    if (!closed) restarting ??= restart().finally(() => { restarting = undefined; });
  });

  return {
    url: `${tls ? 'mqtts' : 'mqtt'}://${hostPart}:${port}`,
    port,
    get aedes() { return current.aedes; },
    get emitter() { return current.emitter; },
    faults: stats,
    onRestart(fn) { restartListeners.add(fn); return () => { restartListeners.delete(fn); }; },
    close() {
      closed ??= (async () => {
        unwatch();
        await restarting;
        await shut(current);
      })();
      return closed;
    },
  };
}
