/**
 * Gates: a bad bundle halts its rollout in the canary ring by itself, the
 * canary is rolled back to the previous bundle, and no device outside the
 * canary ever receives the bad bundle (watched on the broker: every assign
 * message is decoded). Two kinds of bad bundle, each tripping its own gate:
 * - NaN on every output: the agents' smoke inference refuses it, so the
 *   canary never serves it and the installSuccess gate fails;
 * - NaN only for negative inputs: it passes smoke inference (inputs at 0),
 *   installs and serves, and fails under live traffic, so the errorRate gate
 *   (maxErrorRate) fails on what the canary reported.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { decodeAssignMessage } from '../../protocol/messages.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { rolloutWorld, status, type RolloutWorld } from '../helpers/rollout-fixture.js';

afterAll(cleanupTempDirs);

interface Decision { kind: string; actor: string; gates: { failed?: string[]; errorRate?: number | null; requests?: number; errors?: number; installSuccess?: number | null; thresholds?: { maxErrorRate: number; minInstallSuccess: number } } | null }

/** Every assignment the broker delivers: device ids that got `bundleId`, and messages that were not signed assignments. */
async function watchAssignments(w: RolloutWorld, bundleId: string): Promise<{ got: Set<string>; bad: string[]; client: MqttClient }> {
  const client = await mqtt.connectAsync(w.hub.mqttUrl, { clientId: `watch-${process.pid}-${bundleId.slice(0, 8)}`, reconnectPeriod: 0 });
  const got = new Set<string>();
  const bad: string[] = [];
  // No expect here: a throw inside an MQTT handler would not fail the test; problems are collected and asserted.
  client.on('message', (topic, payload) => {
    if (payload.length === 0) return;
    try {
      const m = decodeAssignMessage(payload);
      if (m.assignment.payloadType !== PAYLOAD_TYPES.assignment) { bad.push(`${topic}: payload type ${m.assignment.payloadType}`); return; }
      const a = JSON.parse(Buffer.from(m.assignment.payload, 'base64').toString('utf8')) as { deviceId: string; bundleId: string };
      if (a.bundleId === bundleId) got.add(a.deviceId);
    } catch (e) { bad.push(`${topic}: ${(e as Error).message}`); }
  });
  await client.subscribeAsync('fc/v1/dev/+/assign', { qos: 1 });
  return { got, bad, client };
}

