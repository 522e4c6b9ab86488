/** A real aedes broker on a free loopback port, for the agent's tests. */
import { createServer, type Server, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { freePort } from './env.js';

export interface TestBroker {
  url: string;
  port: number;
  /** Cut every client's TCP connection (a flaky network); clients reconnect on their own. */
  dropClients(): void;
  close(): Promise<void>;
}

export async function startBroker(port?: number): Promise<TestBroker> {
  const p = port ?? (await freePort());
  const broker = await Aedes.createBroker();
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
