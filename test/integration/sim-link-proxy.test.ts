/**
 * The fault relay between a group of simulated devices and a real broker
 * (mosquitto: it speaks MQTT 3.1.1 and 5) (simulator/link-proxy.ts): chunks pass byte for byte until tampering
 * is on, then every chunk (and nothing else) arrives with one byte changed,
 * in MQTT 3.1.1 and 5 framing and across TCP segments; down drops the
 * connections and refuses new ones until it is up again; a slow link still
 * delivers every byte intact.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLinkProxy, type LinkProxy } from '../../simulator/link-proxy.js';
import { topics } from '../../protocol/topics.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';
import { waitFor } from '../helpers/env.js';

const BUNDLE = 'ab'.repeat(32);
let broker: Mosquitto;
let proxy: LinkProxy;
let publisher: MqttClient;

beforeAll(async () => {
  if (!hasMosquitto) return;
  broker = await startMosquitto();
  proxy = await startLinkProxy(broker.url);
  // MQTT 5 with a user property: frames to a v5 device then carry properties the relay must step over.
  publisher = await mqtt.connectAsync(broker.url, { clientId: 'publisher', protocolVersion: 5 });
}, 30_000);

afterAll(async () => {
  await publisher?.endAsync();
  await proxy?.close();
  await broker?.stop();
});

/** A device behind the relay subscribed to the bundle's chunks and to one other topic; resolves with what it received. */
async function device(protocolVersion: 4 | 5, id: string) {
  const got: { topic: string; payload: Buffer }[] = [];
  const c = await mqtt.connectAsync(proxy.url, { clientId: id, protocolVersion, reconnectPeriod: 100 });
  c.on('message', (topic, payload) => got.push({ topic, payload: Buffer.from(payload) }));
  await c.subscribeAsync([topics.chunkFilter(BUNDLE), 'other/topic'], { qos: 1 });
  return { c, got };
}

const payload = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

describe.skipIf(!hasMosquitto)('link proxy', () => {
  for (const version of [4, 5] as const) {
    it(`tampered-chunks changes one byte of every chunk and nothing else (MQTT ${version === 4 ? '3.1.1' : '5'})`, async () => {
      const d = await device(version, `dev-${version}`);
      try {
        // Big chunks span many TCP segments: the relay must find frame boundaries across them.
        const chunks = [payload(200_000, 1), payload(70_000, 2), payload(10, 3)];
        await publisher.publishAsync(topics.chunk(BUNDLE, 0), chunks[0], { qos: 1 });
        await waitFor(() => d.got.length === 1, 'an intact chunk');
        expect(d.got[0].payload.equals(chunks[0])).toBe(true);
        proxy.setTamper(true);
        const before = proxy.stats.tampered;
        await publisher.publishAsync(topics.chunk(BUNDLE, 1), chunks[1], { qos: 1, properties: { userProperties: { why: 'a property before the payload' } } });
        await publisher.publishAsync('other/topic', chunks[2], { qos: 0 });
        await publisher.publishAsync(topics.chunk(BUNDLE, 2), chunks[2], { qos: 1 });
        await waitFor(() => d.got.length === 4, 'three more messages');
        const byTopic = new Map(d.got.slice(1).map((m) => [m.topic, m.payload]));
        for (const [i, sent] of [[1, chunks[1]], [2, chunks[2]]] as const) {
          const recv = byTopic.get(topics.chunk(BUNDLE, i))!;
          expect(recv.length).toBe(sent.length);
          const diff = [...recv].flatMap((b, k) => (b === sent[k] ? [] : [k]));
          expect(diff).toEqual([sent.length - 1]);
        }
        expect(byTopic.get('other/topic')!.equals(chunks[2])).toBe(true);
        expect(proxy.stats.tampered - before).toBe(2);
        proxy.setTamper(false);
        await publisher.publishAsync(topics.chunk(BUNDLE, 3), chunks[1], { qos: 1 });
        await waitFor(() => d.got.length === 5, 'the chunk after tampering stopped');
        expect(d.got[4].payload.equals(chunks[1])).toBe(true);
      } finally {
        proxy.setTamper(false);
        await d.c.endAsync();
      }
    }, 30_000);
  }

  it('down drops every connection and refuses new ones; up lets the device back in', async () => {
    const d = await device(4, 'dev-down');
    try {
      const refused = proxy.stats.refused;
      proxy.setDown(true);
      await waitFor(() => !d.c.connected, 'the device to lose its connection');
      await waitFor(() => proxy.stats.refused > refused, 'a reconnect attempt refused');
      expect(d.c.connected).toBe(false);
      proxy.setDown(false);
      await waitFor(() => d.c.connected, 'the device back', 20_000);
    } finally {
      proxy.setDown(false);
      await d.c.endAsync();
    }
  }, 30_000);

  it('a slow link still delivers every byte intact', async () => {
    const d = await device(4, 'dev-slow');
    try {
      proxy.setRate(200_000);
      const p = payload(100_000, 9);
      await publisher.publishAsync(topics.chunk(BUNDLE, 7), p, { qos: 1 });
      await waitFor(() => d.got.length === 1, 'the chunk over the slow link', 20_000);
      expect(d.got[0].payload.equals(p)).toBe(true);
    } finally {
      proxy.setRate(null);
      await d.c.endAsync();
    }
  }, 30_000);
});
