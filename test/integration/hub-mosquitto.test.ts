import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { decodeAssignMessage, encode } from '../../protocol/messages.js';
import { parseTopic, topics } from '../../protocol/topics.js';
import { verifyForRole } from '../../signing/envelope.js';
import { loadRootText } from '../../signing/root.js';
import type { Hub } from '../../hub/hub.js';
import { cleanupTempDirs, freePort, makeKeys, waitFor } from '../helpers/env.js';
import { connectDevice, stateReport } from '../helpers/hub-fixtures.js';
import { api, makeBundle, startTestHub, storedBlob } from '../helpers/hub-harness.js';
import { hasMosquitto, startMosquitto, type Mosquitto } from '../helpers/hub-mosquitto.js';

afterAll(cleanupTempDirs);

describe.skipIf(!hasMosquitto)('hub with an external mosquitto broker (--broker)', () => {
  const keys = makeKeys();
  let broker: Mosquitto;
  let hub: Hub;
  beforeAll(async () => {
    broker = await startMosquitto();
    // Default coalescing timers: this flow runs exactly as in production.
    hub = await startTestHub(keys, { brokerUrl: broker.url });
  });
  afterAll(async () => {
    await hub?.close();
    await broker?.stop();
  });

  it('runs no embedded broker and reports the external one', async () => {
    expect(hub.broker).toBeUndefined();
    expect(hub.mqttUrl).toBe(broker.url);
    const h = await api<{ broker: unknown }>(hub, 'GET', '/v1/health');
    expect(h.body.broker).toEqual({ url: broker.url, embedded: false, connected: true });
  });

  it('deploys a retained, hub-signed assignment and serves the chunks, which reassemble to the payload', async () => {
    const root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
    const b = await makeBundle([keys.keys.release], { chunkSize: 16_384, model: { seed: 5, padFloats: 30_000 } });
    expect((await api(hub, 'POST', '/v1/bundles', readFileSync(b.path))).status).toBe(201);
    expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ['m-1'], allowUnknown: true })).status).toBe(200);

    // The device connects after the deployment: mosquitto holds the retained assignment.
    const dev = await connectDevice(broker.url, 'm-1');
    try {
      const chunks = new Map<number, Buffer>();
      let assign: ReturnType<typeof decodeAssignMessage> | undefined;
      dev.on('message', (topic, payload) => {
        const t = parseTopic(topic);
        if (t.kind === 'assign') assign = decodeAssignMessage(payload);
        if (t.kind === 'chunk') chunks.set(t.index, Buffer.from(payload));
      });
      await dev.subscribeAsync(topics.assign('m-1'), { qos: 1 });
      const msg = await waitFor(() => assign, 'retained assignment from mosquitto');
      const a = JSON.parse(verifyForRole(root, 'hub', msg.assignment, PAYLOAD_TYPES.assignment, 'assignment').toString('utf8')) as { bundleId: string; counter: number };
      expect(a).toMatchObject({ bundleId: b.bundleId, counter: 1 });

      await dev.subscribeAsync(topics.chunkFilter(a.bundleId), { qos: 1 });
      const n = b.manifest.payload.chunkHashes.length;
      const all = Array.from({ length: n }, (_, i) => i);
      await dev.publishAsync(topics.device('m-1', 'chunk-req'), encode({ v: 1, deviceId: 'm-1', bundleId: a.bundleId, chunks: all }), { qos: 1 });
      await waitFor(() => chunks.size === n, 'every chunk through mosquitto');
      expect(Buffer.concat(all.map((i) => chunks.get(i)!)).equals(await storedBlob(hub, b.bundleId))).toBe(true);
    } finally {
      await dev.endAsync();
    }
  });
});

describe.skipIf(!hasMosquitto)('hub across an external broker restart', () => {
  const keys = makeKeys();
  const stops: (() => Promise<void>)[] = [];
  afterAll(async () => { for (const stop of stops.reverse()) await stop(); });

  it('keeps a deploy made while the broker is down, delivers it once the broker is back, and hears devices again', async () => {
    const first = await startMosquitto();
    stops.push(() => first.stop());
    const hub = await startTestHub(keys, { brokerUrl: first.url, assignmentPublishTimeoutMs: 300, refreshIntervalMs: 50 });
    stops.push(() => hub.close());
    const b = await makeBundle([keys.keys.release], { name: 'restart' });
    expect((await api(hub, 'POST', '/v1/bundles', readFileSync(b.path))).status).toBe(201);

    await first.stop();
    await waitFor(() => !hub.link.client.connected, 'the hub to notice the broker is gone');
    const r = await api<{ error: { code: string } }>(hub, 'POST', '/v1/deployments', { name: 'restart', version: 1, devices: ['late-1'], allowUnknown: true });
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('HUB_ERR_BROKER_UNREACHABLE');
    // Signed and stored even so: the broker only has to come back.
    expect(hub.store.getAssignment('late-1')).toMatchObject({ counter: 1, bundleId: b.bundleId });

    const second = await startMosquitto(first.port);
    stops.push(() => second.stop());
    const dev = await connectDevice(second.url, 'late-1');
    try {
      let assign: ReturnType<typeof decodeAssignMessage> | undefined;
      dev.on('message', (_t, payload) => { assign = decodeAssignMessage(payload); });
      await dev.subscribeAsync(topics.assign('late-1'), { qos: 1 });
      const msg = await waitFor(() => assign, 'the assignment after the broker restart');
      expect(JSON.parse(Buffer.from(msg.assignment.payload, 'base64').toString())).toMatchObject({ deviceId: 'late-1', counter: 1 });
      // The hub subscribed again on the new broker: a state report reaches the registry.
      await dev.publishAsync(topics.device('late-1', 'state'), encode(stateReport('late-1', { phase: 'fetching' })), { qos: 1, retain: true });
      await waitFor(() => hub.store.getDevice('late-1')?.phase === 'fetching', 'a state report after the restart');
    } finally {
      await dev.endAsync();
    }
  });
});

describe('hub with an external broker that is not there', () => {
  it('refuses to start with HUB_ERR_BROKER_UNREACHABLE after its connect deadline', async () => {
    const port = await freePort();
    await expect(startTestHub(makeKeys(), { brokerUrl: `mqtt://127.0.0.1:${port}`, brokerConnectTimeoutMs: 500 })).rejects.toMatchObject({ code: 'HUB_ERR_BROKER_UNREACHABLE' });
  });
});
