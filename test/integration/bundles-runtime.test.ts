/**
 * A bundle carries a model that really runs: build, verify, unpack the payload
 * to disk, and get the same answers from onnxruntime-node as the original
 * model gives. Also the 100 MB path end to end.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle } from '../../bundle-build/build.js';
import { decompressFile } from '../../bundles/compress.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { readBundleFile } from '../../bundles/read.js';
import { verifyBundleFile } from '../../bundles/verify.js';
import { loadRootText, type TrustedRoot } from '../../signing/root.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

let keys: ReturnType<typeof makeKeys>;
let root: TrustedRoot;

beforeAll(() => {
  keys = makeKeys();
  root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
});

async function predict(model: Uint8Array | string, x: number[][], category: number[]): Promise<number[]> {
  const s = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    const feeds = {
      x: new ort.Tensor('float32', Float32Array.from(x.flat()), [x.length, x[0].length]),
      category: new ort.Tensor('int64', BigInt64Array.from(category.map(BigInt)), [category.length, 1]),
    };
    const out = await s.run(feeds);
    return Array.from(out.y.data as Float32Array);
  } finally {
    await s.release();
  }
}

describe('bundles with onnxruntime-node', () => {
  it('the unpacked model of a verified bundle gives the same outputs as the original', async () => {
    const dir = tempDir();
    const model = buildMlp({ categorical: true, seed: 11, extraLayers: 2 });
    const b = await buildBundle({ model, name: 'churn', version: 2, releaseKeys: [keys.keys.release], out: join(dir, 'churn.fcb') });
    const v = await verifyBundleFile(b.path, root, { decompress: true });
    expect(v.rawChecked).toBe(true);
    const f = await readBundleFile(b.path);
    const unpacked = join(dir, 'model.onnx');
    const r = await decompressFile(b.path, unpacked, { maxRawBytes: v.manifest.payload.rawLength, offset: f.payloadOffset, length: f.payloadLength });
    expect(r).toEqual({ length: v.manifest.payload.rawLength, sha256: v.manifest.payload.rawSha256 });
    const x = [[0.1, 0.2, 0.3, 0.4], [1, -1, 2, -2], [5, 5, 5, 5]];
    const cat = [0, 3, 7];
    const expected = await predict(model, x, cat);
    expect(expected).toHaveLength(6);
    expect(await predict(unpacked, x, cat)).toEqual(expected);
  });

  it('a 100 MB model builds, verifies with decompression, and loads', async () => {
    const dir = tempDir();
    const model = buildMlp({ categorical: true, padFloats: 25_000_000 });
    expect(model.length).toBeGreaterThan(100_000_000);
    const b = await buildBundle({ model, name: 'big', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'big.fcb') });
    expect(b.manifest.payload.chunkHashes.length).toBeGreaterThan(300); // random float32 weights barely compress
    const v = await verifyBundleFile(b.path, root, { decompress: true });
    expect(v.rawChecked).toBe(true);
    const f = await readBundleFile(b.path);
    const unpacked = join(dir, 'big.onnx');
    await decompressFile(b.path, unpacked, { maxRawBytes: model.length, offset: f.payloadOffset, length: f.payloadLength });
    const y = await predict(unpacked, [[1, 2, 3, 4]], [1]);
    expect(y).toEqual(await predict(model, [[1, 2, 3, 4]], [1]));
  });
});
