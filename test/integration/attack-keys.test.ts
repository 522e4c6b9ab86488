/**
 * The rest of the threat model (issue #6), one named test per attack: key
 * compromise below the release threshold, a root that expired (injected
 * clock), slow retrieval, and replayed device reports on the real hub.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { decodeChunkRequest, encode } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { rotateRootFiles } from '../../signing/root-files.js';
import { fixture, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { makeBundle, resign, type TestBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, makeKeys, waitFor } from '../helpers/env.js';
import { api, startTestHub } from '../helpers/hub-harness.js';
import { connectClient } from '../helpers/mqtt-auth.js';

afterAll(cleanupTempDirs);

describe('release threshold 2 of 2, an expired root, slow retrieval', () => {
  let fx: Fixture;
  let agent: Agent;
  let good: TestBundle;
  let base: TestBundle;
  const second = { ...generateKeyPair(), role: 'release' as const };
  const DEV = 'dev-keys';
  let counter = 10;

  beforeAll(async () => {
    fx = await fixture();
    // Root v2 (provisioned as is): two release keys, both must sign.
    rotateRootFiles(fx.keys.dir, { signers: [fx.keys.keys.root], change: { roles: { release: { add: [second.publicKey], threshold: 2 } } } });
    base = await makeBundle(fx.keys, { version: 1, mlp: { seed: 61 } });
    good = fx.hub.add(resign(base, [fx.keys.keys.release, second], () => {}));
    // No transfer-rate floor here: a floor of 40 KB/s over 500 ms would also fail a legitimate small
    // install that a loaded machine stretches past one window. The slow-retrieval case has its own agent.
    agent = fx.newAgent(DEV, { chunkTimeoutMs: 2_000, maxFetchAttempts: 4, maxBackoffMs: 2_000 });
    await agent.start();
    await fx.hub.assign(DEV, good, counter);
    await waitInstalled(agent, good.bundleId);
  });
  afterAll(async () => { await fx?.close(); });

  async function refused(code: string, b: TestBundle) {
    const seen = fx.hub.events.length;
    await fx.hub.assign(DEV, fx.hub.add(b), ++counter);
    await waitFor(() => fx.hub.events.slice(seen).some((e) => e.deviceId === DEV && e.code === code), `${code} reported`);
    await agent.idle();
    expect(agent.status().active?.bundleId).toBe(good.bundleId);
  }

  it('attack: one release key of two (below threshold)', () => refused('AGENT_ERR_MANIFEST_SIGNATURE', resign(base, [second], (m) => { m.version = 2; })));

  it('attack: the same release key counted twice', () => refused('AGENT_ERR_MANIFEST_SIGNATURE', resign(base, [fx.keys.keys.release, fx.keys.keys.release], (m) => { m.version = 3; })));

  it('attack: indefinite freeze — an expired root (clock injected past its expiry) accepts nothing new', async () => {
    const late = fx.newAgent('dev-late', {}, { now: () => Date.now() + 400 * 86_400_000 });
    const rejected: string[] = [];
    late.on('rejected', (r) => rejected.push(r.code));
    await late.start();
    await fx.hub.assign('dev-late', good, 1);
    await waitFor(() => rejected.includes('AGENT_ERR_ROOT_EXPIRED'), 'root expired');
    await waitFor(() => fx.hub.eventCodes('dev-late').includes('AGENT_ERR_ROOT_EXPIRED'), 'reported');
    expect(late.status().active).toBeNull();
  });

  it('attack: slow retrieval — a transfer trickled below the minimum rate is abandoned and reported', async () => {
    // ~400 KB of incompressible model in 1 KB chunks, served one chunk per request (about 7 KB/s).
    const slow = resign(await makeBundle(fx.keys, { version: 4, mlp: { seed: 64, padFloats: 100_000 }, chunkSize: 1024 }), [fx.keys.keys.release, second], () => {});
    const server = await mqtt.connectAsync(fx.broker.url, { clientId: `slow-${process.pid}` });
    try {
      await server.subscribeAsync(topics.allDevices('chunk-req'), { qos: 1 });
      server.on('message', (_t, payload) => {
        const r = decodeChunkRequest(payload);
        if (r.bundleId !== slow.bundleId) return;
        const i = r.chunks[0];
        const size = slow.manifest.payload.chunkSize;
        void server.publishAsync(topics.chunk(slow.bundleId, i), slow.payload.subarray(i * size, (i + 1) * size), { qos: 1 });
      });
      // A device with the floor whose only fetch is the trickle (so no legitimate install is judged by it):
      // however slow the machine, the trickle only gets slower, so it stays below the floor.
      const victim = fx.newAgent(`${DEV}-slow`, { chunkTimeoutMs: 150, minTransferBytesPerSec: 40_000, rateWindowMs: 500 });
      await victim.start();
      await fx.hub.assign(`${DEV}-slow`, slow, 1);
      await waitFor(() => fx.hub.eventCodes(`${DEV}-slow`).includes('AGENT_ERR_FETCH_SLOW'), 'AGENT_ERR_FETCH_SLOW reported', 30_000);
      await victim.idle();
      expect(victim.status()).toMatchObject({ active: null, lastError: { code: 'AGENT_ERR_FETCH_SLOW' } });
    } finally { await server.endAsync(true); }
  });
});

describe('replayed device reports', () => {
  it('attack: a replayed state report or event is dropped by the hub', async () => {
    const hub = await startTestHub(makeKeys());
    const dev = await connectClient(hub.mqttUrl, { clientId: 'dev-replay' });
    try {
      const state = (seq: number, phase: string) => encode({ v: 1, deviceId: 'dev-replay', seq, at: seq, agentVersion: 't', runtime: 't', active: null, previous: null, phase, target: null, progress: null, lastError: null, counter: 0, capabilities: {} });
      const event = (seq: number) => encode({ v: 1, deviceId: 'dev-replay', seq, at: seq, kind: 'security', code: `C${seq}` });
      await dev.publishAsync(topics.device('dev-replay', 'state'), state(5, 'fetching'), { qos: 1 });
      await dev.publishAsync(topics.device('dev-replay', 'event'), event(7), { qos: 1 });
      // The replays: an older state (would roll the registry back) and the same event again.
      await dev.publishAsync(topics.device('dev-replay', 'state'), state(3, 'idle'), { qos: 1 });
      await dev.publishAsync(topics.device('dev-replay', 'event'), event(7), { qos: 1 });
      // A fresh event after them: once it is in, the replays before it were handled.
      await dev.publishAsync(topics.device('dev-replay', 'event'), event(8), { qos: 1 });
      await waitFor(() => hub.store.listEvents('dev-replay', 10).some((e) => e.seq === 8), 'fresh event recorded');
      expect(hub.store.listEvents('dev-replay', 10).map((e) => e.seq).sort()).toEqual([7, 8]);
      const d = await api<{ state: { seq: number; phase: string } }>(hub, 'GET', '/v1/devices/dev-replay');
      expect(d.body.state).toMatchObject({ seq: 5, phase: 'fetching' });
    } finally {
      await dev.endAsync(true);
      await hub.close();
    }
  });
});
