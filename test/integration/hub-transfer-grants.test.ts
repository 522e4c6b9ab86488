/**
 * A device is sent only the bundles the hub assigned it (and the one it would
 * roll back to). On the real hub with MQTT authentication on: a real agent
 * installs churn@1; an enrolled device assigned churn@1 asks for chunks of
 * churn@2, which it was never assigned: nothing is published for churn@2, the
 * refusal is counted and logged once with its code, and its own bundle is
 * still served. After churn@2 is assigned to it, churn@1 (its previous
 * assignment) stays fetchable, a third bundle does not.
 */
import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHub, type Hub } from '../../hub/hub.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { parseTopic, topics } from '../../protocol/topics.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api, makeBundle } from '../helpers/hub-harness.js';
import { connectClient } from '../helpers/mqtt-auth.js';
import { deployedFleetOn } from '../helpers/trust-fixture.js';

afterAll(cleanupTempDirs);

describe('chunk requests are served only for assigned bundles', () => {
  const keys = makeKeys();
  const logs: { code?: string; msg: string }[] = [];
  let hub: Hub;
  let fleet: Awaited<ReturnType<typeof deployedFleetOn>>;
  let mallory: MqttClient;
  const got: { bundleId: string; index: number }[] = [];
  const ids: Record<number, string> = {};

  beforeAll(async () => {
    const logger = pino({ level: 'warn' }, { write: (line: string) => { logs.push(JSON.parse(line) as { code?: string; msg: string }); } });
    hub = await startHub({ dataDir: tempDir('fleetcast-hub-'), keysDir: keys.dir, mqttPort: 0, httpPort: 0, mqttClientId: `hub-${process.pid}-grants`, insecureDemo: false }, { logger });
    const credentials = new MqttCredentials(hub.store.sqlite);
    const secret = credentials.enrollDevice('dev-m').password;
    // A real agent installs churn@1; dev-m (no agent) is assigned churn@1 too.
    fleet = await deployedFleetOn(hub, keys, ['dev-a'], { credentials, also: ['dev-m'] });
    ids[1] = fleet.bundle.bundleId;
    for (const version of [2, 3]) {
      const b = await makeBundle([keys.keys.release], { version, chunkSize: 4096, model: { seed: version } });
      const r = await api<{ bundleId: string }>(hub, 'POST', '/v1/bundles', readFileSync(b.path));
      expect(r.status).toBe(201);
      ids[version] = r.body.bundleId;
    }
    mallory = await connectClient(hub.mqttUrl, { clientId: 'dev-m', username: 'dev-m', password: secret });
    mallory.on('message', (t) => { const p = parseTopic(t); if (p.kind === 'chunk') got.push({ bundleId: p.bundleId, index: p.index }); });
    for (const v of [1, 2, 3]) await mallory.subscribeAsync(`fc/v1/bundle/${ids[v]}/chunk/+`, { qos: 1 });
  }, 180_000);

  afterAll(async () => { await mallory?.endAsync(true).catch(() => {}); await fleet?.close(); await hub?.close(); });

  /** Ask as dev-m for chunk 0 of bundle `v`; then, as a marker, for chunk 0 of `served` and wait until it arrives. */
  async function ask(v: number, served: number): Promise<void> {
    const markers = () => got.filter((g) => g.bundleId === ids[served] && g.index === 0).length;
    const seen = markers();
    await mallory.publishAsync(topics.device('dev-m', 'chunk-req'), JSON.stringify({ v: 1, deviceId: 'dev-m', bundleId: ids[v], chunks: [0] }), { qos: 1 });
    // The hub handles one device's messages in order, and the broker delivers the hub's publishes to dev-m in
    // order: once the marker chunk arrives, anything published for the first request has arrived before it.
    await mallory.publishAsync(topics.device('dev-m', 'chunk-req'), JSON.stringify({ v: 1, deviceId: 'dev-m', bundleId: ids[served], chunks: [0] }), { qos: 1 });
    await waitFor(() => markers() > seen, `marker chunk 0 of churn@${served}`, 60_000);
    // Flush whatever is still queued, wait for the broker's PUBACKs, then one more marker: it arrives after all of it.
    await hub.transfer.flushNow();
    const again = markers();
    await mallory.publishAsync(topics.device('dev-m', 'chunk-req'), JSON.stringify({ v: 1, deviceId: 'dev-m', bundleId: ids[served], chunks: [0] }), { qos: 1 });
    await waitFor(() => markers() > again, `second marker chunk 0 of churn@${served}`, 60_000);
  }

  it('Any_device_downloads_any_bundle: dev-m, assigned churn@1, gets nothing of churn@2; churn@1 is still served; a real agent installed churn@1', async () => {
    expect(fleet.agents[0].status().active?.version).toBe(1);
    const before = hub.transfer.stats.notAssigned ?? 0;
    await ask(2, 1);
    expect(got.filter((g) => g.bundleId === ids[2])).toEqual([]);
    expect(hub.transfer.stats.notAssigned).toBe(before + 1);
    // Asked again: counted again, logged once.
    await ask(2, 1);
    expect(got.filter((g) => g.bundleId === ids[2])).toEqual([]);
    expect(hub.transfer.stats.notAssigned).toBe(before + 2);
    expect(logs.filter((l) => l.code === 'HUB_ERR_BUNDLE_NOT_ASSIGNED')).toHaveLength(1);
    // The hub kept working and says so.
    const health = await api<{ transfer: Record<string, number> }>(hub, 'GET', '/v1/health', undefined, null);
    expect(health.body.transfer.notAssigned).toBe(before + 2);
  }, 120_000);

  it('after churn@2 is assigned, churn@1 (the previous assignment, to roll back to) is served; churn@3 never assigned is not', async () => {
    expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 2, devices: ['dev-m'] })).status).toBe(200);
    got.length = 0;
    await ask(1, 2);
    expect(got.filter((g) => g.bundleId === ids[1]).map((g) => g.index)).toContain(0);
    const refused = hub.transfer.stats.notAssigned;
    await ask(3, 2);
    expect(got.filter((g) => g.bundleId === ids[3])).toEqual([]);
    expect(hub.transfer.stats.notAssigned).toBe(refused + 1);
  }, 120_000);
});
