/** A real aedes broker on a free loopback port, for the agent's tests. */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { freePort } from './env.js';

export interface TestBroker {
  url: string;
  port: number;
  /** Every SUBSCRIBE the broker received, in order. */
  subscribes: readonly { clientId: string; filter: string }[];
  /** Cut every client's TCP connection (a flaky network); clients reconnect on their own. */
  dropClients(): void;
  close(): Promise<void>;
}

export interface TestBrokerOptions {
  /** How long to hold the SUBACK of a subscription to this filter (a slow or busy broker); 0 answers at once. */
  subackDelayMs?: (filter: string) => number;
}

export async function startBroker(port?: number, o: TestBrokerOptions = {}): Promise<TestBroker> {
  const p = port ?? (await freePort());
  const broker = await Aedes.createBroker();
  const subscribes: { clientId: string; filter: string }[] = [];
  broker.authorizeSubscribe = (client, sub, done) => {
    subscribes.push({ clientId: client?.id ?? '', filter: sub.topic });
    const ms = o.subackDelayMs?.(sub.topic) ?? 0;
    if (ms > 0) setTimeout(() => done(null, sub), ms);
    else done(null, sub);
  };
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    broker.handle(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, '127.0.0.1', () => resolve());
  });
  return {
    url: `mqtt://127.0.0.1:${p}`,
    port: p,
    subscribes,
    dropClients() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}
