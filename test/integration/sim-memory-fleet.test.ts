/**
 * The simulator's in-memory storage end to end: a few hundred real agents
 * (simulator/fleet.ts, storage 'memory') against the real hub with
 * authentication on and its embedded broker, each device enrolled with its own
 * MQTT credential. A bundle is deployed to all of them: each verifies the
 * signed assignment, fetches, checks and stages every chunk, unpacks, loads,
 * smoke-tests and swaps, all on memory storage; then they serve predictions
 * whose telemetry reaches the hub. Nothing is written under the fleet's data
 * folder, which proves the memory path was the one taken. The bundle's chunk
 * is large enough for the agents' framers to receive it as the fleet's shared
 * reference (agent/payload-matcher.ts): each device still accepts it only
 * through its own check, and installs the signed model.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../agent/memory-storage.js';
import { TELEMETRY_DEFAULTS } from '../../agent/telemetry/collector.js';
import type { Hub } from '../../hub/hub.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { startFleet, type Fleet } from '../../simulator/fleet.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api, startTestHub } from '../helpers/hub-harness.js';
import { deployMatchedChunkBundle } from '../helpers/matched-chunk-bundle.js';

const DEVICES = 200;

let hub: Hub | undefined;
let fleet: Fleet | undefined;
afterAll(async () => {
  await fleet?.stop();
  await hub?.close();
  cleanupTempDirs();
});

describe('a simulated fleet on in-memory storage', () => {
  it(`${DEVICES} devices install a bundle and report telemetry to the secure hub, with nothing written to disk`, async () => {
    const keys = makeKeys();
    hub = await startTestHub(keys, { insecureDemo: false });
    const h = hub;
    expect(h.options.insecureDemo).toBe(false); // anonymous clients refused, an ACL per device
    const creds = new MqttCredentials(h.store.db);
    const dataDir = join(tempDir('fleetcast-sim-memory-'), 'fleet');
    fleet = await startFleet({
      brokerUrl: h.mqttUrl, agents: DEVICES, rootPath: join(keys.dir, 'root.json'), dataDir, storage: 'memory',
      agentOptionsFor: (_i, deviceId) => { const c = creds.enrollDevice(deviceId); return { mqttUsername: c.username, mqttPassword: c.password }; },
      // Every prediction sampled, a window a second: telemetry within the test's time.
      agentOptions: { chunkTimeoutMs: 30_000, heartbeatMs: 2_000, telemetry: { ...TELEMETRY_DEFAULTS, windowMs: 1_000, sampleRate: 1 } },
    });
    const f = fleet;
    await waitFor(() => h.store.listDevices().length === DEVICES, 'every device to connect with its credential and report', 50_000, 200);

    // A chunk above the framer's matching size (16 KB).
    const b = await deployMatchedChunkBundle(h, keys, 'memfleet');
    await f.waitForVersion('memfleet', 1, 50_000);
    // The hub's registry agrees: every device reports the bundle active.
    await waitFor(() => h.store.listDevices().filter((d) => d.state.active?.bundleId === b.bundleId).length === DEVICES, 'the hub to record every install', 30_000, 200);

    // What each device stored is in its own memory: the state file names the installed bundle, the staging payload is gone.
    for (const i of [0, DEVICES >> 1, DEVICES - 1]) {
      const fs = f.storages[i];
      expect(fs).toBeInstanceOf(MemoryStorage);
      const dev = join(dataDir, f.ids[i]);
      expect(JSON.parse((await fs.readText(join(dev, 'state.json')))!).active.bundleId).toBe(b.bundleId);
      expect((await fs.hash(join(dev, 'models', b.bundleId, 'model.onnx'))).sha256).toBe(b.manifest.payload.rawSha256);
      expect(await fs.list(join(dev, 'staging'))).toEqual([]);
    }
    expect(existsSync(dataDir)).toBe(false);
    // Devices after the first received the chunk as the fleet's reference and were accepted by identity, each by its own check.
    const chunks = b.manifest.payload.chunkHashes.length;
    const st = f.payloadStats!;
    expect(st.byIdentity + st.byCompare + st.hashed).toBe(DEVICES * chunks);
    expect(st.byIdentity).toBeGreaterThan(0);

    // Predictions on every device; their telemetry windows reach the hub.
    const drive = f.drive({ concurrency: 4 });
    try {
      await waitFor(async () => {
        const r = await api<{ devices: { deviceId: string; bundleId: string }[] }>(h, 'GET', '/v1/telemetry/devices');
        return r.body.devices.filter((d) => d.bundleId === b.bundleId).length === DEVICES;
      }, 'telemetry from every device', 50_000, 500);
    } finally {
      const stats = await drive.stop();
      expect(stats.failed).toBe(0);
      expect(stats.byVersion['memfleet@1']).toBeGreaterThanOrEqual(DEVICES);
    }
  }, 180_000);
});
