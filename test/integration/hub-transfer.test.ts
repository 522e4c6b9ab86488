import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encode } from '../../protocol/messages.js';
import { parseTopic, topics } from '../../protocol/topics.js';
import type { Hub } from '../../hub/hub.js';
import { cleanupTempDirs, makeKeys, waitFor } from '../helpers/env.js';
import { connectDevice, stateReport } from '../helpers/hub-fixtures.js';
import { api, makeBundle, startTestHub, storedBlob } from '../helpers/hub-harness.js';

afterAll(cleanupTempDirs);

const AGENTS = 50;

describe('chunk transfer through the broker', () => {
  const keys = makeKeys();
  let hub: Hub;
  let bundle: Awaited<ReturnType<typeof makeBundle>>;
  let blob: Buffer;
  let chunkCount: number;
  /** Chunk publishes the broker routed, by topic (counted at the broker, not at the hub). */
  const brokerSaw = new Map<string, number>();
  const devices: MqttClient[] = [];

  beforeAll(async () => {
    // The quiet timer is not what this suite checks (the unit suite drives it with fake timers):
    // it is made long so that flushes happen exactly when the test asks, after every request is in.
    hub = await startTestHub(keys, { chunkQuietMs: 3_600_000, chunkMaxWaitMs: 3_600_000, chunkExpectWaitMs: 0 });
    hub.broker!.aedes.on('publish', (packet, client) => {
      if (client && packet.topic.startsWith('fc/v1/bundle/')) brokerSaw.set(packet.topic, (brokerSaw.get(packet.topic) ?? 0) + 1);
    });
    // ~600 KB of incompressible weights in 64 KiB chunks: about ten chunks.
    bundle = await makeBundle([keys.keys.release], { chunkSize: 65_536, model: { seed: 3, padFloats: 150_000 } });
    expect((await api(hub, 'POST', '/v1/bundles', readFileSync(bundle.path))).status).toBe(201);
    blob = await storedBlob(hub, bundle.bundleId);
    chunkCount = bundle.manifest.payload.chunkHashes.length;
    expect(chunkCount).toBeGreaterThan(5);
    // The hub serves a device only the bundles assigned to it (hub/transfer-grants.ts).
    expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: Array.from({ length: AGENTS }, (_, i) => `agent-${i}`), allowUnknown: true })).status).toBe(200);
  });
  afterAll(async () => {
    await Promise.all(devices.map((d) => d.endAsync()));
    await hub?.close();
  });

  it(`serves ${AGENTS} agents asking together with one publish per chunk, and the bytes reassemble to the payload`, async () => {
    const received: Map<number, Buffer>[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const dev = await connectDevice(hub.mqttUrl, `agent-${i}`);
      devices.push(dev);
      const got = new Map<number, Buffer>();
      received.push(got);
      dev.on('message', (topic, payload) => { const t = parseTopic(topic); if (t.kind === 'chunk') got.set(t.index, Buffer.from(payload)); });
      // Subscribe and wait for the SUBACK before asking (docs/architecture.md "Transfer").
      await dev.subscribeAsync(topics.chunkFilter(bundle.bundleId), { qos: 1 });
    }
    const all = Array.from({ length: chunkCount }, (_, i) => i);
    await Promise.all(devices.map((dev, i) => dev.publishAsync(topics.device(`agent-${i}`, 'chunk-req'), encode({ v: 1, deviceId: `agent-${i}`, bundleId: bundle.bundleId, chunks: all }), { qos: 1 })));
    await waitFor(() => hub.transfer.stats.requests === AGENTS, 'every request at the hub');
    await hub.transfer.flushNow();
    await waitFor(() => received.every((g) => g.size === chunkCount), 'every agent has every chunk');
    // aedes emits 'publish' once it has routed a message, which may be after a subscriber already has it.
    await waitFor(() => brokerSaw.size >= chunkCount, 'the broker to report every chunk publish');

    expect(brokerSaw.size).toBe(chunkCount);
    for (const n of brokerSaw.values()) expect(n).toBe(1);
    expect(hub.transfer.stats.published).toBe(chunkCount);
    for (const got of received) {
      const joined = Buffer.concat(all.map((i) => got.get(i)!));
      expect(joined.equals(blob)).toBe(true);
    }
  });

  it('re-publishes for a later request only the chunks it asked for', async () => {
    brokerSaw.clear();
    const before = hub.transfer.stats.requests;
    const want = [1, chunkCount - 1];
    await devices[7].publishAsync(topics.device('agent-7', 'chunk-req'), encode({ v: 1, deviceId: 'agent-7', bundleId: bundle.bundleId, chunks: want }), { qos: 1 });
    await waitFor(() => hub.transfer.stats.requests === before + 1, 'the late request at the hub');
    await hub.transfer.flushNow();
    await waitFor(() => brokerSaw.size === want.length, 'the re-publish');
    expect([...brokerSaw.keys()].sort()).toEqual(want.map((i) => topics.chunk(bundle.bundleId, i)).sort());
  });

  it('counts malformed messages and still handles a valid one right after each', async () => {
    const dev = devices[0];
    const stateTopic = topics.device('agent-0', 'state');
    const reqTopic = topics.device('agent-0', 'chunk-req');
    const bad: [string, Buffer][] = [
      [stateTopic, Buffer.from('{"v":1,')],
      [stateTopic, encode({ v: 1, deviceId: 'agent-0' })],
      [stateTopic, encode({ ...stateReport('agent-0'), capabilities: { blob: 'x'.repeat(80_000) } })],
      [reqTopic, encode({ v: 1, deviceId: 'agent-0', bundleId: bundle.bundleId, chunks: [] })],
      [reqTopic, encode({ v: 1, deviceId: 'agent-0', bundleId: 'f'.repeat(64), chunks: [0] })],
      [reqTopic, encode({ v: 1, deviceId: 'agent-0', bundleId: bundle.bundleId, chunks: [chunkCount + 5] })],
    ];
    let seq = 0;
    for (const [topic, payload] of bad) {
      await dev.publishAsync(topic, payload, { qos: 1 });
      seq++;
      await dev.publishAsync(stateTopic, encode(stateReport('agent-0', { seq })), { qos: 1 });
      await waitFor(() => hub.store.getDevice('agent-0')?.state.seq === seq, `valid state ${seq} after a bad message`);
    }
    expect(hub.link.stats.rejected).toMatchObject({
      PROTO_ERR_INVALID_JSON: 1,
      PROTO_ERR_INVALID_MESSAGE: 2,
      PROTO_ERR_MESSAGE_TOO_LARGE: 1,
      HUB_ERR_UNKNOWN_BUNDLE: 1,
      HUB_ERR_CHUNK_OUT_OF_RANGE: 1,
    });
    const health = await api<{ messages: { rejected: Record<string, number> } }>(hub, 'GET', '/v1/health');
    expect(health.body.messages.rejected.PROTO_ERR_INVALID_JSON).toBe(1);
  });
});
