/**
 * A broken or hostile broker against the agent's framed MQTT reads
 * (agent/framed-stream.ts, agent/mqtt-framer.ts). The framer allocates each
 * packet's buffer from its declared remaining length as soon as the fixed
 * header is in: five bytes declaring 256 MB must not allocate 256 MB, and a
 * remaining length longer than 4 bytes is a malformed packet ([MQTT-2.2.3],
 * [MQTT-4.8.0-1]: close the connection). Both drop the connection with a coded
 * error, and the agent tries again on its usual backoff. The broker here is a
 * raw TCP server that answers the CONNECT with a CONNACK and then sends the
 * bad bytes; the client is the agent's own (connectMqtt).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectMqtt, type BrokerClient } from '../../agent/broker-client.js';
import { waitFor } from '../helpers/env.js';

let server: Server | null = null;
let agent: BrokerClient | null = null;
const sockets = new Set<Socket>();

afterEach(async () => {
  await agent?.end();
  for (const s of sockets) s.destroy();
  sockets.clear();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  agent = server = null;
});

/** A "broker" that accepts every CONNECT and then sends `bad`; counts the connections the agent closed. */
async function hostileBroker(bad: Buffer): Promise<{ url: string; closed: () => number }> {
  let closed = 0;
  server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => { closed++; sockets.delete(s); });
    s.once('data', () => { s.write(Buffer.from([0x20, 0x02, 0x00, 0x00])); s.write(bad); });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  return { url: `mqtt://127.0.0.1:${(server!.address() as { port: number }).port}`, closed: () => closed };
}

function connect(url: string): BrokerClient {
  return (agent = connectMqtt({ url, clientId: 'dev-hostile', reconnectPeriodMs: 60_000, connectTimeoutMs: 10_000, keepaliveSec: 600 }));
}

describe('agent against a hostile broker', () => {
  it('Hostile_broker_huge_declared_length: a header declaring 256 MB drops the connection with a coded error, nothing allocated', async () => {
    const before = process.memoryUsage().arrayBuffers;
    // PUBLISH, remaining length 268,435,455 (the largest MQTT allows), and no more.
    const b = await hostileBroker(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]));
    const a = connect(b.url);
    await waitFor(() => b.closed() > 0 || null, 'the agent to drop the connection', 15_000);
    expect(a.failure?.code).toBe('AGENT_ERR_BROKER_UNREACHABLE');
    expect(a.failure?.detail).toMatch(/^AGENT_ERR_BROKER_BAD_PACKET: .*268435455/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
  }, 30_000);

  it('Hostile_broker_malformed_length: a remaining length of 5 bytes drops the connection with a coded error', async () => {
    const b = await hostileBroker(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x01, 0x61]));
    const a = connect(b.url);
    await waitFor(() => b.closed() > 0 || null, 'the agent to drop the connection', 15_000);
    expect(a.failure?.detail).toMatch(/^AGENT_ERR_BROKER_BAD_PACKET: /);
  }, 30_000);
});
