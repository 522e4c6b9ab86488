/**
 * The two runtimes: onnxruntime-web (wasm, in Node) computes what
 * onnxruntime-node computes on the test models, within float tolerance; an
 * agent started with runtime "wasm" installs and serves with it and says so;
 * with the native binding unavailable, "node" falls back to wasm.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrtRuntime } from '../../agent/runtime.js';
import { createRuntime } from '../../agent/runtime-select.js';
import { createWebRuntime } from '../../agent/runtime-web.js';
import type { TensorData } from '../../agent/runtime.js';
import { buildMlp, rng, type MlpOptions } from '../../bundle-build/onnx-build.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { fixture, waitInstalled, type Fixture } from '../helpers/agent-fixture.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

let fx: Fixture;
beforeAll(async () => { fx = await fixture(); });
afterAll(async () => { await fx?.close(); cleanupTempDirs(); });

const MODELS: MlpOptions[] = [
  { categorical: true, seed: 1 },
  { categorical: false, features: 16, hidden: 32, outputs: 4, seed: 2 },
  { categorical: true, extraLayers: 3, hidden: 64, seed: 3 },
];

function feeds(o: MlpOptions, batch: number, seed: number): Record<string, TensorData> {
  const r = rng(seed);
  const f = o.features ?? 4;
  const out: Record<string, TensorData> = { x: { type: 'float32', dims: [batch, f], data: Float32Array.from({ length: batch * f }, () => r() * 4 - 2) } };
  if (o.categorical) out.category = { type: 'int64', dims: [batch, 1], data: BigInt64Array.from({ length: batch }, () => BigInt(Math.floor(r() * 5))) };
  return out;
}

describe('onnxruntime-web runtime', () => {
  it('agrees with onnxruntime-node on the test models', async () => {
    const node = createOrtRuntime();
    const web = await createWebRuntime();
    expect(web.name).toMatch(/^onnxruntime-web@/);
    for (const [i, o] of MODELS.entries()) {
      const file = join(tempDir(), `m${i}.onnx`);
      writeFileSync(file, buildMlp(o));
      const a = await node.load(file, 'k');
      const b = await web.load(file, 'k');
      expect([...b.inputNames].sort()).toEqual([...a.inputNames].sort());
      for (const batch of [1, 7]) {
        const input = feeds(o, batch, 10 * i + batch);
        const ya = (await a.run(input)).y;
        const yb = (await b.run(input)).y;
        expect(yb.dims).toEqual(ya.dims);
        const da = ya.data as Float32Array;
        const db = yb.data as Float32Array;
        for (let k = 0; k < da.length; k++) expect(Math.abs(da[k] - db[k])).toBeLessThanOrEqual(1e-4 + 1e-4 * Math.abs(da[k]));
      }
      await a.release();
      await b.release();
      await b.release(); // idempotent
    }
  });

  it('an agent started with runtime "wasm" installs, serves and reports onnxruntime-web', async () => {
    const b = fx.hub.add(await makeBundle(fx.keys, { version: 1, mlp: { seed: 95 } }));
    const agent = fx.newAgent('dev-wasm', { runtime: 'wasm' });
    const states: string[] = [];
    agent.on('state', (s) => states.push(s.runtime));
    await agent.start();
    await fx.hub.assign('dev-wasm', b, 1);
    await waitInstalled(agent, b.bundleId);
    expect(agent.status().runtime).toMatch(/^onnxruntime-web@/);
    // At least one report (an empty list would pass `every`), and every one names the wasm runtime.
    expect(states.length).toBeGreaterThan(0);
    expect(states.filter((r) => !r.startsWith('onnxruntime-web@'))).toEqual([]);
    const r = await agent.predict({ inputs: { x: [[1, 2, 3, 4]], category: [[1]] } });
    expect(r.model.bundleId).toBe(b.bundleId);
    expect(r.outputs.y.dims).toEqual([1, 2]);
  });

  it('falls back to onnxruntime-web when the native binding cannot load', async () => {
    const reasons: string[] = [];
    process.env.FLEETCAST_TEST_NO_NATIVE_RUNTIME = '1';
    try {
      const rt = await createRuntime({ runtime: 'node', intraOpNumThreads: 1 }, (why) => reasons.push(why));
      expect(rt.name).toMatch(/^onnxruntime-web@/);
      expect(reasons).toEqual([expect.stringContaining('native runtime disabled')]);
    } finally {
      delete process.env.FLEETCAST_TEST_NO_NATIVE_RUNTIME;
    }
    expect((await createRuntime({ runtime: 'node', intraOpNumThreads: 1 })).name).toMatch(/^onnxruntime-node@/);
  });
});
