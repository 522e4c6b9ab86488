/**
 * The rollout drift gate (issues #3 ↔ #5): real agents run v1, a staged rollout
 * of v2 starts with `maxDrift: 1` (1 = the bundle's drift thresholds), and the
 * devices' inputs shift by 1σ on x[3]. The canary's telemetry reaches the hub,
 * the DriftReader reports x[3] past its threshold, and the rollout halts and
 * rolls the canary back, with the drift gate named in the decision.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../hub/hub.js';
import { startFleet, type Fleet } from '../../simulator/fleet.js';
import { scenarioGenerator, type Shift } from '../../simulator/scenarios.js';
import { cleanupTempDirs, makeKeys, tempDir, waitFor } from '../helpers/env.js';
import { api, startTestHub } from '../helpers/hub-harness.js';
import { publishModel, referenceRows, type PublishedModel } from '../helpers/telemetry-fleet.js';

const FEATURES = ['x[0]', 'x[1]', 'x[2]', 'x[3]'];
let hub: Hub;
let fleet: Fleet;
const models: PublishedModel[] = [];

beforeAll(async () => {
  const keys = makeKeys();
  hub = await startTestHub(keys, { rolloutTickMs: 50, telemetry: { bucketMs: 100, flushMs: 50, driftIntervalMs: 0, minN: 100 } });
  fleet = await startFleet({
    brokerUrl: hub.mqttUrl, agents: 20, rootPath: join(keys.dir, 'root.json'), dataDir: tempDir('fleetcast-gate-fleet-'),
    agentOptions: { heartbeatMs: 500, chunkTimeoutMs: 500, telemetry: { windowMs: 250, sampleRate: 1, maxBuffered: 120, debugRowsPerWindow: 0, format: 'binary', maxReportBytes: 256 * 1024 } },
  });
  await waitFor(() => hub.store.listDevices().length === 20, 'every agent to report', 20_000);
  const reference = referenceRows(FEATURES, 3000, 8);
  models.push(await publishModel(hub, [keys.keys.release], { name: 'churn', version: 1, mlp: { features: 4, seed: 1 }, reference }));
  expect((await api(hub, 'POST', '/v1/deployments', { name: 'churn', version: 1, all: true })).status).toBe(200);
  await fleet.waitForVersion('churn', 1, 25_000);
  models.push(await publishModel(hub, [keys.keys.release], { name: 'churn', version: 2, mlp: { features: 4, seed: 1 }, reference }));
}, 90_000);

afterAll(async () => {
  await fleet?.stop();
  await Promise.all(models.map((m) => m.model.release()));
  await hub?.close();
  cleanupTempDirs();
});

describe('the rollout drift gate', () => {
  it('halts a rollout whose canary shows drift past its gate, and rolls the canary back', async () => {
    const shifts: Shift[] = [];
    const gen = scenarioGenerator({ shifts }, 3);
    const drive = fleet.drive({ concurrency: 4, inputsFor: (id, inputs) => gen.body(id, inputs, Date.now(), 4) });
    try {
      shifts.push({ feature: 'x[3]', devices: 'all', at: Date.now(), mean: 1 });
      const spec = { rings: [{ name: 'canary', percent: 10 }, { name: 'broad', percent: 100 }], gates: { maxDrift: 1, minRequests: 0, soak: '10m' } };
      const r = await api<{ id: string }>(hub, 'POST', '/v1/rollouts', { name: 'churn', version: 2, spec, autoPromote: true });
      expect(r.status).toBe(201);
      const id = r.body.id;
      // The default failure policy is rollback: the rollout must end rolled back, not merely halted.
      await waitFor(async () => (await api<{ state: string }>(hub, 'GET', `/v1/rollouts/${id}`)).body.state === 'rolled-back', 'the drift gate to halt the rollout and roll it back', 45_000);
      const h = await api<{ decisions: { kind: string; actor: string; gates: { failed?: string[]; drift?: number } | null }[] }>(hub, 'GET', `/v1/rollouts/${id}/history`);
      expect(h.body.decisions.map((d) => d.kind)).toEqual(['start', 'halt', 'rollback']);
      const halt = h.body.decisions[1];
      expect(halt.actor).toBe('engine');
      expect(halt.gates!.failed).toEqual(['drift']);
      expect(halt.gates!.drift!).toBeGreaterThan(1);
      // The reading behind it: x[3], on the canary ring, with enough data.
      const canary = hub.rollouts.store.members(id, 0).map((m) => m.deviceId);
      expect(canary.length).toBe(2);
      const reading = hub.telemetry.reader.maxDrift(models[1].bundleId, 'canary', 0);
      expect(reading.value!).toBeGreaterThan(1);
      expect(reading.n).toBeGreaterThanOrEqual(100);
      // Of the inputs only x[3] drifted (the model's outputs, fed by x[3], may drift too: prediction drift).
      const report = hub.telemetry.report({ bundleId: models[1].bundleId, ring: 'canary', since: 0 });
      expect([...new Set(report.rows.filter((x) => x.verdict === 'drift' && x.kind === 'input').map((x) => x.feature))]).toEqual(['x[3]']);
      // Nobody outside the canary was assigned v2.
      expect(hub.store.listAssignments().filter((a) => a.bundleId === models[1].bundleId && !canary.includes(a.deviceId))).toEqual([]);
      // Rolled back on the devices: the canary served v2 (so this is a rollback, not a refusal), and each
      // canary device reports v1 active again, assigned v1; the rest never left v1.
      const stats = await drive.stop();
      expect(stats.byVersion['churn@2']).toBeGreaterThan(0);
      await waitFor(() => canary.every((d) => hub.store.getDevice(d)?.state.active?.bundleId === models[0].bundleId), 'canary devices to report v1 active again', 45_000);
      for (const d of canary) expect(hub.store.getAssignment(d)?.bundleId).toBe(models[0].bundleId);
      expect(hub.store.listDevices().filter((d) => d.state.active?.bundleId !== models[0].bundleId).map((d) => d.id)).toEqual([]);
    } finally {
      await drive.stop();
    }
  }, 60_000);
});
