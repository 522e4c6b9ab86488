/**
 * The predict path's per-request helpers after their fast paths (bench
 * telemetry-cost): the validator's plain-float loop must store and refuse
 * exactly what the general path does (limits shorter than the row, values on
 * the limits, NaN mixed into an allowNaN row, the float32 edge); outputs become
 * JSON arrays of the right kinds; the NaN check consults the manifest only for
 * an output that holds a non-finite value.
 */
import { describe, expect, it } from 'vitest';
import { hasForbiddenNonFinite } from '../../agent/health.js';
import { formatOutputs, toJsonTensor } from '../../agent/outputs.js';
import { compileValidator } from '../../agent/validate.js';

const codeOf = (f: () => unknown): { code: string; details?: unknown } | null => {
  try { f(); return null; } catch (e) { const x = e as { code: string; details?: unknown }; return { code: x.code, details: x.details }; }
};

describe('predict path helpers', () => {
  it('plain floats: limits per feature (a short list leaves later features free), values on a limit pass, the first bad value is named', () => {
    const v = compileValidator([{ name: 'x', type: 'float32', shape: ['batch', 4], min: [0, -1], max: 5 }], { maxBatch: 4 });
    const { feeds } = v({ x: [[0, -1, -1e30, 5], [5, 5, 1e-30, -0]] });
    expect(Array.from(feeds.x.data as Float32Array)).toEqual([0, -1, Math.fround(-1e30), 5, 5, 5, Math.fround(1e-30), -0]);
    expect(feeds.x.dims).toEqual([2, 4]);
    expect(codeOf(() => v({ x: [[0, 0, 0, 0], [0, -1.5, 0, 6]] }))).toEqual({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'x', index: [1, 1] } });
    expect(codeOf(() => v({ x: [[0, 0, 0, 5.5]] }))).toEqual({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'x', index: [0, 3] } });
    expect(codeOf(() => v({ x: [[0, 0, '1', 0]] }))).toEqual({ code: 'AGENT_ERR_INPUT_TYPE', details: { input: 'x', index: [0, 2] } });
    expect(codeOf(() => v({ x: [[0, 0, null, 0]] }))).toEqual({ code: 'AGENT_ERR_INPUT_NAN', details: { input: 'x', index: [0, 2] } });
    expect(codeOf(() => v({ x: [[0, 0, [1], 0]] }))?.code).toBe('AGENT_ERR_INPUT_SHAPE');
  });

  it('plain floats: the float32 edge, and NaN spellings mixed into an allowNaN row land in their places', () => {
    const f = compileValidator([{ name: 'f', type: 'float32', shape: [2] }], { maxBatch: 1 });
    expect(Array.from(f({ f: [3.4028234663852886e38, -3.4028234663852886e38] }).feeds.f.data as Float32Array)).toEqual([3.4028234663852886e38, -3.4028234663852886e38]);
    expect(codeOf(() => f({ f: [0, 3.5e38] }))).toEqual({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'f', index: [1] } });
    const lax = compileValidator([{ name: 'y', type: 'float64', shape: [5], allowNaN: true, min: 0, max: 1 }], { maxBatch: 1 });
    const d = lax({ y: [0, null, 1, 'Infinity', 0.5] }).feeds.y.data as Float64Array;
    expect(Array.from(d)).toEqual([0, Number.NaN, 1, Number.POSITIVE_INFINITY, 0.5]);
    expect(codeOf(() => lax({ y: [0, 1, 2, 0, 0] }))).toEqual({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'y', index: [2] } });
  });

  it('outputs as JSON: floats (NaN kept for the check), int64 as numbers, bools, strings; dims copied', () => {
    const dims = [1, 3];
    const t = toJsonTensor({ type: 'float32', dims, data: Float32Array.from([0.5, Number.NaN, -2]) });
    expect(t).toEqual({ dims: [1, 3], data: [0.5, Number.NaN, -2] });
    expect(t.dims).not.toBe(dims);
    expect(toJsonTensor({ type: 'int64', dims: [2], data: BigInt64Array.from([-3n, 2n ** 40n]) }).data).toEqual([-3, 2 ** 40]);
    expect(toJsonTensor({ type: 'bool', dims: [3], data: Uint8Array.from([1, 0, 7]) }).data).toEqual([true, false, true]);
    expect(toJsonTensor({ type: 'string', dims: [2], data: ['a', 'b'] }).data).toEqual(['a', 'b']);
    expect(JSON.stringify(formatOutputs({ y: { type: 'float64', dims: [1], data: Float64Array.from([Number.NaN]) } }))).toBe('{"y":{"dims":[1],"data":[null]}}');
  });

  it('a non-finite output counts unless its spec allows it; the spec is not consulted for finite outputs', () => {
    const asked: string[] = [];
    const allowed = (n: string) => { asked.push(n); return n === 'lax'; };
    expect(hasForbiddenNonFinite({ a: { dims: [2], data: [1, 2] }, b: { dims: [1], data: ['x'] } }, allowed)).toBe(false);
    expect(asked).toEqual([]);
    expect(hasForbiddenNonFinite({ lax: { dims: [2], data: [Number.NaN, Number.NaN] }, a: { dims: [1], data: [1] } }, allowed)).toBe(false);
    expect(hasForbiddenNonFinite({ lax: { dims: [1], data: [Number.NaN] }, a: { dims: [2], data: [1, Number.NEGATIVE_INFINITY] } }, allowed)).toBe(true);
    expect(asked).toEqual(['lax', 'lax', 'a']);
  });

  it('a float16 output (raw half bits from onnxruntime) holding NaN or Infinity counts as non-finite; finite halves do not', () => {
    const half = (bits: number[]) => ({ type: 'float16', dims: [bits.length], data: Uint16Array.from(bits) });
    const never = () => false;
    // 0x3c00 = 1, 0x7bff = 65504 (largest finite), 0x8400 = -2^-14: all finite.
    expect(hasForbiddenNonFinite({ y: half([0x3c00, 0x7bff, 0x8400]) }, never)).toBe(false);
    expect(hasForbiddenNonFinite({ y: half([0x3c00, 0x7e00]) }, never)).toBe(true); // NaN
    expect(hasForbiddenNonFinite({ y: half([0xfc00]) }, never)).toBe(true); // -Infinity
    expect(hasForbiddenNonFinite({ y: half([0x7c00]) }, (n) => n === 'y')).toBe(false); // allowed by its spec
    // A uint16 output with the same bits is plain integers, never non-finite.
    expect(hasForbiddenNonFinite({ y: { type: 'uint16', dims: [1], data: Uint16Array.from([0x7e00]) } }, never)).toBe(false);
  });
});
