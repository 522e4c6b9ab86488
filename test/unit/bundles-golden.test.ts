/**
 * `fleetcast bundle build --golden FILE`: the cases are read and checked
 * (coded errors naming the case), signed into the manifest, and an agent's
 * Stage runs them: the right outputs install, wrong ones are refused before
 * the swap (test/integration/agent-tamper.test.ts covers the refusal path).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../cli/commands/bundle.js';
import { buildBundle } from '../../bundle-build/build.js';
import { parseGoldenFile, readGoldenFile } from '../../bundle-build/golden-file.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { readBundleBuffer } from '../../bundles/read.js';
import { readFileSync } from 'node:fs';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';

afterAll(() => cleanupTempDirs());

async function expected(model: Uint8Array) {
  const s = await ort.InferenceSession.create(model);
  const r = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [1, 4]), category: new ort.Tensor('int64', BigInt64Array.from([2n]), [1, 1]) });
  await s.release();
  return { dims: [...r.y.dims], data: Array.from(r.y.data as Float32Array) };
}

describe('bundle build --golden', () => {
  it('signs the cases into the manifest, with a file-wide tolerance applied to cases without one', async () => {
    const keys = makeKeys();
    const dir = tempDir();
    const model = buildMlp({ categorical: true, seed: 5 });
    writeFileSync(join(dir, 'm.onnx'), model);
    const y = await expected(model);
    writeFileSync(join(dir, 'golden.json'), JSON.stringify({ tolerance: 1e-3, cases: [{ inputs: { x: [[1, 2, 3, 4]], category: [[2]] }, outputs: { y } }] }));
    const out = join(dir, 'b.tar');
    const write = process.stdout.write;
    let printed = '';
    process.stdout.write = ((s: string) => { printed += s; return true; }) as typeof process.stdout.write;
    let code;
    try {
      code = await run(['build', join(dir, 'm.onnx'), '--name', 'g', '--version', '1', '--key', join(keys.dir, 'release.key'), '--out', out, '--golden', join(dir, 'golden.json')]);
    } finally {
      process.stdout.write = write;
    }
    expect(code).toBe(0);
    expect(printed).toContain('golden cases: 1');
    const m = readBundleBuffer(readFileSync(out)).manifest;
    expect(m.golden).toEqual([{ inputs: { x: [[1, 2, 3, 4]], category: [[2]] }, outputs: { y }, tolerance: 1e-3 }]);
  });

  it('refuses a bad file with BUNDLE_ERR_BAD_GOLDEN naming the problem', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.json'), '{"cases": [');
    expect(() => readGoldenFile(join(dir, 'bad.json'))).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_GOLDEN' }));
    expect(() => readGoldenFile(join(dir, 'missing.json'))).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_IO' }));
    expect(() => parseGoldenFile([])).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_GOLDEN' }));
    expect(() => parseGoldenFile([{ inputs: {}, outputs: { y: { dims: [1], data: [true] } } }])).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_GOLDEN' }));
    const keys = makeKeys();
    const model = buildMlp({ categorical: true, seed: 6 });
    const y = { dims: [1, 2], data: [0, 0] };
    const build = (golden: Parameters<typeof parseGoldenFile>[0]) => buildBundle({ model, name: 'g', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'o.tar'), golden: parseGoldenFile(golden) });
    await expect(build([{ inputs: { x: [[1, 2, 3, 4]], categry: [[1]] }, outputs: { y } }])).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_GOLDEN', message: expect.stringContaining('"categry" is not a model input') });
    await expect(build([{ inputs: { x: [[1, 2, 3, 4]] }, outputs: { y } }])).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_GOLDEN', message: expect.stringContaining('"category" is missing') });
    await expect(build([{ inputs: { x: [[1, 2, 3, 4]], category: [[1]] }, outputs: { z: y } }])).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_GOLDEN', message: expect.stringContaining('"z" is not a model output') });
  });
});
