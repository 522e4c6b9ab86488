/**
 * Issue #3, "Rings": a rollout of 100 real agents through canary (1%), early
 * (10%) and broad (100%) completes on its own when the gates pass; ring sizes
 * match the cumulative percentages; the same devices land in the same rings
 * when the rollout is re-evaluated; devices outside a ring never get the bundle
 * before their ring starts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { placeDevices } from '../../hub/rollouts/rings.js';
import { cleanupTempDirs, waitFor as waitForBase } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { rolloutWorld, status, type RolloutWorld } from '../helpers/rollout-fixture.js';

afterAll(cleanupTempDirs);

describe('a three-ring rollout over 100 simulated agents', () => {
  let w: RolloutWorld;
  beforeAll(async () => { w = await rolloutWorld({ agents: 100 }); }, 150_000);
  afterAll(async () => { await w?.stop(); });

  it('goes canary → early → broad by itself, with ring sizes 1 / 9 / 90, and every agent serves v2', async () => {
    const v2 = await w.publish(2);
    const drive = w.fleet.drive({ concurrency: 4 });
    try {
      // Latency is not what this test is about; on a shared 2-core machine a 1-device canary's p95 is noise.
      const spec = { gates: { soak: '2m', minRequests: 20, maxLatencyRatio: 1000 } };
      const started = await api<{ id: string; rings: { name: string; devices: number }[] }>(w.hub, 'POST', '/v1/rollouts', { name: 'churn', version: 2, spec, autoPromote: true });
      expect(started.status).toBe(201);
      const id = started.body.id;
      // On a timeout, say where the rollout stood.
      const waitFor = (fn: () => Promise<boolean>, what: string, ms: number) => waitForBase(fn, what, ms).catch(async (e: unknown) => {
        throw new Error(`${(e as Error).message}; rollout: ${JSON.stringify(await status(w.hub, id))}`);
      });
      expect(started.body.rings.map((r) => [r.name, r.devices])).toEqual([['canary', 1], ['early', 9], ['broad', 90]]);

      // The canary installs; nobody else has been sent v2 while its soak runs.
      await waitFor(async () => (await status(w.hub, id)).rings[0].counts.installed === 1, 'canary installed', 45_000);
      const holders = () => w.hub.store.listAssignments().filter((a) => a.bundleId === v2).map((a) => a.deviceId);
      expect(holders()).toHaveLength(1);
      await waitFor(async () => (await status(w.hub, id)).rings[0].gates?.waitingOn?.join() === 'soak', 'canary gates waiting on soak only', 45_000);
      expect(holders()).toHaveLength(1);
      expect((await status(w.hub, id)).ring).toBe('canary');

      // Soak passes on the hub's clock: promotion to early, then broad (each soaks again).
      w.clock.t += 3 * 60_000;
      await waitFor(async () => (await status(w.hub, id)).ring === 'early', 'promoted to early', 45_000);
      await waitFor(async () => (await status(w.hub, id)).rings[1].gates?.waitingOn?.join() === 'soak', 'early soaking', 30_000);
      expect(holders()).toHaveLength(10);
      w.clock.t += 3 * 60_000;
      await waitFor(async () => (await status(w.hub, id)).ring === 'broad', 'promoted to broad', 45_000);
      await waitFor(async () => (await status(w.hub, id)).rings[2].gates?.waitingOn?.join() === 'soak', 'broad soaking', 30_000);
      w.clock.t += 3 * 60_000;
      await waitFor(async () => (await status(w.hub, id)).state === 'completed', 'completed', 45_000);
      await w.fleet.waitForVersion('churn', 2, 45_000);
      const final = await status(w.hub, id);
      expect(final.rings.map((r) => r.counts.installed)).toEqual([1, 9, 90]);

      const history = await api<{ decisions: { kind: string; actor: string }[] }>(w.hub, 'GET', `/v1/rollouts/${id}/history`);
      expect(history.body.decisions.map((d) => d.kind)).toEqual(['start', 'promote', 'promote', 'complete']);
      expect(history.body.decisions[0].actor).toMatch(/^admin:tok-/);
      expect(history.body.decisions[1].actor).toBe('engine');

      // Re-evaluating the same rollout over the same fleet places every device in the same ring.
      const members = w.hub.rollouts.store.members(id);
      const row = w.hub.rollouts.get(id);
      const again = placeDevices(id, row.plan.rings, w.hub.store.listDevices().map((d) => ({ id: d.id, capabilities: d.state.capabilities })));
      for (const m of members) expect(again.get(m.deviceId)).toBe(m.ring);
    } finally {
      const s = await drive.stop();
      expect(s.failed).toBe(0);
    }
  }, 180_000);
});
