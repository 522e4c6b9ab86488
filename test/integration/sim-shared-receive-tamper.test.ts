/**
 * Received chunks shared across simulated devices (agent/payload-matcher.ts,
 * simulator/shared-verify.ts), on the system: the secure hub, its broker, a
 * fault relay that flips the last byte of every chunk on its way to the
 * devices (simulator/link-proxy.ts), and a memory fleet whose framers hand on
 * the fleet's reference for bytes equal to it. Every device behind the relay
 * receives the same tampered bytes, so after the first one they arrive as a
 * shared reference, by identity; each device must still refuse them, and
 * install the signed bytes once the relay stops tampering.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../hub/hub.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { startFleet, type Fleet } from '../../simulator/fleet.js';
import { startLinkProxy, type LinkProxy } from '../../simulator/link-proxy.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { startTestHub } from '../helpers/hub-harness.js';
import { deployMatchedChunkBundle } from '../helpers/matched-chunk-bundle.js';

const DEVICES = 6;

let hub: Hub | undefined;
let proxy: LinkProxy | undefined;
let fleet: Fleet | undefined;
afterAll(async () => {
  await fleet?.stop();
  await proxy?.close();
  await hub?.close();
  cleanupTempDirs();
});

describe('simulated devices sharing received chunks behind a tampering link', () => {
  it('Shared_receive_tampered_in_transit_system: a chunk tampered on the way, handed to devices as the fleet\'s reference, is refused by each; the signed chunk installs once the link is clean', async () => {
    const keys = makeKeys();
    hub = await startTestHub(keys, { insecureDemo: false });
    const h = hub;
    proxy = await startLinkProxy(h.mqttUrl);
    const p = proxy;
    p.setTamper(true);
    const creds = new MqttCredentials(h.store.db);
    const dataDir = join(tempDir('fleetcast-sim-tamper-'), 'fleet');
    fleet = await startFleet({
      brokerUrl: p.url, agents: DEVICES, rootPath: join(keys.dir, 'root.json'), dataDir, storage: 'memory',
      agentOptionsFor: (_i, deviceId) => { const c = creds.enrollDevice(deviceId); return { mqttUsername: c.username, mqttPassword: c.password }; },
      // Ask again soon after refused chunks, and keep asking while the link tampers.
      agentOptions: { chunkTimeoutMs: 500, maxBackoffMs: 1_000, maxFetchAttempts: 1_000 },
    });
    const f = fleet;
    await waitFor(() => h.store.listDevices().length === DEVICES, 'every device to connect through the relay', 30_000, 200);

    const b = await deployMatchedChunkBundle(h, keys, 'tamperfleet');

    // Tampered copies reached devices as the shared reference (by identity), and every chunk so far was refused.
    // (or a device failing its install: asserted below)
    await waitFor(() => (f.payloadStats!.byIdentity >= DEVICES && p.stats.tampered >= 2 * DEVICES) || f.agents.some((a) => a.status().lastError),
      'tampered chunks to reach the devices as a shared reference', 40_000, 100);
    expect(f.versions()).toEqual({ none: DEVICES });
    // Refused chunk by chunk, as each arrived: no device got as far as a whole payload to refuse.
    expect(f.agents.map((a) => a.status().lastError?.code ?? null)).toEqual(Array(DEVICES).fill(null));

    p.setTamper(false);
    await f.waitForVersion('tamperfleet', 1, 40_000);
    // Each installed the signed model.
    for (let i = 0; i < DEVICES; i++) {
      expect((await f.storages[i].hash(join(dataDir, f.ids[i], 'models', b.bundleId, 'model.onnx'))).sha256).toBe(b.manifest.payload.rawSha256);
    }
  }, 120_000);
});
