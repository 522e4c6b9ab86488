import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { assignmentSchema, decodeAssignMessage, encode } from '../../protocol/messages.js';
import { parse } from '../../protocol/schema.js';
import { topics } from '../../protocol/topics.js';
import { verifyForRole } from '../../signing/envelope.js';
import { loadRootText } from '../../signing/root.js';
import type { Hub } from '../../hub/hub.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { connectDevice, stateReport } from '../helpers/hub-fixtures.js';
import { api, makeBundle, startTestHub } from '../helpers/hub-harness.js';

afterAll(cleanupTempDirs);

type ErrorBody = { error: { code: string } };

/** Subscribe as a device and return the first assign message the broker delivers (retained or live). */
async function receiveAssignment(url: string, deviceId: string, minCounter = 1) {
  const dev = await connectDevice(url, deviceId);
  try {
    let latest: ReturnType<typeof decodeAssignMessage> | undefined;
    dev.on('message', (_t, payload) => { latest = decodeAssignMessage(payload); });
    await dev.subscribeAsync(topics.assign(deviceId), { qos: 1 });
    return await waitFor(() => {
      if (!latest) return undefined;
      const a = JSON.parse(Buffer.from(latest.assignment.payload, 'base64').toString('utf8')) as { counter: number };
      return a.counter >= minCounter ? latest : undefined;
    }, `assignment for ${deviceId}`);
  } finally {
    await dev.endAsync();
  }
}

