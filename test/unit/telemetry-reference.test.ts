/** `bundle build --reference`: parsing CSV / JSON Lines, the signed profile, and refusals. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBundle } from '../../bundle-build/build.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { featureSlots, parseReferenceData, readReferenceFile } from '../../bundle-build/reference.js';
import { readBundleFile } from '../../bundles/read.js';
import { parseReference } from '../../protocol/telemetry.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const keys = makeKeys();

describe('reference data files', () => {
  it('parses CSV (header, quotes, empty cells as null) and JSON Lines (by feature or by input array)', () => {
    expect(parseReferenceData('a,b,"c,d"\n1,,"x ""y"""\n2.5,3,NaN\n', 'csv')).toEqual([{ a: 1, b: null, 'c,d': 'x "y"' }, { a: 2.5, b: 3, 'c,d': NaN }]);
    expect(parseReferenceData('{"x[0]": 1, "x[1]": 2}\n\n{"x": [3, 4]}\n', 'jsonl')).toEqual([{ 'x[0]': 1, 'x[1]': 2 }, { x: [3, 4] }]);
  });

  it('refuses ragged CSV, non-JSON lines and empty data, naming the line', () => {
    expect(() => parseReferenceData('a,b\n1,2\n3\n', 'csv')).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_REFERENCE', message: expect.stringContaining('line 3') }));
    expect(() => parseReferenceData('{"a":1}\nnope\n', 'jsonl')).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_REFERENCE', message: expect.stringContaining('line 2') }));
    expect(() => parseReferenceData('a\n', 'csv')).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_REFERENCE' }));
    expect(() => readReferenceFile(join(tempDir(), 'missing.csv'))).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_IO' }));
  });

  it('names features by the schema or input[i]; a one-wide input is one feature', () => {
    expect(featureSlots([
      { name: 'x', type: 'float32', shape: ['batch', 3] },
      { name: 'category', type: 'int64', shape: ['batch', 1] },
      { name: 'img', type: 'float32', shape: ['batch', 3, 8, 8] },
    ]).map((s) => `${s.name}:${s.kind}`)).toEqual(['x[0]:numeric', 'x[1]:numeric', 'x[2]:numeric', 'category[0]:categorical']);
    expect(featureSlots([{ name: 'x', type: 'float32', shape: ['batch', 2], features: ['temp', 'rpm'] }]).map((s) => s.name)).toEqual(['temp', 'rpm']);
  });
});

describe('the signed reference profile', () => {
  it('profiles every feature (quantile edges, counts, moments, categories) and every output, inside the signed manifest', async () => {
    const dir = tempDir();
    // x[0] = 0..999 (deciles known exactly), x[1] constant 2 with some missing, category cycling 0..3.
    const lines = ['x[0],x[1],category[0]', ...Array.from({ length: 1000 }, (_, i) => `${i},${i % 10 === 0 ? '' : 2},${i % 4}`)];
    const csv = join(dir, 'ref.csv');
    writeFileSync(csv, lines.join('\n'));
    const b = await buildBundle({ model: buildMlp({ features: 2, categorical: true, seed: 1 }), name: 'ref', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'ref.fcb'), reference: readReferenceFile(csv) });
    // It is in the signed bytes: read back from the file, it parses and matches.
    const onDisk = await readBundleFile(b.path);
    const ref = parseReference(onDisk.manifest.reference);
    expect(ref.rows).toBe(1000);
    const [x0, x1, cat] = ref.features;
    expect(x0.kind === 'numeric' && x0.profile.edges).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900]);
    expect(x0.kind === 'numeric' && x0.profile.counts).toEqual(new Array(10).fill(100));
    expect(x0.kind === 'numeric' && x0.profile.mean).toBeCloseTo(499.5, 9);
    expect(x0.kind === 'numeric' && x0.profile.std).toBeCloseTo(Math.sqrt((1000 ** 2 - 1) / 12), 6);
    expect(x1.kind === 'numeric' && x1.profile).toMatchObject({ count: 900, mean: 2, std: 0, min: 2, max: 2, invalid: 100 });
    expect(cat).toMatchObject({ name: 'category[0]', kind: 'categorical', categories: { counts: { 0: 250, 1: 250, 2: 250, 3: 250 } } });
    // Outputs: the model was run over the rows with every feature present (900 of them).
    expect(ref.outputs.map((o) => o.name)).toEqual(['y[0]', 'y[1]']);
    expect(ref.outputs[0].profile.count).toBe(900);
    expect(JSON.stringify(onDisk.manifest).length).toBeLessThan(64 * 1024);
    void readFileSync;
  });

  it('refuses a column that names no feature, and a feature without a column', async () => {
    const dir = tempDir();
    const model = buildMlp({ features: 2, seed: 1 });
    const build = (rows: Record<string, unknown>[]) => buildBundle({ model, name: 'ref', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'r.fcb'), reference: rows });
    await expect(build([{ 'x[0]': 1, 'x[1]': 2, speed: 3 }])).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_REFERENCE', message: expect.stringContaining('speed') });
    await expect(build([{ 'x[0]': 1 }])).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_REFERENCE', message: expect.stringContaining('x[1]') });
    await expect(build([{ 'x[0]': 'a', 'x[1]': 1 }])).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_REFERENCE', message: expect.stringContaining('x[0]') });
  });
});
