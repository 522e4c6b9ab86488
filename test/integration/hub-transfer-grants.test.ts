/**
 * A device is sent only the bundles the hub assigned it (and the one it would
 * roll back to). On the real hub with MQTT authentication on: a real agent
 * installs churn@1; an enrolled device assigned churn@1 asks for chunks of
 * churn@2, which it was never assigned: the broker sees no publish for churn@2,
 * the refusal is counted and logged once with its code, and its own bundle is
 * still served. It cannot subscribe to churn@2's chunk topics either (to read
 * another device's transfer as it goes by). After churn@2 is assigned to it,
 * churn@1 (its previous assignment) stays fetchable, a third bundle does not.
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
  /** Chunks dev-m received, and chunk publishes the broker routed (counted at the broker, from any subscriber's view). */
  const got: { bundleId: string; index: number }[] = [];
  const brokerSaw: string[] = [];
  const ids: Record<number, string> = {};
  // A refused filter comes back as 0x80 in the SUBACK [MQTT-3.9.3-2], which mqtt.js turns into a rejection.
  const subscribe = (v: number) => mallory.subscribeAsync(topics.chunkFilter(ids[v]), { qos: 1 }).then((g) => g[0].qos, () => 0x80);

  beforeAll(async () => {
    const logger = pino({ level: 'warn' }, { write: (line: string) => { logs.push(JSON.parse(line) as { code?: string; msg: string }); } });
    hub = await startHub({ dataDir: tempDir('fleetcast-hub-'), keysDir: keys.dir, mqttPort: 0, httpPort: 0, mqttClientId: `hub-${process.pid}-grants`, insecureDemo: false }, { logger });
    hub.broker!.aedes.on('publish', (packet, client) => { const t = client ? parseTopic(packet.topic) : undefined; if (t?.kind === 'chunk') brokerSaw.push(t.bundleId); });
    const credentials = new MqttCredentials(hub.store.db);
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
    expect(await subscribe(1)).toBe(1);
  }, 180_000);

  afterAll(async () => { await mallory?.endAsync(true).catch(() => {}); await fleet?.close(); await hub?.close(); });

  /** Ask as dev-m for chunk 0 of bundle `v`; then, as a marker, for chunk 0 of `served` (which it reads) and wait until it arrives. */
  async function ask(v: number, served: number): Promise<void> {
    const markers = () => got.filter((g) => g.bundleId === ids[served] && g.index === 0).length;
    const marker = async () => {
      const seen = markers();
      await mallory.publishAsync(topics.device('dev-m', 'chunk-req'), JSON.stringify({ v: 1, deviceId: 'dev-m', bundleId: ids[served], chunks: [0] }), { qos: 1 });
      await waitFor(() => markers() > seen, `marker chunk 0 of churn@${served}`, 60_000);
    };
    await mallory.publishAsync(topics.device('dev-m', 'chunk-req'), JSON.stringify({ v: 1, deviceId: 'dev-m', bundleId: ids[v], chunks: [0] }), { qos: 1 });
    // The hub handles one device's messages in order, so the marker request is handled after the first one.
    await marker();
    // Flush whatever is still queued and wait for the broker's PUBACKs; the next marker is routed after all of it.
    await hub.transfer.flushNow();
    await marker();
  }

  it('Any_device_downloads_any_bundle: dev-m, assigned churn@1, gets nothing of churn@2; churn@1 is still served; a real agent installed churn@1', async () => {
    expect(fleet.agents[0].status().active?.version).toBe(1);
    const before = hub.transfer.stats.notAssigned;
    await ask(2, 1);
    expect(brokerSaw.filter((b) => b === ids[2])).toEqual([]);
    expect(hub.transfer.stats.notAssigned).toBe(before + 1);
    // Asked again: counted again, logged once.
    await ask(2, 1);
    expect(brokerSaw.filter((b) => b === ids[2])).toEqual([]);
    expect(hub.transfer.stats.notAssigned).toBe(before + 2);
    expect(logs.filter((l) => l.code === 'HUB_ERR_BUNDLE_NOT_ASSIGNED')).toHaveLength(1);
    // The hub kept working and says so.
    const health = await api<{ transfer: Record<string, number> }>(hub, 'GET', '/v1/health', undefined, null);
    expect(health.body.transfer.notAssigned).toBe(before + 2);
  }, 120_000);

  it('Chunk_topics_of_unassigned_bundles_refused: dev-m cannot subscribe to churn@2\'s chunks while another device fetches them', async () => {
    expect(await subscribe(2)).toBe(0x80);
  });

  it('after churn@2 is assigned, churn@1 (the previous assignment, to roll back to) is served; churn@3 never assigned is not', async () => {
    expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 2, devices: ['dev-m'], allowUnknown: true })).status).toBe(200);
    expect(await subscribe(2)).toBe(1);
    expect(await subscribe(3)).toBe(0x80);
    brokerSaw.length = 0;
    await ask(1, 2);
    expect(brokerSaw).toContain(ids[1]);
    const refused = hub.transfer.stats.notAssigned;
    await ask(3, 2);
    expect(brokerSaw.filter((b) => b === ids[3])).toEqual([]);
    expect(hub.transfer.stats.notAssigned).toBe(refused + 1);
  }, 120_000);
});
