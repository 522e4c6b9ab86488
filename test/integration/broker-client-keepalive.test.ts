/**
 * The agent's broker client (agent/broker-client.ts) keeps a connection whose
 * broker is busy delivering to it. mqtt.js takes only acks and PINGRESP as
 * signs of life: a device receiving a long stream pinged after one keepalive,
 * its PINGRESP queued behind the data still on its way, and half a keepalive
 * later it closed a working connection ("Keepalive timeout"). At 10,000
 * simulated devices (bench sim-scale) that happened to every device whose
 * chunks took longer than 90 s to arrive; each then subscribed and asked again.
 *
 * Here a real broker (aedes, as embedded in the hub) delivers a stream of QoS 1
 * messages to a device through a slow link (simulator/link-proxy.ts), so the
 * PINGRESP waits behind several seconds of data whatever the machine's load.
 */
import { createConnection, createServer, type Server } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt } from '../../agent/broker-client.js';
import { startBroker, type EmbeddedBroker } from '../../hub/broker.js';
import { startLinkProxy, type LinkProxy } from '../../simulator/link-proxy.js';
import { waitFor } from '../helpers/env.js';

const KEEPALIVE_SEC = 2;
const MESSAGES = 200;
const BYTES = 2_000;
/** Bytes per second of the link: the stream takes ≥ 6 s, three keepalives. */
const RATE = 64_000;

let broker: EmbeddedBroker;
let proxy: LinkProxy;
let publisher: MqttClient;

beforeAll(async () => {
  broker = await startBroker({ host: '127.0.0.1', port: 0 });
  proxy = await startLinkProxy(broker.url);
  publisher = await mqtt.connectAsync(broker.url, { clientId: 'publisher', reconnectPeriod: 0 });
}, 30_000);

afterAll(async () => {
  await publisher?.endAsync();
  await proxy?.close();
  await broker?.close();
});

describe('agent broker client keepalive', () => {
  it('Receiving_a_long_stream_keeps_the_connection: no keepalive timeout while the broker is still delivering', async () => {
    const dev = connectMqtt({ url: proxy.url, clientId: 'dev-stream', connectTimeoutMs: 10_000, reconnectPeriodMs: 100, keepaliveSec: KEEPALIVE_SEC });
    let connects = 0;
    let disconnects = 0;
    const got = new Set<string>();
    dev.onConnect(() => { connects++; });
    dev.onDisconnect(() => { disconnects++; });
    dev.onMessage((topic) => { got.add(topic); });
    try {
      await waitFor(() => dev.connected, 'the device to connect');
      await dev.subscribe('stream/+');
      proxy.setRate(RATE);
      await Promise.all(Array.from({ length: MESSAGES }, (_, i) => publisher.publishAsync(`stream/${i}`, Buffer.alloc(BYTES, i & 0xff), { qos: 1 })));
      await waitFor(() => got.size === MESSAGES || disconnects > 0, 'the whole stream or a dropped connection', 60_000);
      // The stream is over, and the device's own ping is answered: still the first connection.
      await new Promise((r) => setTimeout(r, KEEPALIVE_SEC * 2_000));
      expect({ disconnects, connects, received: got.size, failure: dev.failure ?? null }).toEqual({ disconnects: 0, connects: 1, received: MESSAGES, failure: null });
    } finally {
      proxy.setRate(null);
      await dev.end();
    }
  }, 90_000);

  it('Receiving_one_long_message_keeps_the_connection: no keepalive timeout while one message is still arriving', async () => {
    // One 320 KB message trickled over ≥ 6.5 s (more than three keepalives), in 2 KB slices: the
    // agent reads whole packets (agent/framed-stream.ts), and bytes of a packet not yet complete
    // must count as signs of life as much as complete packets do.
    const relay = await trickleRelay(broker.url, 2_000, 40);
    const dev = connectMqtt({ url: relay.url, clientId: 'dev-long-message', connectTimeoutMs: 10_000, reconnectPeriodMs: 100, keepaliveSec: KEEPALIVE_SEC });
    let connects = 0;
    let disconnects = 0;
    const got: Buffer[] = [];
    dev.onConnect(() => { connects++; });
    dev.onDisconnect(() => { disconnects++; });
    dev.onMessage((_topic, payload) => { got.push(payload); });
    const big = Buffer.alloc(320 * 1024, 7);
    try {
      await waitFor(() => dev.connected, 'the device to connect');
      await dev.subscribe('long/one');
      await publisher.publishAsync('long/one', big, { qos: 1 });
      await waitFor(() => got.length > 0 || disconnects > 0, 'the message or a dropped connection', 60_000);
      expect({ disconnects, connects, received: got.length, intact: got[0]?.equals(big) ?? false, failure: dev.failure ?? null })
        .toEqual({ disconnects: 0, connects: 1, received: 1, intact: true, failure: null });
    } finally {
      await dev.end();
      await relay.close();
    }
  }, 90_000);
});

/** A relay that passes the broker's bytes on `bytes` at a time every `everyMs` (cutting packets anywhere), the device's as they come. */
async function trickleRelay(brokerUrl: string, bytes: number, everyMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const target = new URL(brokerUrl);
  const ends = new Set<() => void>();
  const server: Server = createServer((device) => {
    const up = createConnection({ host: target.hostname, port: Number(target.port) });
    let queued = Buffer.alloc(0);
    up.on('data', (d: Buffer) => { queued = Buffer.concat([queued, d]); });
    const t = setInterval(() => {
      if (queued.length === 0 || device.destroyed) return;
      device.write(queued.subarray(0, bytes));
      queued = queued.subarray(bytes);
    }, everyMs);
    device.on('data', (d: Buffer) => up.write(d));
    const end = () => { clearInterval(t); ends.delete(end); device.destroy(); up.destroy(); };
    ends.add(end);
    device.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: async () => {
      for (const end of [...ends]) end();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
