/**
 * Issue #3, "Gates": a bundle whose outputs are NaN fails its health gate in the
 * canary ring; the rollout halts by itself and rolls the canary back to the
 * previous bundle, and no device outside the canary ever receives the bad
 * bundle (watched on the broker: every assign message is decoded).
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { decodeAssignMessage } from '../../protocol/messages.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { rolloutWorld, status, type RolloutWorld } from '../helpers/rollout-fixture.js';

afterAll(cleanupTempDirs);

describe('a bad bundle halts itself in canary', () => {
  let w: RolloutWorld;
  beforeAll(async () => { w = await rolloutWorld({ agents: 20 }); }, 150_000);
  afterAll(async () => { await w?.stop(); });

  it('halts on NaN outputs, rolls canary back to v1, and nobody else ever gets v2', async () => {
    const v1 = w.hub.store.getBundleByVersion('churn', 1)!.id;
    const bad = await w.publish(2, { seed: 2, nanOutput: true });
    // Watch every assignment the broker delivers.
    const watcher = await mqtt.connectAsync(w.hub.mqttUrl, { clientId: `watch-${process.pid}`, reconnectPeriod: 0 });
    const gotBad = new Set<string>();
    watcher.on('message', (_t, payload) => {
      if (payload.length === 0) return;
      const m = decodeAssignMessage(payload);
      expect(m.assignment.payloadType).toBe(PAYLOAD_TYPES.assignment);
      const a = JSON.parse(Buffer.from(m.assignment.payload, 'base64').toString('utf8')) as { deviceId: string; bundleId: string };
      if (a.bundleId === bad) gotBad.add(a.deviceId);
    });
    await watcher.subscribeAsync('fc/v1/dev/+/assign', { qos: 1 });

    const drive = w.fleet.drive({ concurrency: 4 });
    try {
      const spec = { rings: [{ name: 'canary', percent: 10 }, { name: 'broad', percent: 100 }], gates: { minRequests: 20, soak: '0s' } };
      const r = await api<{ id: string }>(w.hub, 'POST', '/v1/rollouts', { name: 'churn', version: 2, spec, autoPromote: true });
      expect(r.status).toBe(201);
      const id = r.body.id;
      await waitFor(async () => (await status(w.hub, id)).state === 'rolled-back', 'the rollout to halt and roll back', 30_000);
      const st = await status(w.hub, id);
      expect(st.ring).toBe('canary');
      const canary = w.hub.rollouts.store.members(id, 0).map((m) => m.deviceId);
      expect(canary).toHaveLength(2);
      expect(st.rings[0].counts['rolled-back']).toBe(2);
      expect(st.rings[1].counts.waiting).toBe(18);

      // The decision names the failed gate and its values.
      const h = await api<{ decisions: { kind: string; actor: string; gates: { failed?: string[]; errorRate?: number } | null }[] }>(w.hub, 'GET', `/v1/rollouts/${id}/history`);
      expect(h.body.decisions.map((d) => d.kind)).toEqual(['start', 'halt', 'rollback']);
      const halt = h.body.decisions[1];
      expect(halt.actor).toBe('engine');
      expect(halt.gates?.failed?.length).toBeGreaterThan(0);

      // Canary devices run v1 again, as they report it (not as the hub hoped).
      await waitFor(() => canary.every((d) => w.hub.store.getDevice(d)?.state.active?.bundleId === v1), 'canary back on v1', 45_000);
      for (const d of canary) expect(w.hub.store.getAssignment(d)?.bundleId).toBe(v1);
      // Nobody outside the canary was ever sent v2.
      // The watcher did see the canary's v2 assignments (so an empty set cannot pass), and nobody else's.
      expect([...gotBad].sort()).toEqual([...canary].sort());
      expect(w.hub.store.listAssignments().filter((a) => a.bundleId === bad)).toHaveLength(0);
    } finally {
      await drive.stop();
      await watcher.endAsync();
    }
  }, 150_000);
});
