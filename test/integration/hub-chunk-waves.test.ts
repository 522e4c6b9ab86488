/**
 * Devices of a fleet subscribe and ask for a bundle's chunks at scattered times (sim-scale saw 10,000 devices
 * make the hub flush 135 times). On the real hub with MQTT authentication on, enrolled devices over raw MQTT
 * ask in staggered waves, each after its SUBACK, re-asking like an agent when chunks stop coming: every device
 * gets every chunk, and the hub's flushes start at least chunkRepublishMs apart, so its publishes stay within
 * chunks × (span / chunkRepublishMs + 2) over the span of requests, far fewer than the chunks asked for.
 * A device that subscribes after every publish still completes (QoS 1 does not replay to it: it must be served).
 */
import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../hub/hub.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { encode } from '../../protocol/messages.js';
import { parseTopic, topics } from '../../protocol/topics.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { silentLogger } from '../helpers/hub-fixtures.js';
import { api, makeBundle } from '../helpers/hub-harness.js';
import { connectClient } from '../helpers/mqtt-auth.js';

afterAll(cleanupTempDirs);

const WAVES = 6;
const PER_WAVE = 5;
const WAVE_GAP_MS = 250;
const REPUBLISH_MS = 1_500;
/** Like the agent's chunkTimeoutMs: re-ask for what is missing when nothing arrived for this long. */
const RETRY_MS = 5_000;

describe('chunk requests in staggered waves', () => {
  const keys = makeKeys();
  let hub: Hub;
  let credentials: MqttCredentials;
  let bundleId: string;
  let chunkCount: number;
  const clients: MqttClient[] = [];
  const timers: NodeJS.Timeout[] = [];
  /** When each chunk request reached the chunk server (measurement only; the server itself is untouched). */
  const arrivals: number[] = [];
  const ids = Array.from({ length: WAVES * PER_WAVE + 1 }, (_, i) => `wave-dev-${i}`);

  beforeAll(async () => {
    hub = await startHub({
      dataDir: tempDir('fleetcast-hub-'), keysDir: keys.dir, mqttPort: 0, httpPort: 0, mqttClientId: `hub-${process.pid}-waves`, insecureDemo: false,
      chunkQuietMs: 30, chunkMaxWaitMs: 300, chunkExpectWaitMs: 0, chunkRepublishMs: REPUBLISH_MS,
    }, { logger: silentLogger() });
    credentials = new MqttCredentials(hub.store.db);
    const b = await makeBundle([keys.keys.release], { chunkSize: 16_384, model: { seed: 5, padFloats: 20_000 } });
    const r = await api<{ bundleId: string }>(hub, 'POST', '/v1/bundles', readFileSync(b.path));
    expect(r.status).toBe(201);
    bundleId = r.body.bundleId;
    chunkCount = b.manifest.payload.chunkHashes.length;
    expect(chunkCount).toBeGreaterThan(3);
    expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, devices: ids, allowUnknown: true })).status).toBe(200);
    const request = hub.transfer.request.bind(hub.transfer);
    hub.transfer.request = (req) => { arrivals.push(Date.now()); request(req); };
  }, 120_000);

  afterAll(async () => {
    for (const t of timers) clearTimeout(t);
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await hub?.close();
  });

  /** Connect as an enrolled device, subscribe, wait for the SUBACK, ask for every chunk; resolves with the chunks it got once it has them all. */
  async function fetchAll(id: string): Promise<Set<number>> {
    const c = await connectClient(hub.mqttUrl, { clientId: id, username: id, password: credentials.enrollDevice(id).password });
    clients.push(c);
    const got = new Set<number>();
    return new Promise<Set<number>>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const ask = () => {
        const missing = Array.from({ length: chunkCount }, (_, i) => i).filter((i) => !got.has(i));
        c.publishAsync(topics.device(id, 'chunk-req'), encode({ v: 1, deviceId: id, bundleId, chunks: missing }), { qos: 1 }).catch(reject);
        arm();
      };
      const arm = () => { clearTimeout(timer); timer = setTimeout(ask, RETRY_MS); timers.push(timer); };
      c.on('message', (topic) => {
        const t = parseTopic(topic);
        if (t.kind !== 'chunk' || t.bundleId !== bundleId) return;
        got.add(t.index);
        if (got.size === chunkCount) { clearTimeout(timer); resolve(got); } else arm();
      });
      c.subscribeAsync(topics.chunkFilter(bundleId), { qos: 1 }).then(ask, reject);
    });
  }

  it('Chunk_waves_bounded_publishes: every device of staggered waves completes; publishes ≤ chunks × (span/republish + 2)', async () => {
    const done: Promise<Set<number>>[] = [];
    for (let w = 0; w < WAVES; w++) {
      for (let d = 0; d < PER_WAVE; d++) done.push(fetchAll(ids[w * PER_WAVE + d]));
      await new Promise((r) => setTimeout(r, WAVE_GAP_MS));
    }
    const results = await Promise.all(done);
    for (const got of results) expect(got.size).toBe(chunkCount);
    await hub.transfer.idle();

    // Flushes start ≥ REPUBLISH_MS apart: at most floor(span/REPUBLISH_MS)+1 start within the span of requests, and one after the last.
    const span = Math.max(...arrivals) - Math.min(...arrivals);
    const maxFlushes = Math.floor(span / REPUBLISH_MS) + 2;
    const asked = arrivals.length * chunkCount;
    expect(hub.transfer.stats.flushes).toBeLessThanOrEqual(maxFlushes);
    expect(hub.transfer.stats.published).toBeLessThanOrEqual(chunkCount * maxFlushes);
    // Waves 250 ms apart, 30 ms quiet: without the spacing each wave was a flush of every chunk.
    expect(hub.transfer.stats.published).toBeLessThan(chunkCount * WAVES);
    expect(hub.transfer.stats.published * 5).toBeLessThan(asked);
  }, 60_000);

  it('Chunk_late_subscriber_completes: a device subscribing after every publish is still served', async () => {
    const before = hub.transfer.stats.published;
    const got = await fetchAll(ids[ids.length - 1]);
    expect(got.size).toBe(chunkCount);
    expect(hub.transfer.stats.published - before).toBe(chunkCount);
  }, 60_000);
});
