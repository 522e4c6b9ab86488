/**
 * Several hubs, one fleet: the hubs' links consume device channels through an MQTT 5 shared subscription on
 * mosquitto (hub/mqtt-link.ts shareGroup), so each device message is handled by exactly one hub of the
 * group; when one hub is gone, the others receive everything.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectLink, type MqttLink } from '../../hub/mqtt-link.js';
import { encode, type DeviceEvent } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { waitFor } from '../helpers/env.js';
import { silentLogger } from '../helpers/hub-fixtures.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';

const DEVICES = 20;

describe.skipIf(!hasMosquitto)('shared subscriptions between hubs (mosquitto)', () => {
  let broker: Mosquitto;
  beforeAll(async () => { broker = await startMosquitto(); });
  afterAll(async () => { await broker?.stop(); });

  async function hub(name: string, seen: Map<string, string[]>, shareGroup?: string): Promise<MqttLink> {
    return connectLink({
      url: broker.url, clientId: name, connectTimeoutMs: 10_000, logger: silentLogger(), ...(shareGroup ? { shareGroup } : {}),
      handlers: {
        state() {}, 'chunk-req'() {},
        event(e) { const k = `${e.deviceId}#${e.seq}`; seen.set(k, [...(seen.get(k) ?? []), name]); },
      },
    });
  }

  /** Devices publish `per` events each (QoS 1), seqs from `from`; resolves once the broker acknowledged them all. */
  async function fleetSends(from: number, per: number): Promise<string[]> {
    const sent: string[] = [];
    await Promise.all(Array.from({ length: DEVICES }, async (_, d) => {
      const id = `dev-${d}`;
      const c = await mqtt.connectAsync(broker.url, { clientId: id, protocolVersion: 4, reconnectPeriod: 0 });
      for (let s = from; s < from + per; s++) {
        const e: DeviceEvent = { v: 1, deviceId: id, seq: s, at: s, kind: 'installed' };
        await c.publishAsync(topics.device(id, 'event'), encode(e), { qos: 1 });
        sent.push(`${id}#${s}`);
      }
      await c.endAsync();
    }));
    return sent;
  }

  it('each device message is handled by exactly one hub of the group, and both hubs take a share', async () => {
    const seen = new Map<string, string[]>();
    const a = await hub('hub-a', seen, 'fleetcast');
    const b = await hub('hub-b', seen, 'fleetcast');
    try {
      const sent = await fleetSends(1, 10);
      await waitFor(() => seen.size === sent.length, 'every event handled', 30_000);
      // Settle: a second delivery to the other hub would show up as a second name.
      await Promise.all([a, b].map((l) => l.publish('fc/v1/settle', Buffer.from('x'), { qos: 1 })));
      expect([...seen.keys()].sort()).toEqual([...sent].sort());
      expect([...seen.values()].filter((who) => who.length !== 1)).toEqual([]);
      const byHub = (n: string) => [...seen.values()].filter((w) => w[0] === n).length;
      expect(byHub('hub-a')).toBeGreaterThan(0);
      expect(byHub('hub-b')).toBeGreaterThan(0);
      expect(byHub('hub-a') + byHub('hub-b')).toBe(sent.length);

      // Once hub-b is gone (its session ends with its connection), hub-a receives every message.
      await b.close();
      seen.clear();
      const later = await fleetSends(11, 5);
      await waitFor(() => seen.size === later.length, 'every later event handled by the remaining hub', 30_000);
      expect([...seen.values()].every((w) => w.length === 1 && w[0] === 'hub-a')).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('without the group (one hub\'s plain subscription), two hubs would each handle every message', async () => {
    const seen = new Map<string, string[]>();
    const a = await hub('solo-a', seen);
    const b = await hub('solo-b', seen);
    try {
      const sent = await fleetSends(100, 3);
      await waitFor(() => [...seen.values()].filter((w) => w.length === 2).length === sent.length, 'every event at both hubs', 30_000);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
