/**
 * Validated tensors are views into a shared slab (agent/validate.ts): every
 * request gets its own bytes, 8-aligned, and both runtimes read a view at a
 * non-zero offset exactly as they read a tensor with a buffer of its own.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createOrtRuntime, type TensorData } from '../../agent/runtime.js';
import { createWebRuntime } from '../../agent/runtime-web.js';
import { compileValidator } from '../../agent/validate.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { prng } from '../helpers/random.js';

afterAll(cleanupTempDirs);

const v = compileValidator([{ name: 'x', type: 'float32', shape: ['batch', 4] }, { name: 'category', type: 'int64', shape: ['batch', 1] }], { maxBatch: 16 });
const r = prng(4);

function body(rows: number) {
  return { x: Array.from({ length: rows }, () => Array.from({ length: 4 }, () => r() * 4 - 2)), category: Array.from({ length: rows }, () => [Math.floor(r() * 5)]) };
}

/** The same values in arrays of their own (what validation produced before the slab). */
function ownCopy(f: Record<string, TensorData>): Record<string, TensorData> {
  return {
    x: { ...f.x, data: Float32Array.from(f.x.data as Float32Array) },
    category: { ...f.category, data: BigInt64Array.from(f.category.data as BigInt64Array) },
  };
}

describe('validated tensors in a shared slab', () => {
  it('give every request its own aligned bytes, and the runtimes read them at any offset', async () => {
    const bodies = [1, 3, 1, 7, 2].map(body);
    const feeds = bodies.map((b) => v(b).feeds);
    const views = feeds.flatMap((f) => [f.x.data, f.category.data] as (Float32Array | BigInt64Array)[]);
    // All from one slab (so this test exercises offsets), none overlapping another, each 8-aligned.
    expect(new Set(views.map((a) => a.buffer)).size).toBe(1);
    expect(views.some((a) => a.byteOffset > 0)).toBe(true);
    const spans = views.map((a) => [a.byteOffset, a.byteOffset + a.byteLength]).sort((p, q) => p[0] - q[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i][0]).toBeGreaterThanOrEqual(spans[i - 1][1]);
    for (const a of views) expect(a.byteOffset % 8).toBe(0);
    // Each request still holds exactly its own values.
    feeds.forEach((f, i) => expect(Array.from(f.x.data as Float32Array)).toEqual(bodies[i].x.flat().map(Math.fround)));

    const file = join(tempDir('fleetcast-slab-'), 'm.onnx');
    writeFileSync(file, buildMlp({ categorical: true, seed: 8 }));
    for (const rt of [createOrtRuntime(), await createWebRuntime()]) {
      const m = await rt.load(file, 'slab');
      for (const f of feeds) {
        const got = (await m.run(f)).y;
        const want = (await m.run(ownCopy(f))).y;
        expect(got.dims).toEqual(want.dims);
        expect(Array.from(got.data as Float32Array)).toEqual(Array.from(want.data as Float32Array));
      }
      await m.release();
    }
  });

  it('a large tensor gets a buffer of its own', () => {
    const big = compileValidator([{ name: 'x', type: 'float64', shape: [1024] }], { maxBatch: 1 });
    const d = big({ x: Array.from({ length: 1024 }, (_, i) => i) }).feeds.x.data as Float64Array;
    expect(d.byteOffset).toBe(0);
    expect(d.buffer.byteLength).toBe(8192);
    expect(d[1023]).toBe(1023);
  });
});