describe('deployments and the device registry', () => {
  const keys = makeKeys();
  const root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
  const hubs: Hub[] = [];
  afterAll(async () => { for (const h of hubs) await h.close(); });

  it('signs retained assignments that verify against the hub key in root.json, with counters that only grow, across a restart', async () => {
    const dataDir = tempDir();
    let now = 1_700_000_000_000;
    let hub = await startTestHub(keys, { dataDir }, { now: () => now });
    hubs.push(hub);
    const v1 = await makeBundle([keys.keys.release], { version: 1 });
    const v2 = await makeBundle([keys.keys.release], { version: 2, model: { seed: 8 } });
    for (const b of [v1, v2]) expect((await api(hub, 'POST', '/v1/bundles', readFileSync(b.path))).status).toBe(201);

    const d1 = await api<{ bundleId: string; devices: string[]; counters: Record<string, number> }>(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ['dev-a', 'dev-b'], allowUnknown: true });
    expect(d1).toEqual({ status: 200, body: { bundleId: v1.bundleId, devices: ['dev-a', 'dev-b'], counters: { 'dev-a': 1, 'dev-b': 1 } } });
    const d2 = await api<{ counters: Record<string, number> }>(hub, 'POST', '/v1/deployments', { name: 'churn', version: 2, devices: ['dev-a'], allowUnknown: true });
    expect(d2.body.counters).toEqual({ 'dev-a': 2 });

    // dev-a subscribes only now: the broker hands it the retained, latest assignment.
    const msg = await receiveAssignment(hub.mqttUrl, 'dev-a', 2);
    const bytes = verifyForRole(root, 'hub', msg.assignment, PAYLOAD_TYPES.assignment, 'assignment');
    const a = parse(assignmentSchema, JSON.parse(bytes.toString('utf8')));
    expect(a).toEqual({
      type: 'fleetcast.assignment/v1', deviceId: 'dev-a', bundleId: v2.bundleId, name: 'churn', version: 2,
      rolloutId: null, ring: null, counter: 2, issuedAt: now, expiresAt: now + 86_400_000, rootVersion: 1,
    });
    // The manifest beside it is the release-signed one the bundle id names.
    expect(verifyForRole(root, 'release', msg.manifest, PAYLOAD_TYPES.manifest, 'manifest')).toBeTruthy();

    // Restart on the same data folder: the embedded broker lost its retained messages, the hub republishes them.
    await hub.close();
    now += 1000;
    hub = await startTestHub(keys, { dataDir }, { now: () => now });
    hubs.push(hub);
    const again = await receiveAssignment(hub.mqttUrl, 'dev-b');
    expect(JSON.parse(Buffer.from(again.assignment.payload, 'base64').toString())).toMatchObject({ deviceId: 'dev-b', counter: 1, bundleId: v1.bundleId });
    const d3 = await api<{ counters: Record<string, number> }>(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ['dev-a', 'dev-b'], allowUnknown: true });
    expect(d3.body.counters).toEqual({ 'dev-a': 3, 'dev-b': 2 });
  });

  it('re-signs assignments past half their TTL with a new counter so retained ones never expire', async () => {
    let now = 1_800_000_000_000;
    const hub = await startTestHub(keys, { assignmentTtlMs: 10_000, refreshIntervalMs: 20 }, { now: () => now });
    hubs.push(hub);
    const b = await makeBundle([keys.keys.release], { name: 'ttl' });
    await api(hub, 'POST', '/v1/bundles', readFileSync(b.path));
    await api(hub, 'POST', '/v1/deployments', { name: 'ttl', version: 1, devices: ['dev-t'], allowUnknown: true });
    expect(hub.store.getAssignment('dev-t')).toMatchObject({ counter: 1, expiresAt: now + 10_000 });
    now += 5_000; // half the TTL: the refresher's next tick re-signs
    await waitFor(() => hub.store.getAssignment('dev-t')!.counter === 2, 're-signed assignment');
    expect(hub.store.getAssignment('dev-t')).toMatchObject({ issuedAt: now, expiresAt: now + 10_000 });
    const msg = await receiveAssignment(hub.mqttUrl, 'dev-t', 2);
    expect(JSON.parse(Buffer.from(msg.assignment.payload, 'base64').toString())).toMatchObject({ counter: 2, expiresAt: now + 10_000 });
  });

  it('keeps a registry from state reports, refuses a state under another device\'s topic, and deploys to all of it', async () => {
    const hub = await startTestHub(keys);
    hubs.push(hub);
    const b = await makeBundle([keys.keys.release], { name: 'reg' });
    await api(hub, 'POST', '/v1/bundles', readFileSync(b.path));
    expect((await api<ErrorBody>(hub, 'POST', '/v1/deployments', { name: 'reg', version: 1, all: true })).body.error.code).toBe('HUB_ERR_NO_TARGETS');
    expect((await api<ErrorBody>(hub, 'POST', '/v1/deployments', { name: 'reg', version: 9, all: true })).body.error.code).toBe('HUB_ERR_UNKNOWN_BUNDLE');
    expect((await api<ErrorBody>(hub, 'POST', '/v1/deployments', { name: 'reg', version: 1 })).body.error.code).toBe('HUB_ERR_NO_TARGETS');

    const dev = await connectDevice(hub.mqttUrl, 'dev-r');
    const spoof = await connectDevice(hub.mqttUrl, 'evil');
    try {
      await dev.publishAsync(topics.device('dev-r', 'state'), encode(stateReport('dev-r', { phase: 'idle' })), { qos: 1, retain: true });
      await waitFor(async () => (await api<{ devices: unknown[] }>(hub, 'GET', '/v1/devices')).body.devices.length === 1, 'dev-r in the registry');
      // "evil" publishes a report for dev-x under its own topic: refused, counted, not registered.
      await spoof.publishAsync(topics.device('evil', 'state'), encode(stateReport('dev-x')), { qos: 1 });
      await waitFor(() => hub.link.stats.rejected.HUB_ERR_DEVICE_MISMATCH === 1, 'mismatch counted');
      expect(hub.store.getDevice('dev-x')).toBeUndefined();
      expect(hub.store.getDevice('evil')).toBeUndefined();

      const all = await api<{ devices: string[]; counters: Record<string, number> }>(hub, 'POST', '/v1/deployments', { name: 'reg', version: 1, all: true });
      expect(all.body).toMatchObject({ devices: ['dev-r'], counters: { 'dev-r': 1 } });

      const active = { bundleId: b.bundleId, name: 'reg', version: 1 };
      await dev.publishAsync(topics.device('dev-r', 'state'), encode(stateReport('dev-r', { seq: 2, phase: 'committed', active, counter: 1 })), { qos: 1, retain: true });
      await dev.publishAsync(topics.device('dev-r', 'event'), encode({ v: 1, deviceId: 'dev-r', seq: 3, at: 5, kind: 'installed', bundleId: b.bundleId, counter: 1 }), { qos: 1 });
      const one = await waitFor(async () => {
        const r = await api<{ phase: string; active: unknown; events: unknown[]; assignment: unknown }>(hub, 'GET', '/v1/devices/dev-r');
        return r.body.phase === 'committed' && r.body.events.length === 1 ? r.body : undefined;
      }, 'dev-r committed');
      expect(one).toMatchObject({ active, assignment: { bundleId: b.bundleId, name: 'reg', version: 1, counter: 1 }, events: [{ kind: 'installed' }] });
    } finally {
      await dev.endAsync();
      await spoof.endAsync();
    }
  });

  it('Nul_in_device_report: a report or event with a NUL character in a string is refused as HUB_ERR_BAD_MESSAGE and the registry keeps answering', async () => {
    // PostgreSQL cannot read a stored report holding \u0000 as JSON: every registry query over it would fail.
    const hub = await startTestHub(keys);
    hubs.push(hub);
    const dev = await connectDevice(hub.mqttUrl, 'dev-n');
    try {
      await dev.publishAsync(topics.device('dev-n', 'state'), encode(stateReport('dev-n', { seq: 1, capabilities: { tags: ['eu'] } })), { qos: 1 });
      await waitFor(() => hub.link.stats.handled.state === 1, 'the first report');
      await dev.publishAsync(topics.device('dev-n', 'state'), encode(stateReport('dev-n', { seq: 2, phase: 'failed', capabilities: { tags: ['eu\u0000x'] } })), { qos: 1 });
      await dev.publishAsync(topics.device('dev-n', 'event'), encode({ v: 1, deviceId: 'dev-n', seq: 3, at: 5, kind: 'fetch-failed', code: 'AGENT_ERR_X', detail: 'a\u0000b' }), { qos: 1 });
      await dev.publishAsync(topics.device('dev-n', 'event'), encode({ v: 1, deviceId: 'dev-n', seq: 4, at: 6, kind: 'fetch-failed', code: 'AGENT_ERR_X', detail: 'ok' }), { qos: 1 });
      await waitFor(() => hub.link.stats.handled.event === 1 && hub.link.stats.rejected.HUB_ERR_BAD_MESSAGE === 2, 'two refused, the last event handled');
      const list = await api<{ devices: { id: string; phase: string }[] }>(hub, 'GET', '/v1/devices?tag=eu&limit=10');
      expect(list).toMatchObject({ status: 200, body: { devices: [{ id: 'dev-n', phase: 'idle' }] } });
      expect((await api(hub, 'GET', '/v1/fleet/summary')).status).toBe(200);
      expect(hub.store.listEvents('dev-n').map((e) => e.seq)).toEqual([4]);
    } finally {
      await dev.endAsync();
    }
  });

  it('deploys to more devices than one signing batch, every one retained with its own counter', async () => {
    const hub = await startTestHub(keys);
    hubs.push(hub);
    const b = await makeBundle([keys.keys.release], { name: 'fleet' });
    await api(hub, 'POST', '/v1/bundles', readFileSync(b.path));
    const ids = Array.from({ length: 600 }, (_, i) => `fleet-${String(i).padStart(3, '0')}`);
    const r = await api<{ devices: string[]; counters: Record<string, number> }>(hub, 'POST', '/v1/deployments', { name: 'fleet', version: 1, devices: ids, allowUnknown: true });
    expect(r.body.devices).toEqual(ids);
    expect(Object.values(r.body.counters).every((c) => c === 1)).toBe(true);
    const watcher = await connectDevice(hub.mqttUrl, 'watcher');
    try {
      const seen = new Set<string>();
      watcher.on('message', (topic, payload) => {
        const a = JSON.parse(Buffer.from(decodeAssignMessage(payload).assignment.payload, 'base64').toString()) as { deviceId: string };
        if (topic === topics.assign(a.deviceId)) seen.add(a.deviceId);
      });
      await watcher.subscribeAsync('fc/v1/dev/+/assign', { qos: 1 });
      await waitFor(() => seen.size === ids.length, 'every retained assignment');
    } finally {
      await watcher.endAsync();
    }
  });
});
