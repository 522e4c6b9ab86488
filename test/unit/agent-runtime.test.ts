import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { ActiveModel } from '../../agent/active-model.js';
import { createOrtRuntime, SessionCache } from '../../agent/runtime.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

function modelFile(seed: number): string {
  const p = join(tempDir('fleetcast-agent-rt-'), 'model.onnx');
  writeFileSync(p, buildMlp({ categorical: true, seed }));
  return p;
}

const feeds = () => ({
  x: { type: 'float32' as const, dims: [2, 4], data: Float32Array.from([0.1, 0.2, 0.3, 0.4, -1, 0, 1, 2]) },
  category: { type: 'int64' as const, dims: [2, 1], data: BigInt64Array.from([1n, 3n]) },
});

describe('onnxruntime-node runtime', () => {
  it('runs a model like a direct InferenceSession does', async () => {
    const path = modelFile(5);
    const m = await createOrtRuntime().load(path, 'k');
    expect([...m.inputNames].sort()).toEqual(['category', 'x']);
    expect(m.outputNames).toEqual(['y']);
    const out = await m.run(feeds());
    const direct = await ort.InferenceSession.create(path);
    const f = feeds();
    const want = await direct.run({ x: new ort.Tensor('float32', f.x.data, f.x.dims), category: new ort.Tensor('int64', f.category.data, f.category.dims) });
    expect(out.y.dims).toEqual([2, 2]);
    expect(Array.from(out.y.data as Float32Array)).toEqual(Array.from(want.y.data as Float32Array));
    await m.release();
    await m.release(); // idempotent
    await direct.release();
  });

  it('Session_does_not_keep_the_model_bytes: a session made from bytes lets them go (ORT holds its own copy)', async () => {
    // The inference thread makes every session from bytes it read: a model of N bytes must not stay resident twice
    // (the buffer and ORT's copy) for as long as the session serves.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const rt = createOrtRuntime();
    let bytes: Uint8Array | null = buildMlp({ categorical: true, seed: 6 });
    const ref = new WeakRef(bytes);
    const m = await rt.load(bytes, 'k');
    bytes = null;
    for (let i = 0; i < 10 && ref.deref() !== undefined; i++) {
      await new Promise((r) => setTimeout(r, 10));
      gc();
    }
    expect(ref.deref()).toBeUndefined();
    expect((await m.run(feeds())).y.dims).toEqual([2, 2]);
    await m.release();
  });

  it('shares one session per model key through a refcounted cache', async () => {
    const cache = new SessionCache();
    const rt = createOrtRuntime({ cache });
    const p1 = modelFile(1);
    const [a, b] = await Promise.all([rt.load(p1, 'sha-1'), rt.load(p1, 'sha-1')]);
    const c = await rt.load(modelFile(2), 'sha-2');
    expect(cache.size).toBe(2);
    expect(cache.refs('sha-1')).toBe(2);
    await a.release();
    await a.release();
    expect(cache.refs('sha-1')).toBe(1);
    // The other holder still runs on the shared session.
    expect((await b.run(feeds())).y.dims).toEqual([2, 2]);
    await b.release();
    await c.release();
    expect(cache.size).toBe(0);
  });

  it('turns an unloadable file into AGENT_ERR_MODEL_LOAD and does not poison the cache', async () => {
    const cache = new SessionCache();
    const rt = createOrtRuntime({ cache });
    const bad = join(tempDir(), 'bad.onnx');
    writeFileSync(bad, Buffer.from('not a model'));
    await expect(rt.load(bad, 'k')).rejects.toMatchObject({ code: 'AGENT_ERR_MODEL_LOAD' });
    expect(cache.size).toBe(0);
    writeFileSync(bad, buildMlp());
    const m = await rt.load(bad, 'k');
    await m.release();
  });
});

describe('atomic model swap', () => {
  function fake(name: string, log: string[]) {
    return { name, model: { release: async () => { log.push(`release ${name}`); } } };
  }

  it('keeps in-flight requests on the old model and releases it once they drain', async () => {
    const log: string[] = [];
    const am = new ActiveModel<ReturnType<typeof fake>>();
    expect(am.acquire()).toBeNull();
    await am.swap(fake('v1', log));
    const l1 = am.acquire()!;
    const l2 = am.acquire()!;
    const drained = am.swap(fake('v2', log));
    const l3 = am.acquire()!;
    expect([l1.entry.name, l2.entry.name, l3.entry.name]).toEqual(['v1', 'v1', 'v2']);
    l1.release();
    l1.release(); // a double release must not free early
    expect(log).toEqual([]);
    l2.release();
    await drained;
    expect(log).toEqual(['release v1']);
    l3.release();
    await am.close();
    expect(log).toEqual(['release v1', 'release v2']);
    expect(am.current).toBeNull();
  });
});
