/**
 * A real hub (embedded aedes, SQLite in a temp folder) and a fleet of real
 * in-process agents (simulator/fleet.ts) running `base@1`, for the rollout
 * suites. The hub's clock is a variable the test moves (soak, grace, windows).
 */
import { join } from 'node:path';
import type { MlpOptions } from '../../bundle-build/onnx-build.js';
import type { Hub } from '../../hub/hub.js';
import type { HubOptionsInput } from '../../hub/options.js';
import { startFleet, type Fleet } from '../../simulator/fleet.js';
import { makeKeys, tempDir, waitFor } from './env.js';
import { api, makeBundle, startTestHub } from './hub-harness.js';

export interface RolloutWorld {
  hub: Hub;
  fleet: Fleet;
  keys: ReturnType<typeof makeKeys>;
  clock: { t: number };
  publish(version: number, model?: MlpOptions, name?: string): Promise<string>;
  stop(): Promise<void>;
}

export async function rolloutWorld(o: { agents: number; name?: string; hub?: Partial<HubOptionsInput>; capabilitiesFor?: (i: number) => Record<string, unknown>; deployBase?: boolean } ): Promise<RolloutWorld> {
  const keys = makeKeys();
  // Near real time: agents check assignment expiry against their own clock.
  const clock = { t: Date.now() };
  const hub = await startTestHub(keys, { rolloutTickMs: 50, ...o.hub }, { now: () => clock.t });
  const name = o.name ?? 'churn';
  const publish = async (version: number, model: MlpOptions = { seed: version }, n = name) => {
    const b = await makeBundle([keys.keys.release], { name: n, version, model });
    const { readFileSync } = await import('node:fs');
    const r = await api<{ bundleId: string }>(hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b.path)));
    if (r.status >= 300) throw new Error(`publish failed: ${JSON.stringify(r.body)}`);
    return r.body.bundleId;
  };
  const fleet = await startFleet({
    brokerUrl: hub.mqttUrl, agents: o.agents, rootPath: join(keys.dir, 'root.json'), dataDir: tempDir('fleetcast-rollout-fleet-'),
    agentOptions: { heartbeatMs: 1_000, chunkTimeoutMs: 500 }, capabilitiesFor: o.capabilitiesFor,
  });
  await waitFor(() => hub.store.listDevices().length === o.agents, 'every agent to report', 60_000);
  if (o.deployBase !== false) {
    await publish(1);
    const d = await api(hub, 'POST', '/v1/deployments', { name, version: 1, all: true });
    if (d.status !== 200) throw new Error(`base deploy failed: ${JSON.stringify(d.body)}`);
    await fleet.waitForVersion(name, 1, 60_000);
  }
  return {
    hub, fleet, keys, clock, publish,
    async stop() { await fleet.stop(); await hub.close(); },
  };
}

export interface RingView { name: string; devices: number; counts: Record<string, number>; gates: { verdict?: string; failed?: string[]; waitingOn?: string[] } | null }
export interface RolloutView { id: string; state: string; ring: string; ringIndex: number; awaitingPromotion: boolean; rings: RingView[]; skipped: { deviceId: string; reason: string }[] }

export async function status(hub: Hub, id: string): Promise<RolloutView> {
  const r = await api<RolloutView>(hub, 'GET', `/v1/rollouts/${id}`);
  if (r.status !== 200) throw new Error(JSON.stringify(r.body));
  return r.body;
}
