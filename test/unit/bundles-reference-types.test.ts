/**
 * `--reference` over a float16 model: the build runs the model over the
 * reference rows to profile its outputs, so float16 inputs must be fed as
 * halves and float16 outputs read back as numbers (not as their raw bits).
 */
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { buildBundle } from '../../bundle-build/build.js';
import { buildHalfLinear } from '../../bundle-build/onnx-build-edge.js';
import { halvesToNumbers, floatToHalf, halfToFloat } from '../../protocol/float16.js';
import { rng } from '../../bundle-build/onnx-build.js';
import { compareNumeric } from '../../hub/drift/metrics.js';
import { createSummary, frameOf, observe, SUMMARY_ALPHA } from '../../protocol/feature-summary.js';
import type { Reference } from '../../protocol/telemetry.js';
import { makeKeys, tempDir } from '../helpers/env.js';

describe('reference profile of a float16 model', () => {
  it('profiles float16 outputs as the numbers the model computes', async () => {
    const keys = makeKeys();
    const model = buildHalfLinear();
    const rows = Array.from({ length: 200 }, (_, i) => ({ 'h[0]': (i % 10) / 10, 'h[1]': -1 + (i % 7) / 7, 'h[2]': (i % 3) - 1, 'h[3]': i / 200 }));
    const b = await buildBundle({ model, name: 'half', version: 1, releaseKeys: [keys.keys.release], out: join(tempDir(), 'h.fcb'), reference: rows });
    const ref = b.manifest.reference as Reference;
    expect(ref.features.map((f) => f.name)).toEqual(['h[0]', 'h[1]', 'h[2]', 'h[3]']);
    expect(ref.outputs.map((o) => o.name)).toEqual(['h_out[0]', 'h_out[1]']);
    // What onnxruntime computes over the same rows, as numbers.
    const s = await ort.InferenceSession.create(model);
    const flat = rows.flatMap((r) => [r['h[0]'], r['h[1]'], r['h[2]'], r['h[3]']].map(floatToHalf));
    const out = halvesToNumbers((await s.run({ h: new ort.Tensor('float16', Uint16Array.from(flat), [rows.length, 4]) })).h_out.data as Uint16Array);
    await s.release();
    const col0 = out.filter((_, i) => i % 2 === 0);
    const p = ref.outputs[0].profile;
    expect(p.count).toBe(rows.length);
    expect(p.min).toBe(Math.min(...col0));
    expect(p.max).toBe(Math.max(...col0));
    expect(Math.abs(p.max!)).toBeLessThan(10); // numbers, not half bits (which would be in the thousands)
  });

  it('profiles float16 inputs as the halves the device summarises: a feature narrower than the half spacing shows no drift on identical data', async () => {
    const keys = makeKeys();
    const r = rng(3);
    const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    // A sensor at 300 with spread 0.05: halves near 300 are 0.25 apart, so the model (and telemetry) see 3 or 4 values.
    const row = () => ({ 'h[0]': 300 + 0.05 * normal(), 'h[1]': normal(), 'h[2]': normal(), 'h[3]': normal() });
    const rows = Array.from({ length: 4000 }, row);
    const b = await buildBundle({ model: buildHalfLinear(), name: 'half', version: 1, releaseKeys: [keys.keys.release], out: join(tempDir(), 'h2.fcb'), reference: rows });
    const profile = (b.manifest.reference as Reference).features.find((f) => f.name === 'h[0]')!;
    if (profile.kind !== 'numeric') throw new Error('h[0] should be numeric');
    const p = profile.profile;
    // Every reference value is a half, as the device's validator makes it.
    expect(halfToFloat(floatToHalf(p.min))).toBe(p.min);
    expect(halfToFloat(floatToHalf(p.max))).toBe(p.max);
    // The field: fresh rows from the same distribution, summarised as the agent's window does (halves, the reference's frame).
    const field = createSummary(p.edges, { alpha: SUMMARY_ALPHA }, frameOf(p));
    for (let i = 0; i < 2000; i++) observe(field, halfToFloat(floatToHalf(row()['h[0]'])));
    const fig = compareNumeric(p, field);
    expect(fig.ks!).toBeLessThan(0.05);
    expect(fig.psi!).toBeLessThan(0.05);
  });
});
