/**
 * `bundle build` runs the device's smoke check (bundles/smoke.ts) and refuses a
 * model that no device could install, with BUNDLE_ERR_SMOKE_FAILED saying how
 * to fix it; `examples` (--example) are run at build time with onnxruntime-node
 * and signed as golden cases equal to what the model computes; `smokeDims`
 * (--smoke-dims) size the synthetic input and are signed into the manifest.
 * One case per class of model with a minimum size (real ONNX built in code).
 */
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { buildBundle, parseSmokeDims } from '../../bundle-build/build.js';
import { parseExampleFile } from '../../bundle-build/example-file.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { buildEdgeTypes } from '../../bundle-build/onnx-build-edge.js';
import { jsonToTensor } from '../../bundle-build/json-tensor.js';
import { readModelInfo } from '../../bundle-build/onnx-info.js';
import { smokeInputs, smokePlan } from '../../bundles/smoke.js';
import { EDGE_CLASSES } from '../helpers/edge-models.js';
import { makeKeys, tempDir } from '../helpers/env.js';

const keys = makeKeys();
const dir = tempDir('fleetcast-smoke-build-');
let n = 0;
const build = (model: Uint8Array, extra: Partial<Parameters<typeof buildBundle>[0]> = {}) =>
  buildBundle({ model, name: 'edge', version: 1, releaseKeys: [keys.keys.release], out: join(dir, `b${n++}.fcb`), ...extra });

