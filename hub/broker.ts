/**
 * The embedded MQTT broker: aedes on a plain TCP server. It is only a broker;
 * the hub talks to it as an ordinary mqtt.js client (mqtt-link.ts), exactly as
 * it talks to an external one, so there is one code path (docs/architecture.md "MQTT").
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import { HUB_MAX_PACKET_BYTES } from '../protocol/channel-limits.js';
import { hubError } from './errors.js';
import { indexRetained } from './retained-index.js';

export interface EmbeddedBroker {
  readonly url: string;
  readonly port: number;
  /** The aedes instance, for observers (tests count the publishes it routes). */
  readonly aedes: Aedes;
  close(): Promise<void>;
}

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

export async function startBroker(opts: { host: string; port: number; tls?: { cert: string; key: string }; setup?: (aedes: Aedes) => BrokerSetup | void }): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
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
  if (opts.tls) {
    let tls: { cert: Buffer; key: Buffer };
    try { tls = { cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }; } catch (e) {
      aedes.close();
      throw hubError('HUB_ERR_LISTEN', `cannot read the broker TLS certificate or key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try { server = createTlsServer(tls, aedes.handle as (s: Socket) => void) as unknown as Server; } catch (e) {
      aedes.close();
      throw hubError('HUB_ERR_LISTEN', `the broker TLS certificate ${opts.tls.cert} and key ${opts.tls.key} are not a usable PEM certificate and matching private key: ${(e as Error).message}`);
    }
  } else {
    server = createServer(aedes.handle);
  }
  const sockets = new Set<Socket>();
  server.on(opts.tls ? 'secureConnection' : 'connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  if (opts.tls) server.on('tlsClientError', () => {});
  // A client that misbehaves is aedes' problem to disconnect; it must never take the hub down.
  aedes.on('clientError', () => {});
  aedes.on('connectionError', () => {});
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      aedes.close();
      reject(hubError('HUB_ERR_LISTEN', `embedded broker cannot listen on ${opts.host}:${opts.port}: ${e.code ?? e.message}; choose another --mqtt-port`));
    };
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => { server.off('error', onError); resolve(); });
  });
  const port = (server.address() as { port: number }).port;
  const hostPart = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  let closed: Promise<void> | undefined;
  return {
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://${hostPart}:${port}`,
    port,
    aedes,
    close() {
      closed ??= (async () => {
        await new Promise<void>((r) => aedes.close(() => r()));
        // aedes closes its clients; sockets still half-open are ended so server.close can finish.
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      })();
      return closed;
    },
  };
}