describe('a bad bundle halts itself in canary', () => {
  let w: RolloutWorld;
  let v1 = '';
  beforeAll(async () => {
    w = await rolloutWorld({ agents: 20 });
    v1 = w.hub.store.getBundleByVersion('churn', 1)!.id;
  }, 150_000);
  afterAll(async () => { await w?.stop(); });

  /**
   * Start a canary(10%) → broad rollout of `version`, wait for the engine to roll it back, check it
   * stopped in the canary (2 devices; the 18 others never started) with start → halt → rollback by the
   * engine; the status, canary and halt decision.
   */
  async function rollOutAndRollBack(version: number) {
    const spec = { rings: [{ name: 'canary', percent: 10 }, { name: 'broad', percent: 100 }], gates: { minRequests: 20, soak: '0s' } };
    const r = await api<{ id: string }>(w.hub, 'POST', '/v1/rollouts', { name: 'churn', version, spec, autoPromote: true });
    expect(r.status).toBe(201);
    const id = r.body.id;
    await waitFor(async () => (await status(w.hub, id)).state === 'rolled-back', 'the rollout to halt and roll back', 45_000);
    const st = await status(w.hub, id);
    const canary = w.hub.rollouts.store.members(id, 0).map((m) => m.deviceId);
    const h = await api<{ decisions: Decision[] }>(w.hub, 'GET', `/v1/rollouts/${id}/history`);
    expect(st.ring).toBe('canary');
    expect(canary).toHaveLength(2);
    expect(st.rings[1].counts.waiting).toBe(18);
    expect(h.body.decisions.map((d) => d.kind)).toEqual(['start', 'halt', 'rollback']);
    const halt = h.body.decisions[1];
    expect(halt.actor).toBe('engine');
    return { st, canary, halt };
  }

  /** The watcher saw the canary's assignments of the bad bundle (so an empty set cannot pass) and nobody else's; none is left. */
  function expectOnlyCanaryGot(watch: { got: Set<string>; bad: string[] }, canary: string[], bad: string): void {
    expect(watch.bad).toEqual([]);
    expect([...watch.got].sort()).toEqual([...canary].sort());
    expect(w.hub.store.listAssignments().filter((a) => a.bundleId === bad)).toHaveLength(0);
  }

  it('halts on a bundle whose smoke inference gives NaN (installSuccess gate), keeps the canary on v1, and nobody else ever gets it', async () => {
    const bad = await w.publish(2, { seed: 2, nanOutput: true });
    const watch = await watchAssignments(w, bad);
    const drive = w.fleet.drive({ concurrency: 4 });
    try {
      const { st, canary, halt } = await rollOutAndRollBack(2);
      expect(st.rings[0].counts['rolled-back']).toBe(2);
      // The decision names the failed gate and its value.
      expect(halt.gates?.failed).toContain('installSuccess');
      expect(halt.gates?.installSuccess).toBe(0);
      // The canary refused it with the smoke-inference code, as a device reported (the halt may come after
      // the first refusal, while the other is still fetching), and no device ever served it.
      await waitFor(() => canary.some((d) => w.hub.store.listEvents(d).some((e) => e.code === 'AGENT_ERR_SMOKE_FAILED')), 'a canary device to report AGENT_ERR_SMOKE_FAILED', 30_000);
      const stats = await drive.stop();
      expect(stats.byVersion['churn@2'] ?? 0).toBe(0);
      for (const d of canary) expect(w.hub.store.getDevice(d)?.state.active?.bundleId).toBe(v1);
      expectOnlyCanaryGot(watch, canary, bad);
    } finally {
      await drive.stop();
      await watch.client.endAsync();
    }
  }, 150_000);

  it('halts on a bundle that passes smoke inference but gives NaN under live traffic (errorRate gate, with its value), and rolls the serving canary back to v1', async () => {
    const bad = await w.publish(3, { seed: 3, nanBelowZero: true });
    const watch = await watchAssignments(w, bad);
    // Live traffic: inputs uniform in [-1, 1], so about half the rows make this model output NaN.
    const drive = w.fleet.drive({ concurrency: 4 });
    try {
      const { canary, halt } = await rollOutAndRollBack(3);
      expect(halt.gates?.failed).toContain('errorRate');
      expect(halt.gates?.failed).not.toContain('installSuccess');
      // The value the gate judged: the canary's own reported requests and errors, over the 1% default.
      const g = halt.gates!;
      expect(g.requests).toBeGreaterThanOrEqual(20);
      expect(g.errors).toBeGreaterThan(0);
      expect(g.errorRate).toBeCloseTo(g.errors! / g.requests!, 10);
      expect(g.errorRate).toBeGreaterThan(g.thresholds!.maxErrorRate);
      expect(g.thresholds!.maxErrorRate).toBe(0.01);
      // The canary really served v3 (so "back on v1" is a rollback, not a refusal), and is back on v1 as the devices report it.
      await waitFor(() => canary.every((d) => w.hub.store.getDevice(d)?.state.active?.bundleId === v1), 'canary back on v1', 45_000);
      const stats = await drive.stop();
      expect(stats.byVersion['churn@3']).toBeGreaterThan(0);
      for (const d of canary) expect(w.hub.store.getAssignment(d)?.bundleId).toBe(v1);
      expectOnlyCanaryGot(watch, canary, bad);
    } finally {
      await drive.stop();
      await watch.client.endAsync();
    }
  }, 150_000);
});
