/**
 * The embedded MQTT broker: aedes on a plain TCP server. It is only a broker;
 * the hub talks to it as an ordinary mqtt.js client (mqtt-link.ts), exactly as
 * it talks to an external one, so there is one code path (docs/architecture.md "MQTT").
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes } from 'aedes';
import { hubError } from './errors.js';
import { indexRetained } from './retained-index.js';

export interface EmbeddedBroker {
  readonly url: string;
  readonly port: number;
  /** The aedes instance, for observers (tests count the publishes it routes). */
  readonly aedes: Aedes;
  close(): Promise<void>;
}

export async function startBroker(opts: { host: string; port: number; tls?: { cert: string; key: string }; setup?: (aedes: Aedes) => void }): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  // SUBSCRIBE to a filter with nothing retained under it (each agent's chunk filter) skips aedes' scan of every retained message.
  indexRetained(aedes);
  // Access control (hub/broker-auth.ts) is installed before the first client can connect.
  opts.setup?.(aedes);
  let server: Server;
  if (opts.tls) {
    let tls: { cert: Buffer; key: Buffer };
    try { tls = { cert: readFileSync(opts.tls.cert), key: readFileSync(opts.tls.key) }; } catch (e) {
      aedes.close();
      throw hubError('HUB_ERR_LISTEN', `cannot read the broker TLS certificate or key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    server = createTlsServer(tls, aedes.handle as (s: Socket) => void) as unknown as Server;
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
