/**
 * The embedded MQTT broker: aedes on a plain TCP server. It is only a broker;
 * the hub talks to it as an ordinary mqtt.js client (mqtt-link.ts), exactly as
 * it talks to an external one, so there is one code path (docs/architecture.md "MQTT").
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { hubError } from './errors.js';

export interface EmbeddedBroker {
  readonly url: string;
  readonly port: number;
  /** The aedes instance, for observers (tests count the publishes it routes). */
  readonly aedes: Aedes;
  close(): Promise<void>;
}

export async function startBroker(opts: { host: string; port: number }): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const server: Server = createServer(aedes.handle);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
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
    url: `mqtt://${hostPart}:${port}`,
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
