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
});