describe('bundle build runs the smoke check every device runs', () => {
  for (const c of EDGE_CLASSES) {
    describe(c.name, () => {
      it('is refused without --example, --golden or --smoke-dims, with BUNDLE_ERR_SMOKE_FAILED naming the fixes', async () => {
        await expect(build(c.model)).rejects.toMatchObject({
          code: 'BUNDLE_ERR_SMOKE_FAILED',
          message: expect.stringMatching(/smoke inference: .*/),
        });
        await expect(build(c.model)).rejects.toThrow(/--example FILE.*--golden FILE.*--smoke-dims/);
      });

      it('builds with --example: the outputs signed as golden cases are what onnxruntime computes', async () => {
        const b = await build(c.model, { examples: parseExampleFile({ inputs: c.example }) });
        expect(b.manifest.golden).toHaveLength(1);
        const g = b.manifest.golden![0];
        expect(g.inputs).toEqual(c.example);
        const info = readModelInfo(c.model);
        const s = await ort.InferenceSession.create(c.model);
        const want = await s.run(Object.fromEntries(info.inputs.map((i) => [i.name, jsonToTensor(i, c.example[i.name])])));
        await s.release();
        expect(Object.keys(g.outputs).sort()).toEqual(info.outputs.map((o) => o.name).sort());
        for (const o of info.outputs) {
          expect(g.outputs[o.name].dims).toEqual([...want[o.name].dims]);
          expect(g.outputs[o.name].data).toEqual(Array.from(want[o.name].data as Float32Array));
        }
      });

      if (c.smokeDims) {
        it('builds with --smoke-dims, which the manifest carries for the device', async () => {
          const b = await build(c.model, { smokeDims: c.smokeDims! });
          expect(b.manifest.smokeDims).toEqual(c.smokeDims);
          expect(b.manifest.golden).toBeUndefined();
        });
      } else {
        it('cannot be fixed by dims alone (the zero scalar is the problem): still refused with --smoke-dims', async () => {
          await expect(build(c.model, { smokeDims: { samples: 320 } })).rejects.toMatchObject({ code: 'BUNDLE_ERR_SMOKE_FAILED' });
        });
      }
    });
  }

  it('refuses an example that does not fit the model with BUNDLE_ERR_BAD_EXAMPLE, and one the model fails on with BUNDLE_ERR_SMOKE_FAILED', async () => {
    const vad = EDGE_CLASSES[3];
    await expect(build(vad.model, { examples: [{ inputs: { ...vad.example, typo: 1 } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_EXAMPLE', message: expect.stringContaining('"typo" is not a model input') });
    await expect(build(vad.model, { examples: [{ inputs: { x: vad.example.x, sr: 16000 } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_EXAMPLE', message: expect.stringContaining('state is missing') });
    await expect(build(vad.model, { examples: [{ inputs: { ...vad.example, state: [[[1]]] } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_EXAMPLE', message: expect.stringContaining('dimension 0 is 1, the model needs 2') });
    await expect(build(vad.model, { examples: [{ inputs: { ...vad.example, x: [[0.1, 0.2]] } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_SMOKE_FAILED', message: expect.stringContaining('example case 0') });
    expect(() => parseExampleFile({ cases: [] })).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_EXAMPLE' }));
    expect(() => parseExampleFile({ inputs: [1] })).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_EXAMPLE' }));
  });

  it('example inputs: JSON spellings of NaN and Infinity for float inputs (as predict reads them), nothing else stands in for a number', () => {
    const spec = { name: 'x', type: 'float32' as const, shape: [4] };
    expect(Array.from(jsonToTensor(spec, [null, 'NaN', 'Infinity', '-Infinity']).data as Float32Array)).toEqual([NaN, NaN, Infinity, -Infinity]);
    expect(() => jsonToTensor(spec, [1, 2, 3, 'constructor'])).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_EXAMPLE' }));
    expect(() => jsonToTensor({ ...spec, type: 'int64' }, [1, 2, 3, null])).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_EXAMPLE' }));
    expect(() => jsonToTensor(spec, [[1], [2], [3], [4]])).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_EXAMPLE', message: expect.stringContaining('more dimensions') }));
    expect(Array.from(jsonToTensor({ ...spec, type: 'float16' }, [1, 0.1, 65504, -2]).data as Uint16Array)).toEqual([0x3c00, 0x2e66, 0x7bff, 0xc000]);
  });

  it('parses example files in their three forms, a file tolerance applying to cases without one', () => {
    expect(parseExampleFile({ inputs: { x: 1 } })).toEqual([{ inputs: { x: 1 } }]);
    expect(parseExampleFile([{ inputs: { x: 1 } }, { inputs: { x: 2 }, tolerance: 0.5 }])).toEqual([{ inputs: { x: 1 } }, { inputs: { x: 2 }, tolerance: 0.5 }]);
    expect(parseExampleFile({ tolerance: 0.1, cases: [{ inputs: { x: 1 } }, { inputs: { x: 2 }, tolerance: 0.5 }] })).toEqual([{ inputs: { x: 1 }, tolerance: 0.1 }, { inputs: { x: 2 }, tolerance: 0.5 }]);
  });

  it('--smoke-dims: NAME=SIZE pairs; names must be dynamic dims of the model, sizes positive', async () => {
    expect(parseSmokeDims('samples=512, batch=1')).toEqual({ samples: 512, batch: 1 });
    expect(parseSmokeDims('x:1=8')).toEqual({ 'x:1': 8 });
    for (const bad of ['samples', '=3', 'samples=-1', 'samples=1.5', 'samples=']) expect(() => parseSmokeDims(bad), bad).toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_BAD_OPTION' }));
    await expect(build(EDGE_CLASSES[0].model, { smokeDims: { sample: 16 } })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_OPTION', message: expect.stringContaining('batch, samples') });
    await expect(build(EDGE_CLASSES[0].model, { smokeDims: { samples: 0 } })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_OPTION' });
    // Each size is bounded, and so is their product: a signed manifest must not make a device allocate without end.
    await expect(build(EDGE_CLASSES[1].model, { smokeDims: { height: 1 << 20, width: 1 << 20 } })).rejects.toMatchObject({ code: 'BUNDLE_ERR_SMOKE_FAILED', message: expect.stringContaining('more than 4194304') });
  });

  it('golden cases replace the synthetic input; without them the synthetic input takes smokeDims, else 1', () => {
    const inputs = [{ name: 'x', type: 'float32' as const, shape: ['batch', 'samples'] }, { name: 'sr', type: 'int64' as const, shape: [] }];
    expect(smokeInputs(inputs)).toEqual({ x: [[0]], sr: 0 });
    expect(smokeInputs(inputs, { samples: 3 })).toEqual({ x: [[0, 0, 0]], sr: 0 });
    const golden = [{ inputs: { x: [[1, 2]], sr: 8000 }, outputs: { y: { dims: [1], data: [1] } } }];
    expect(smokePlan({ inputs, outputs: [], golden, smokeDims: { samples: 3 } }).map((p) => p.inputs)).toEqual([golden[0].inputs]);
    expect(smokePlan({ inputs, outputs: [], smokeDims: { samples: 3 } }).map((p) => p.inputs)).toEqual([{ x: [[0, 0, 0]], sr: 0 }]);
  });

  it('the element-types model (float16, uint8, bool, string) passes the synthetic smoke input; a wrong string golden output is refused', async () => {
    const model = buildEdgeTypes();
    expect((await build(model)).manifest.golden).toBeUndefined();
    const inputs = { h: [[1, 2, 3, 4]], img: [Array.from({ length: 4 }, () => Array.from({ length: 4 }, () => [1, 2, 3]))], flag: [[true, false]], word: [['a']] };
    const [g] = (await build(model, { examples: [{ inputs }] })).manifest.golden!;
    expect(g.outputs.word_echo).toEqual({ dims: [1, 1], data: ['a'] });
    expect(g.outputs.img_max).toEqual({ dims: [1, 3], data: [1, 2, 3] });
    await expect(build(model, { golden: [{ inputs, outputs: { word_echo: { dims: [1, 1], data: ['b'] } } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_SMOKE_FAILED', message: expect.stringContaining('word_echo[0] = "a", expected "b"') });
  });

  it('an example or golden case the device validator refuses (outside the limits, NaN without allowNaN, not an integer, outside int64) is refused at build time, not signed', async () => {
    const mlp = buildMlp({ categorical: true });
    const schema = { inputs: { x: { min: 0, max: [1, 1, 1, 2] } } };
    const ok = { x: [[0.5, 0.5, 0.5, 1.5]], category: [[3]] };
    // The limits as the device reads them: per feature along the last dimension.
    expect((await build(mlp, { schema, examples: [{ inputs: ok }] })).manifest.golden).toHaveLength(1);
    await expect(build(mlp, { schema, examples: [{ inputs: { ...ok, x: [[0.5, 0.5, 1.5, 1.5]] } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_EXAMPLE', message: expect.stringContaining('outside [0, 1]') });
    await expect(build(mlp, { schema, examples: [{ inputs: { ...ok, x: [[0.5, 0.5, 0.5, -1]] } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_EXAMPLE', message: expect.stringContaining('outside [0, 2]') });
    await expect(build(mlp, { examples: [{ inputs: { ...ok, x: [[0.5, null, 0.5, 1]] } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_EXAMPLE', message: expect.stringContaining('NaN') });
    await expect(build(mlp, { examples: [{ inputs: { ...ok, category: [[1.5]] } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_EXAMPLE', message: expect.stringContaining('integer') });
    await expect(build(mlp, { examples: [{ inputs: { ...ok, category: [[2 ** 60]] } }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_EXAMPLE' });
    // allowNaN lets NaN through, as on the device.
    expect(Array.from(jsonToTensor({ name: 'x', type: 'float32', shape: ['batch', 2], allowNaN: true }, [[0.5, null]], true).data as Float32Array)).toEqual([0.5, NaN]);
    // A hand-written golden case goes through the same check in the build's smoke run.
    const golden = [{ inputs: { ...ok, x: [[0.5, 0.5, 0.5, 3]] }, outputs: { y: { dims: [1, 2], data: [0, 0] } } }];
    await expect(build(mlp, { schema, golden })).rejects.toMatchObject({ code: 'BUNDLE_ERR_SMOKE_FAILED', message: expect.stringContaining('outside [0, 2]') });
  });

  it('an example whose inputs disagree on a named dynamic dimension (batch 2 and 1) is refused at build, as the device refuses it', async () => {
    const model = buildEdgeTypes();
    const img = [Array.from({ length: 4 }, () => Array.from({ length: 4 }, () => [1, 2, 3]))];
    const inputs = { h: [[1, 2, 3, 4], [1, 2, 3, 4]], img, flag: [[true, false]], word: [['a']] };
    await expect(build(model, { examples: [{ inputs }] })).rejects.toMatchObject({ code: 'BUNDLE_ERR_BAD_EXAMPLE', message: expect.stringContaining('dimension "batch" is 2 in input h but 1 in input img') });
    expect((await build(model, { examples: [{ inputs: { ...inputs, h: [[1, 2, 3, 4]] } }] })).manifest.golden).toHaveLength(1);
  });

  it('a model that passes builds as before, and a NaN model is refused at build time', async () => {
    expect((await build(buildMlp({ categorical: true }))).manifest.golden).toBeUndefined();
    await expect(build(buildMlp({ nanOutput: true }))).rejects.toMatchObject({ code: 'BUNDLE_ERR_SMOKE_FAILED', message: expect.stringContaining('is NaN') });
  });
});
