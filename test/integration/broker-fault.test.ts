/**
 * A fault inside the embedded broker must not end the hub (hub/broker.ts): the
 * compiled hub, secure, with enrolled devices; a message makes the broker's
 * emitter throw (the test-only FLEETCAST_TEST_BROKER_FAULT hook, standing in
 * for a fault in aedes such as mqemitter's stack overflow). Before, the process
 * died with the uncaught exception and took the API and the store with it.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { StormFleet } from '../../bench/storm-fleet.js';
import { buildBundle } from '../../bundle-build/build.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { HubStore } from '../../hub/store.js';
import { buildCli } from '../helpers/build-cli.js';
import { cleanupTempDirs, freePort, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { startHubProcess, type HubProcess } from '../helpers/hub-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FAULT_TOPIC = 'fc/v1/dev/fault-a/event';

let hub: HubProcess | undefined;
let fleet: StormFleet | undefined;
afterAll(async () => { fleet?.stop(); await hub?.stop(); cleanupTempDirs(); });

interface Health { ok: boolean; devices: number; broker: { connected: boolean; faults?: number; restarts?: number } }

describe('embedded broker fault', () => {
  it('Broker_fault_contained: the hub logs HUB_ERR_BROKER_FAULT, keeps serving its API, restarts the broker on the same port, and devices get their assignments again', async () => {
    const cli = await buildCli(ROOT);
    const keys = makeKeys();
    const dataDir = tempDir('fleetcast-fault-');
    const store = HubStore.open(dataDir);
    const creds = new MqttCredentials(store.db);
    const specs = ['fault-a', 'fault-b'].map((id) => ({ id, password: creds.enrollDevice(id).password }));
    store.close();
    const mqttPort = await freePort();
    hub = await startHubProcess(ROOT, cli, ['--data', dataDir, '--keys', keys.dir, '--host', '127.0.0.1', '--mqtt-port', String(mqttPort), '--http-port', '0', '--log-level', 'warn'],
      { ...process.env, FLEETCAST_TEST_BROKER_FAULT: FAULT_TOPIC });
    const h = hub;
    const health = async () => (await (await fetch(`${h.httpUrl}/v1/health`)).json()) as Health;
    fleet = new StormFleet(specs, h.mqttUrl, { baseMs: 100, capMs: 1_000 });
    const f = fleet;
    f.start();
    await waitFor(async () => f.count((d) => d.connected && d.subscribed && d.ackedSeq === 1) === 2 && (await health()).devices === 2, 'both devices to connect and report', 60_000);
    // An assignment for each, retained on the broker: after a broker restart only the hub can give it back.
    const bundle = await buildBundle({ model: buildMlp({ seed: 7 }), name: 'fault', version: 1, releaseKeys: [keys.keys.release], out: join(tempDir(), 'fault-1.fcb') });
    const auth = { authorization: `Bearer ${readFileSync(h.tokenFile, 'utf8').trim()}` };
    expect((await fetch(`${h.httpUrl}/v1/bundles`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: readFileSync(bundle.path) })).status).toBe(201);
    expect((await fetch(`${h.httpUrl}/v1/deployments`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'fault', version: 1, all: true }) })).status).toBe(200);
    await waitFor(() => f.count((d) => d.assigns > 0) === 2, 'both assignments delivered', 60_000);

    const faultAt = Date.now();
    f.devices[0].publish(FAULT_TOPIC, Buffer.from('{}'));
    await waitFor(async () => { if (h.proc.exitCode !== null) throw new Error(`hub exited ${h.proc.exitCode}: ${h.err().slice(-1500)}`); return (await health()).broker.restarts === 1; }, 'the broker to restart', 60_000);
    // Every device reconnects to the new broker and is given its assignment again by the hub.
    await waitFor(() => f.count((d) => d.connected && d.subscribed && d.connects >= 2 && d.lastAssignAt >= faultAt) === 2, 'both devices back with their assignments', 60_000);
    const after = await health();
    expect(h.proc.exitCode).toBeNull();
    expect(after).toMatchObject({ ok: true, devices: 2, broker: { connected: true, faults: 1, restarts: 1 } });
    expect(h.err()).toContain('HUB_ERR_BROKER_FAULT');
    expect(h.err()).toContain(`test fault injected on ${FAULT_TOPIC}`);
  }, 180_000);
});
