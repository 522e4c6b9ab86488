import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBundle, DEFAULT_CHUNK_SIZE } from '../../bundle-build/build.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { readBundleFile } from '../../bundles/read.js';
import { parseSchemaFile, readSchemaFile } from '../../bundle-build/schema-file.js';
import { bundleIdOf, verifyBundleFile } from '../../bundles/verify.js';
import { loadRootText, type TrustedRoot } from '../../signing/root.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const code = (c: string) => expect.objectContaining({ code: c });
let keys: ReturnType<typeof makeKeys>;
let root: TrustedRoot;

beforeAll(() => {
  keys = makeKeys();
  root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
});

describe('buildBundle', () => {
  it('writes a manifest describing the model, its payload and its chunks, signed by the release key', async () => {
    const dir = tempDir();
    const model = buildMlp({ categorical: true, padFloats: 100_000 });
    writeFileSync(join(dir, 'm.onnx'), model);
    const b = await buildBundle({ model: join(dir, 'm.onnx'), name: 'churn', version: 7, releaseKeys: [keys.keys.release], out: join(dir, 'out', 'churn.fcb'), createdAt: '2025-01-02T03:04:05.000Z' });
    const m = b.manifest;
    expect(m).toMatchObject({
      type: 'fleetcast.bundle/v1', name: 'churn', version: 7, createdAt: '2025-01-02T03:04:05.000Z',
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 4] }, { name: 'category', type: 'int64', shape: ['batch', 1] }],
      outputs: [{ name: 'y', type: 'float32', shape: ['batch', 2] }],
      compat: { opset: 13 },
    });
    expect(m.payload).toMatchObject({ format: 'onnx', compression: 'zstd', rawLength: model.length, rawSha256: createHash('sha256').update(model).digest('hex'), chunkSize: DEFAULT_CHUNK_SIZE });
    expect(m.payload.chunkHashes).toHaveLength(Math.ceil(m.payload.compressedLength / DEFAULT_CHUNK_SIZE));
    const f = await readBundleFile(b.path);
    expect(f.manifest).toEqual(m);
    expect(bundleIdOf(f.manifestBytes)).toBe(b.bundleId);
    expect(f.envelope).toEqual(b.envelope);
    expect(f.payloadLength).toBe(m.payload.compressedLength);
    expect((await verifyBundleFile(b.path, root, { decompress: true })).bundleId).toBe(b.bundleId);
    // Atomic write: only the bundle is left in the output folder, no temp files.
    expect(readdirSync(join(dir, 'out'))).toEqual(['churn.fcb']);
  });

  it('honours --chunk-size, golden cases, and is byte-for-byte reproducible from the same inputs', async () => {
    const dir = tempDir();
    const model = buildMlp({ padFloats: 50_000, seed: 3 });
    const golden = [{ inputs: { x: [[1, 2, 3, 4]] }, outputs: { y: { dims: [1, 2], data: [0.5, -0.5] } }, tolerance: 1e-4 }];
    // The golden outputs here are arbitrary (this test is about carrying them), so the build's own smoke run is off.
    const opts = { model, name: 'fraud', version: 1, releaseKeys: [keys.keys.release], chunkSize: 4096, createdAt: '2025-05-05T00:00:00.000Z', golden, smokeCheck: false };
    const a = await buildBundle({ ...opts, out: join(dir, 'a.fcb') });
    const b = await buildBundle({ ...opts, out: join(dir, 'b.fcb') });
    expect(a.manifest.payload.chunkSize).toBe(4096);
    expect(a.manifest.payload.chunkHashes.length).toBe(Math.ceil(a.manifest.payload.compressedLength / 4096));
    expect(a.manifest.golden).toEqual(golden);
    expect(a.bundleId).toBe(b.bundleId);
    // Ed25519 signatures are deterministic (RFC 8032), so the whole file is too.
    expect(readFileSync(a.path).equals(readFileSync(b.path))).toBe(true);
  });

  it('merges --schema feature names and limits into the inputs, and the description', async () => {
    const dir = tempDir();
    const schema = parseSchemaFile({ inputs: { x: { features: ['a', 'b', 'c', 'd'], min: [0, 0, -1, 0], max: 10, allowNaN: false }, category: { min: 0, max: 9 } }, compat: { runtimes: ['onnxruntime'], minMemoryMB: 64 }, description: 'demo' });
    const b = await buildBundle({ model: buildMlp({ categorical: true }), name: 'churn', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'c.fcb'), schema });
    expect(b.manifest.inputs).toEqual([
      { name: 'x', type: 'float32', shape: ['batch', 4], features: ['a', 'b', 'c', 'd'], min: [0, 0, -1, 0], max: 10, allowNaN: false },
      { name: 'category', type: 'int64', shape: ['batch', 1], min: 0, max: 9 },
    ]);
    expect(b.manifest.compat).toEqual({ runtimes: ['onnxruntime'], minMemoryMB: 64, opset: 13 });
    expect(b.manifest.description).toBe('demo');
  });

  it('refuses schema files that do not fit the model, naming the entry', async () => {
    const dir = tempDir();
    const model = buildMlp({ categorical: true });
    const build = (schema: unknown) => buildBundle({ model, name: 'churn', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'never.fcb'), schema: schema as never });
    const cases: [unknown, string][] = [
      [{ inputs: { z: { min: 0 } } }, '"z"'],
      [{ inputs: { x: { features: ['a', 'b'] } } }, '2 names'],
      [{ inputs: { x: { min: [0, 1] } } }, '2 values for 4 features'],
      [{ inputs: { x: { min: 5, max: 1 } } }, 'min 5 is above max 1'],
      [{ inputs: { x: { features: ['a', 'a', 'b', 'c'] } } }, 'twice'],
      [{ inputs: { x: { colour: 'red' } } }, 'colour'],
      [{ compat: { opset: 99 } }, 'opset'],
      [{ extra: 1 }, 'extra'],
    ];
    for (const [schema, text] of cases) {
      await expect(build(schema), text).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_SCHEMA_FILE', message: expect.stringContaining(text) }));
    }
    writeFileSync(join(dir, 'schema.json'), '{ not json');
    expect(() => readSchemaFile(join(dir, 'schema.json'))).toThrow(code('BUNDLE_ERR_BAD_SCHEMA_FILE'));
    expect(() => readSchemaFile(join(dir, 'missing.json'))).toThrow(code('BUNDLE_ERR_IO'));
    expect(readdirSync(dir).filter((f) => f !== 'schema.json')).toEqual([]);
  });

  it('refuses bad options and models with coded errors', async () => {
    const dir = tempDir();
    const base = { model: buildMlp(), name: 'ok', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'x.fcb') };
    await expect(buildBundle({ ...base, name: 'Not OK' })).rejects.toThrow(code('BUNDLE_ERR_BAD_OPTION'));
    await expect(buildBundle({ ...base, version: 0 })).rejects.toThrow(code('BUNDLE_ERR_BAD_OPTION'));
    await expect(buildBundle({ ...base, chunkSize: 100 })).rejects.toThrow(code('BUNDLE_ERR_BAD_OPTION'));
    await expect(buildBundle({ ...base, releaseKeys: [] })).rejects.toThrow(code('BUNDLE_ERR_BAD_OPTION'));
    await expect(buildBundle({ ...base, model: Buffer.from('not onnx') })).rejects.toThrow(code('BUNDLE_ERR_BAD_MODEL'));
    await expect(buildBundle({ ...base, model: join(dir, 'missing.onnx') })).rejects.toThrow(code('BUNDLE_ERR_IO'));
    // The bundle is renamed into place; a folder (or a device) at `out` is never replaced.
    mkdirSync(join(dir, 'taken'));
    await expect(buildBundle({ ...base, out: join(dir, 'taken') })).rejects.toThrow(code('BUNDLE_ERR_BAD_OPTION'));
    rmdirSync(join(dir, 'taken'));
    await expect(buildBundle({ ...base, golden: [{ inputs: {}, outputs: { y: { dims: [-1], data: [] } } }] })).rejects.toThrow(code('BUNDLE_ERR_BAD_MANIFEST'));
    expect(readdirSync(dir)).toEqual([]);
  });
});
