/**
 * The embedded broker's retained-message index (hub/retained-index.ts) must not
 * change what a SUBSCRIBE receives ([MQTT-3.3.1-6]): every retained message the
 * filter matches, none it does not, none that was cleared. Real aedes, real
 * mqtt.js clients.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type EmbeddedBroker } from '../../hub/broker.js';
import { waitFor } from '../helpers/env.js';

let broker: EmbeddedBroker;
const SENTINEL = 'zz/sentinel';

beforeAll(async () => {
  broker = await startBroker({ host: '127.0.0.1', port: 0 });
  const pub = await mqtt.connectAsync(broker.url, { clientId: 'retained-pub', reconnectPeriod: 0 });
  for (const t of ['fc/v1/dev/a/assign', 'fc/v1/dev/b/assign', 'fc/v1/dev/c/assign', 'fc/v1/dev/a/state', 'fc/v1/trust/roots', 'x', SENTINEL]) {
    await pub.publishAsync(t, Buffer.from(t), { qos: 1, retain: true });
  }
  // An empty retained payload clears the topic's retained message.
  await pub.publishAsync('fc/v1/dev/c/assign', Buffer.alloc(0), { qos: 1, retain: true });
  await pub.endAsync();
});
afterAll(async () => { await broker?.close(); });

/** Subscribe to `filter` and the sentinel in one SUBSCRIBE: retained messages come in filter order, so the sentinel comes last. */
async function retainedFor(filter: string): Promise<string[]> {
  const c = await mqtt.connectAsync(broker.url, { clientId: `retained-sub-${Math.random().toString(36).slice(2)}`, reconnectPeriod: 0 });
  const got: string[] = [];
  let done = false;
  c.on('message', (topic, _payload, packet) => {
    if (!packet.retain) return;
    if (topic === SENTINEL) done = true; else got.push(topic);
  });
  try {
    await c.subscribeAsync([filter, SENTINEL], { qos: 1 });
    await waitFor(() => done, `retained messages for ${filter}`);
  } finally {
    await c.endAsync();
  }
  return got.sort();
}

describe('embedded broker: retained messages on SUBSCRIBE, with the index', () => {
  it.each([
    ['fc/v1/bundle/abc/chunk/+', []],
    ['fc/v1/dev/a/assign', ['fc/v1/dev/a/assign']],
    ['fc/v1/dev/+/assign', ['fc/v1/dev/a/assign', 'fc/v1/dev/b/assign']],
    ['fc/v1/dev/c/assign', []],
    ['fc/v1/dev/a/#', ['fc/v1/dev/a/assign', 'fc/v1/dev/a/state']],
    ['fc/v1/#', ['fc/v1/dev/a/assign', 'fc/v1/dev/a/state', 'fc/v1/dev/b/assign', 'fc/v1/trust/roots']],
    ['x/#', ['x']],
    ['+/v1/dev/b/assign', ['fc/v1/dev/b/assign']],
    ['fc/v1/dev/a', []],
    ['fc/v1/dev/a/assign/more', []],
  ] as [string, string[]][])('%s', async (filter, want) => {
    expect(await retainedFor(filter)).toEqual(want);
  });

  it('a topic retained after the first subscribe is found by the next one', async () => {
    expect(await retainedFor('fc/v1/bundle/late/chunk/+')).toEqual([]);
    const pub = await mqtt.connectAsync(broker.url, { clientId: 'retained-late', reconnectPeriod: 0 });
    await pub.publishAsync('fc/v1/bundle/late/chunk/0', Buffer.from('c0'), { qos: 1, retain: true });
    await pub.endAsync();
    expect(await retainedFor('fc/v1/bundle/late/chunk/+')).toEqual(['fc/v1/bundle/late/chunk/0']);
  });

  it('a filter without wildcards gets the latest message retained on its topic, and nothing once it is cleared', async () => {
    const topic = 'fc/v1/dev/e/assign';
    const latest = async () => {
      const c = await mqtt.connectAsync(broker.url, { clientId: 'retained-exact', reconnectPeriod: 0 });
      const got: string[] = [];
      let done = false;
      c.on('message', (t, payload, packet) => { if (packet.retain && t === topic) got.push(payload.toString()); if (t === SENTINEL) done = true; });
      try { await c.subscribeAsync([topic, SENTINEL], { qos: 1 }); await waitFor(() => done, 'the sentinel'); } finally { await c.endAsync(); }
      return got;
    };
    const pub = await mqtt.connectAsync(broker.url, { clientId: 'retained-exact-pub', reconnectPeriod: 0 });
    await pub.publishAsync(topic, Buffer.from('one'), { qos: 1, retain: true });
    await pub.publishAsync(topic, Buffer.from('two'), { qos: 1, retain: true });
    expect(await latest()).toEqual(['two']);
    await pub.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true });
    expect(await latest()).toEqual([]);
    await pub.endAsync();
  });
});
