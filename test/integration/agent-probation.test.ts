/**
 * After a swap the agent watches the new model (probation) and, past its
 * limits, rolls back to the previous slot by itself, reports why, and never
 * fetches that bundle again. Also: 20 swaps in a row under continuous load
 * with no failed prediction, and the bounded predict queue (429 AGENT_ERR_BUSY).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Rejection } from '../../agent/installer.js';
import { createOrtRuntime, SessionCache, type ModelRuntime } from '../../agent/runtime.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { fixture, http, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { cleanupTempDirs, waitFor } from '../helpers/env.js';

let fx: Fixture;
beforeAll(async () => { fx = await fixture(); });
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

const ok = { inputs: { x: [[0.5, -1, 2, 0.25]], category: [[2]] } };
// With seed 41 weights, this input overflows float32 to ±Infinity in the output (checked below).
const overflow = { inputs: { x: [[-3e38, -3e38, -3e38, -3e38]], category: [[1]] } };

describe('agent probation', () => {
  it('commits a model that stays healthy through its window', async () => {
    const v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 40 } }));
    const v2 = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 43 } }));
    const agent = fx.newAgent('dev-probe-ok', { probationMs: 400, probationMinRequests: 5 });
    await agent.start();
    await fx.hub.assign('dev-probe-ok', v1, 1);
    // The first install has nothing to roll back to: committed at once.
    await waitInstalled(agent, v1.bundleId);
    await fx.hub.assign('dev-probe-ok', v2, 2);
    await waitFor(() => agent.status().phase === 'probation', 'probation');
    expect(agent.status()).toMatchObject({ active: { bundleId: v2.bundleId }, previous: { bundleId: v1.bundleId }, probation: { bundleId: v2.bundleId } });
    for (let i = 0; i < 10; i++) expect((await agent.predict(ok)).model.version).toBe(2);
    await waitInstalled(agent, v2.bundleId);
    expect(agent.status().probation).toBeNull();
    // "installed" is announced at commit, not at the swap.
    await waitFor(() => fx.hub.events.filter((e) => e.deviceId === 'dev-probe-ok' && e.kind === 'installed').length === 2, 'installed events');
    expect(fx.hub.events.filter((e) => e.deviceId === 'dev-probe-ok' && e.kind === 'installed').map((e) => e.bundleId)).toEqual([v1.bundleId, v2.bundleId]);
  });

  it('rolls back by itself when the new model fails too many predictions, reports it, and refuses the bundle afterwards', async () => {
    const v1 = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 42 } }));
    const bad = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 41 } }));
    const agent = fx.newAgent('dev-probe-bad', { probationMs: 600_000, probationMinRequests: 10, probationMaxErrorRate: 0.2 });
    const rejected: Rejection[] = [];
    agent.on('rejected', (r) => rejected.push(r));
    await agent.start();
    await fx.hub.assign('dev-probe-bad', v1, 1);
    await waitInstalled(agent, v1.bundleId);
    await fx.hub.assign('dev-probe-bad', bad, 2);
    await waitFor(() => agent.status().phase === 'probation', 'probation');
    // Healthy answers first, then outputs of ±Infinity: 5 of 10 fail, over the 20% limit.
    for (let i = 0; i < 5; i++) await agent.predict(ok);
    // All five are served by v2 (the rollback is decided after the 10th request), each with a non-finite output.
    for (let i = 0; i < 5; i++) {
      const r = await agent.predict(overflow);
      expect(r.model.version).toBe(2);
      expect(r.outputs.y.data.some((v) => !Number.isFinite(v as number))).toBe(true);
    }
    await waitFor(() => agent.status().phase === 'rolled-back', 'rolled back');
    expect(agent.status()).toMatchObject({ active: { bundleId: v1.bundleId }, previous: null, lastError: { code: 'AGENT_ERR_PROBATION_ERRORS', bundleId: bad.bundleId } });
    expect((await agent.predict(ok)).model.version).toBe(1);
    expect(rejected.at(-1)).toMatchObject({ code: 'AGENT_ERR_PROBATION_ERRORS', phase: 'probation', bundleId: bad.bundleId });
    await waitFor(() => fx.hub.events.find((e) => e.deviceId === 'dev-probe-bad' && e.kind === 'rolled-back' && e.code === 'AGENT_ERR_PROBATION_ERRORS'), 'rolled-back event');
    await waitFor(() => fx.hub.states.some((s) => s.deviceId === 'dev-probe-bad' && s.phase === 'rolled-back' && s.active?.bundleId === v1.bundleId), 'rolled-back report');

    // The hub re-signs the same bundle: skipped with a code, nothing fetched.
    const requests = fx.hub.requestsFor(bad.bundleId).length;
    await fx.hub.assign('dev-probe-bad', bad, 3);
    await waitFor(() => fx.hub.eventCodes('dev-probe-bad').includes('AGENT_ERR_BUNDLE_REFUSED'), 'refused');
    await agent.idle();
    expect(fx.hub.requestsFor(bad.bundleId).length).toBe(requests);
    expect(agent.status().active?.bundleId).toBe(v1.bundleId);
    // A different bundle still installs.
    const v3 = fx.hub.add(await makeBundle(fx.keys, { version: 3, mlp: { seed: 44 } }));
    await fx.hub.assign('dev-probe-bad', v3, 4);
    await waitFor(() => agent.status().active?.bundleId === v3.bundleId, 'v3 on probation');
  });
});

describe('hot-swap under load', () => {
  it('20 consecutive swaps with continuous predictions: zero failures, every old session released', async () => {
    const a = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 51 } }));
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 2, mlp: { seed: 52 } }));
    const cache = new SessionCache();
    const agent = fx.newAgent('dev-swap20', { listen: '127.0.0.1:0' }, { runtime: createOrtRuntime({ cache }) });
    await agent.start();
    let counter = 1;
    await fx.hub.assign('dev-swap20', a, counter);
    await waitInstalled(agent, a.bundleId);
    let running = true;
    let okCount = 0;
    const failures: unknown[] = [];
    const loop = async (viaHttp: boolean) => {
      while (running) {
        if (viaHttp) {
          const r = await http(agent.address!.port, 'POST', '/v1/predict', JSON.stringify(ok));
          if (r.status === 200) okCount++; else failures.push(r.json);
        } else {
          await agent.predict(ok).then(() => { okCount++; }, (e) => { failures.push(e); });
        }
      }
    };
    const loops = [loop(false), loop(false), loop(true), loop(true)];
    for (let i = 0; i < 20; i++) {
      // Alternate: the other model is kept in the previous slot, so each swap is load + switch.
      const next = i % 2 === 0 ? b : a;
      const before = okCount;
      await fx.hub.assign('dev-swap20', next, ++counter);
      await waitInstalled(agent, next.bundleId);
      await waitFor(() => okCount > before + 5, 'predictions after the swap');
    }
    running = false;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(okCount).toBeGreaterThan(100);
    expect(agent.status().predictions).toMatchObject({ errors: 0, busy: 0 });
    // Only the serving model holds a session: each old one was released once drained.
    await waitFor(() => cache.size === 1, 'old sessions released');
    expect(cache.refs(a.manifest.payload.rawSha256)).toBe(1);
  });
});

describe('bounded predict queue', () => {
  it('answers 429 AGENT_ERR_BUSY beyond maxConcurrentPredictions and serves again once below it', async () => {
    const m = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 61, extraLayers: 4 } }));
    // The real onnxruntime, with a gate in front of run(): while it is shut, predictions in flight stay
    // in flight, so "the slots are full" does not depend on how fast this machine runs the model.
    const real = createOrtRuntime();
    let gate: Promise<void> | null = null;
    let open = () => {};
    const runtime: ModelRuntime = {
      name: real.name,
      async load(path, key) {
        const model = await real.load(path, key);
        return { ...model, async run(feeds) { if (gate) await gate; return model.run(feeds); } };
      },
    };
    const agent = fx.newAgent('dev-busy', { listen: '127.0.0.1:0', maxConcurrentPredictions: 2 }, { runtime });
    await agent.start();
    await fx.hub.assign('dev-busy', m, 1);
    await waitInstalled(agent, m.bundleId);
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => agent.predict(ok)));
    const busy = results.filter((r) => r.status === 'rejected');
    // The first two start before any finishes (predict is async), the rest are refused at once.
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(2);
    expect(busy.length).toBe(18);
    for (const r of busy) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'AGENT_ERR_BUSY', status: 429 });
    // Over HTTP: two predictions held in flight fill the slots, so every request answers 429 AGENT_ERR_BUSY…
    gate = new Promise<void>((r) => { open = r; });
    const held = [agent.predict(ok), agent.predict(ok)];
    const replies = await Promise.all(Array.from({ length: 6 }, () => http(agent.address!.port, 'POST', '/v1/predict', JSON.stringify(ok))));
    expect(replies.map((r) => [r.status, r.json.error?.code])).toEqual(Array.from({ length: 6 }, () => [429, 'AGENT_ERR_BUSY']));
    // …and once they finish, it serves again.
    gate = null;
    open();
    for (const h of await Promise.all(held)) expect(h.model.version).toBe(1);
    const after = await http(agent.address!.port, 'POST', '/v1/predict', JSON.stringify(ok));
    expect(after.status).toBe(200);
    expect((await agent.predict(ok)).model.version).toBe(1);
    expect(agent.status().predictions.busy).toBe(18 + 6);
  });
});
