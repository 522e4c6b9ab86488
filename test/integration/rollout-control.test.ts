/**
 * Issue #3, "Lifecycle", "Compatibility" and "Offline devices", on 12 real
 * agents and the hub's injected clock: pause / resume / manual promote;
 * a maintenance window holds installs until the clock enters it; abort;
 * one active rollout per model (refused, then --supersede, recorded);
 * incompatible devices skipped with the reason; an offline device is pending
 * (not failed) until its grace period ends, then timed out, and installs when
 * it returns.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../agent/agent.js';
import { buildBundle } from '../../bundle-build/build.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { api } from '../helpers/hub-harness.js';
import { rolloutWorld, status, type RolloutWorld } from '../helpers/rollout-fixture.js';

afterAll(cleanupTempDirs);

type History = { decisions: { kind: string; reason: string; actor: string }[] };
const start = (w: RolloutWorld, body: Record<string, unknown>) => api<{ id: string; state: string; rings: { devices: number }[] }>(w.hub, 'POST', '/v1/rollouts', { name: 'churn', ...body });
const act = (w: RolloutWorld, id: string, a: string, reason?: string) => api<{ state: string; ring: string; error?: { code: string } }>(w.hub, 'POST', `/v1/rollouts/${id}/${a}`, reason ? { reason } : {});
const history = async (w: RolloutWorld, id: string) => (await api<History>(w.hub, 'GET', `/v1/rollouts/${id}/history`)).body.decisions;
const holders = (w: RolloutWorld, bundleId: string) => w.hub.store.listAssignments().filter((a) => a.bundleId === bundleId).map((a) => a.deviceId);

describe('operating rollouts', () => {
  let w: RolloutWorld;
  // Two devices report no GPU.
  beforeAll(async () => { w = await rolloutWorld({ agents: 12, capabilitiesFor: (i) => ({ hardware: i < 2 ? ['cpu'] : ['cpu', 'gpu'] }) }); }, 150_000);
  afterAll(async () => { await w?.stop(); });

  it('pauses, resumes, waits for a manual promote, and records who did what', async () => {
    const v2 = await w.publish(2);
    const spec = { rings: [{ name: 'lab', devices: ['sim-00', 'sim-01'] }, { name: 'rest', percent: 100 }], gates: { minRequests: 0, soak: '1m' } };
    const r = await start(w, { version: 2, spec, reason: 'weekly model' });
    expect(r.status).toBe(201);
    const id = r.body.id;
    expect(r.body.rings.map((x) => x.devices)).toEqual([2, 10]);
    expect((await act(w, id, 'pause', 'checking dashboards')).body.state).toBe('paused');
    expect((await act(w, id, 'pause')).body.error?.code).toBe('HUB_ERR_ROLLOUT_STATE');
    expect((await act(w, id, 'resume')).body.state).toBe('running');
    await waitFor(async () => (await status(w.hub, id)).rings[0].counts.installed === 2, 'lab installed', 45_000);
    // Soak is on the hub's clock; until it passes the ring waits.
    await waitFor(async () => (await status(w.hub, id)).rings[0].gates?.waitingOn?.join() === 'soak', 'lab soaking', 30_000);
    w.clock.t += 2 * 60_000;
    await waitFor(async () => (await status(w.hub, id)).awaitingPromotion, 'awaiting a manual promote', 30_000);
    expect(holders(w, v2).sort()).toEqual(['sim-00', 'sim-01']);
    expect((await act(w, id, 'promote', 'looks good')).body.ring).toBe('rest');
    await waitFor(async () => (await status(w.hub, id)).rings[1].gates?.waitingOn?.join() === 'soak', 'rest installed and soaking', 45_000);
    w.clock.t += 2 * 60_000;
    await waitFor(async () => (await status(w.hub, id)).state === 'completed', 'completed', 30_000);
    const h = await history(w, id);
    expect(h.map((d) => d.kind)).toEqual(['start', 'pause', 'resume', 'promote', 'complete']);
    expect(h[0].reason).toBe('weekly model');
    expect(h[1]).toMatchObject({ reason: 'checking dashboards', actor: expect.stringMatching(/^admin:/) });
    expect(h[3].reason).toContain('looks good');
    expect((await act(w, id, 'abort')).body.error?.code).toBe('HUB_ERR_ROLLOUT_STATE');
  }, 120_000);

  it('holds installs outside the maintenance window, refuses a second rollout unless superseding, and aborts', async () => {
    const v3 = await w.publish(3);
    const v4 = await w.publish(4);
    const hour = (new Date(w.clock.t).getUTCHours() + 2) % 24;
    const window = `* ${hour} * * *`;
    const a = await start(w, { version: 3, window, autoPromote: true, spec: { gates: { minRequests: 0, soak: '0s' } } });
    expect(a.status).toBe(201);
    const refused = await start(w, { version: 4 });
    expect(refused).toMatchObject({ status: 409, body: { error: { code: 'HUB_ERR_ROLLOUT_ACTIVE' } } });
    const b = await start(w, { version: 4, window, supersede: true, reason: 'v3 has a known bug', spec: { rings: [{ name: 'all', percent: 100 }], gates: { minRequests: 0, soak: '0s' } } });
    expect(b.status).toBe(201);
    expect((await status(w.hub, a.body.id)).state).toBe('superseded');
    expect((await history(w, a.body.id)).map((d) => d.kind)).toEqual(['start', 'supersede']);
    expect((await history(w, a.body.id))[1].reason).toContain('v3 has a known bug');
    // Outside the window nothing is sent, however many ticks pass.
    await w.hub.rollouts.engine.tick();
    await w.hub.rollouts.engine.tick();
    expect(holders(w, v3)).toEqual([]);
    expect(holders(w, v4)).toEqual([]);
    // Into the window (the clock moves to hour:00): v4 goes out.
    const d = new Date(w.clock.t);
    w.clock.t = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + (hour < d.getUTCHours() ? 1 : 0), hour, 0, 5);
    await waitFor(() => holders(w, v4).length === 12, 'v4 assigned inside the window', 30_000);
    expect((await act(w, b.body.id, 'abort', 'enough')).body.state).toBe('aborted');
    expect((await history(w, b.body.id)).map((x) => x.kind)).toEqual(['start', 'abort']);
    expect(holders(w, v3)).toEqual([]);
  }, 120_000);

  it('skips incompatible devices with the reason, and waits for an offline device: pending, then timed out, then installed', async () => {
    await w.fleet.waitForVersion('churn', 4, 45_000);
    const out = join(tempDir('fleetcast-gpu-'), 'gpu.fcb');
    const b = await buildBundle({ model: buildMlp({ seed: 5 }), name: 'churn', version: 5, releaseKeys: [w.keys.keys.release], out, schema: { compat: { hardware: ['gpu'] } } });
    expect((await api(w.hub, 'POST', '/v1/bundles', new Uint8Array(readFileSync(b.path)))).status).toBe(201);
    // sim-11 goes offline before its ring starts.
    const off = w.fleet.agents[11];
    const opts = off.options;
    await off.stop();
    const r = await start(w, { version: 5, spec: { rings: [{ name: 'all', percent: 100 }], gates: { minRequests: 0, soak: '0s', grace: '5m', minInstallSuccess: 0.9 } } });
    const id = r.body.id;
    await waitFor(async () => (await status(w.hub, id)).rings[0].counts.installed === 9, 'the compatible online devices installed', 20_000)
      .catch(async (e: unknown) => { throw new Error(`${(e as Error).message}: ${JSON.stringify(await status(w.hub, id))} ${JSON.stringify(w.hub.store.listDevices().map((d) => [d.id, d.state.active?.version, d.state.lastError?.code]))}`); });
    let s = await status(w.hub, id);
    expect(s.skipped.map((x) => x.deviceId).sort()).toEqual(['sim-00', 'sim-01']);
    expect(s.skipped[0].reason).toMatch(/needs hardware gpu/);
    expect(holders(w, b.bundleId)).not.toContain('sim-00');
    expect(s.rings[0].counts).toMatchObject({ pending: 1, skipped: 2, failed: 0, 'timed-out': 0 });
    expect(s.state).toBe('running');
    // Past the grace period it counts against the ring (9 of 10 = 90%: still passes the 0.9 bar).
    w.clock.t += 6 * 60_000;
    await waitFor(async () => (await status(w.hub, id)).rings[0].counts['timed-out'] === 1, 'timed out after grace', 30_000);
    s = await status(w.hub, id);
    expect(s.state).toBe('completed');
    // It comes back, finds its retained assignment, installs, and the registry shows it.
    const back = createAgent({ ...opts }, {});
    try {
      await back.start();
      await waitFor(() => back.status().active?.version === 5, 'the returning device installs v5', 45_000);
      await waitFor(() => w.hub.store.getDevice('sim-11')?.state.active?.version === 5, 'the registry shows what it runs', 30_000);
    } finally {
      await back.stop();
    }
  }, 120_000);
});
