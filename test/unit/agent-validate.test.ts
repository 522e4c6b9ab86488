import { describe, expect, it } from 'vitest';
import type { TensorSpec } from '../../protocol/manifest.js';
import { compileValidator } from '../../agent/validate.js';

const specs: TensorSpec[] = [
  { name: 'x', type: 'float32', shape: ['batch', 4], features: ['a', 'b', 'c', 'd'], min: [-10, -10, -10, 0], max: 10 },
  { name: 'category', type: 'int64', shape: ['batch', 1], min: 0, max: 9 },
];
const validate = compileValidator(specs, { maxBatch: 8 });
const ok = { x: [[1, 2, 3, 4], [0.5, -1, 2, 0]], category: [[3], [7]] };

function code(inputs: unknown): { code: string; details: Record<string, unknown> } {
  try {
    validate(inputs);
  } catch (e) {
    return { code: (e as { code: string }).code, details: (e as { details: Record<string, unknown> }).details };
  }
  throw new Error('expected a validation error');
}

describe('predict input validation', () => {
  it('refuses a small ragged body that claims a huge shape before allocating for it', () => {
    // One 400,000-wide first row, then 1,023 scalars: the first row alone says [1024, 400000] (3.3 GB as float64).
    const wide = compileValidator([{ name: 'x', type: 'float64', shape: ['batch', 'seq'] }], { maxBatch: 2048 });
    const body = { x: [new Array(400_000).fill(0), ...new Array(1023).fill(0)] };
    const before = process.memoryUsage().arrayBuffers;
    let err: { code?: string } = {};
    try { wide(body); } catch (e) { err = e as { code?: string }; }
    expect(err.code).toBe('AGENT_ERR_INPUT_SHAPE');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(100 * 1024 * 1024);
    // A genuinely large, regular input still validates.
    expect(wide({ x: [new Array(70_000).fill(1), new Array(70_000).fill(2)] }).feeds.x.dims).toEqual([2, 70_000]);
  });

  it('builds typed tensors in row-major order (int64 as BigInt64Array)', () => {
    const { feeds, batch } = validate(ok);
    expect(batch).toBe(2);
    expect(feeds.x.dims).toEqual([2, 4]);
    expect(feeds.x.data).toBeInstanceOf(Float32Array);
    expect(Array.from(feeds.x.data as Float32Array)).toEqual([1, 2, 3, 4, 0.5, -1, 2, 0]);
    expect(feeds.category.data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(feeds.category.data as BigInt64Array)).toEqual([3n, 7n]);
  });

  it('refuses unknown and missing inputs by name', () => {
    expect(code({ ...ok, z: [[1]] })).toEqual({ code: 'AGENT_ERR_UNKNOWN_INPUT', details: { input: 'z' } });
    expect(code({ x: ok.x })).toEqual({ code: 'AGENT_ERR_MISSING_INPUT', details: { input: 'category' } });
    expect(code(JSON.parse('{"__proto__": [[1]], "x": [[1,2,3,4]], "category": [[1]]}')).code).toBe('AGENT_ERR_UNKNOWN_INPUT');
    expect(code([1, 2]).code).toBe('AGENT_ERR_BAD_REQUEST');
    expect(code(null).code).toBe('AGENT_ERR_BAD_REQUEST');
  });

  it('checks rank, raggedness, fixed dims and symbolic dims across inputs', () => {
    expect(code({ ...ok, x: [1, 2, 3, 4] })).toMatchObject({ code: 'AGENT_ERR_INPUT_SHAPE', details: { input: 'x' } });
    expect(code({ ...ok, x: [[[1], [2], [3], [4]]], category: [[1]] })).toMatchObject({ code: 'AGENT_ERR_INPUT_SHAPE' });
    expect(code({ ...ok, x: [[1, 2, 3, 4], [1, 2, 3]] })).toEqual({ code: 'AGENT_ERR_INPUT_SHAPE', details: { input: 'x', index: [1] } });
    expect(code({ ...ok, x: [[1, 2, 3]], category: [[1]] })).toMatchObject({ code: 'AGENT_ERR_INPUT_SHAPE', details: { input: 'x', dim: 1 } });
    expect(code({ ...ok, category: [[1]] })).toMatchObject({ code: 'AGENT_ERR_INPUT_SHAPE', details: { input: 'category', dim: 0 } });
    expect(code({ ...ok, x: [] })).toMatchObject({ code: 'AGENT_ERR_INPUT_SHAPE' });
    expect(code({ ...ok, x: [[1, 2, 3, 4], 5] })).toEqual({ code: 'AGENT_ERR_INPUT_SHAPE', details: { input: 'x', index: [1] } });
  });

  it('rejects deep nesting quickly without recursing into it', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(code({ ...ok, x: deep }).code).toBe('AGENT_ERR_INPUT_SHAPE');
    expect(code({ x: [[1, 2, 3, [deep]]], category: [[1]] })).toEqual({ code: 'AGENT_ERR_INPUT_SHAPE', details: { input: 'x', index: [0, 3] } });
  });

  it('checks element types: numbers for floats, JSON integers for int64', () => {
    expect(code({ ...ok, x: [[1, 2, '3', 4], [1, 1, 1, 1]] })).toEqual({ code: 'AGENT_ERR_INPUT_TYPE', details: { input: 'x', index: [0, 2] } });
    expect(code({ ...ok, x: [[1, 2, true, 4], [1, 1, 1, 1]] }).code).toBe('AGENT_ERR_INPUT_TYPE');
    expect(code({ ...ok, x: [[1, 2, {}, 4], [1, 1, 1, 1]] }).code).toBe('AGENT_ERR_INPUT_TYPE');
    expect(code({ ...ok, category: [[1.5], [2]] })).toEqual({ code: 'AGENT_ERR_INPUT_TYPE', details: { input: 'category', index: [0, 0] } });
    expect(code({ ...ok, category: [['1'], [2]] }).code).toBe('AGENT_ERR_INPUT_TYPE');
  });

  it('refuses NaN and Infinity in every JSON spelling unless the input allows them', () => {
    for (const bad of [null, 'NaN', 'Infinity', '-Infinity', 1e400]) {
      expect(code({ ...ok, x: [[1, 2, 3, 4], [1, bad, 1, 1]] })).toEqual({ code: 'AGENT_ERR_INPUT_NAN', details: { input: 'x', index: [1, 1] } });
    }
    const lax = compileValidator([{ name: 'x', type: 'float64', shape: [3], allowNaN: true, min: 0, max: 1 }], { maxBatch: 8 });
    const d = lax({ x: ['NaN', null, '-Infinity'] }).feeds.x.data as Float64Array;
    expect(Number.isNaN(d[0]) && Number.isNaN(d[1]) && d[2] === -Infinity).toBe(true);
  });

  it('enforces released limits, per feature and per type, and the batch cap', () => {
    expect(code({ ...ok, x: [[1, 2, 3, -0.5], [1, 1, 1, 1]] })).toEqual({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'x', index: [0, 3] } });
    expect(code({ ...ok, x: [[1, 2, 11, 4], [1, 1, 1, 1]] }).code).toBe('AGENT_ERR_INPUT_RANGE');
    expect(code({ ...ok, category: [[1], [10]] })).toEqual({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'category', index: [1, 0] } });
    const wide = compileValidator([{ name: 'f', type: 'float32', shape: [1] }, { name: 'u', type: 'uint8', shape: [1] }, { name: 'l', type: 'int64', shape: [1] }], { maxBatch: 8 });
    expect(() => wide({ f: [1e39], u: [1], l: [1] })).toThrow(expect.objectContaining({ code: 'AGENT_ERR_INPUT_RANGE' }));
    expect(() => wide({ f: [1], u: [256], l: [1] })).toThrow(expect.objectContaining({ code: 'AGENT_ERR_INPUT_RANGE' }));
    expect(() => wide({ f: [1], u: [1], l: [2 ** 60] })).toThrow(expect.objectContaining({ code: 'AGENT_ERR_INPUT_RANGE' }));
    const nine = Array.from({ length: 9 }, () => [1, 1, 1, 1]);
    expect(code({ x: nine, category: nine.map(() => [1]) })).toMatchObject({ code: 'AGENT_ERR_BATCH_TOO_LARGE', details: { input: 'x' } });
  });

  it('handles scalars, bools and strings', () => {
    const v = compileValidator([{ name: 's', type: 'float32', shape: [] }, { name: 'b', type: 'bool', shape: [2] }, { name: 't', type: 'string', shape: [1] }], { maxBatch: 1 });
    const { feeds } = v({ s: 2.5, b: [true, false], t: ['hi'] });
    expect(Array.from(feeds.s.data as Float32Array)).toEqual([2.5]);
    expect(Array.from(feeds.b.data as Uint8Array)).toEqual([1, 0]);
    expect(feeds.t.data).toEqual(['hi']);
    expect(() => v({ s: [2.5], b: [true, false], t: ['hi'] })).toThrow(expect.objectContaining({ code: 'AGENT_ERR_INPUT_SHAPE' }));
    expect(() => v({ s: 1, b: [1, 0], t: ['hi'] })).toThrow(expect.objectContaining({ code: 'AGENT_ERR_INPUT_TYPE' }));
  });

  it('accepts float16 inputs as JSON numbers, rounded to the nearest half (ties to even), and refuses what no half holds', () => {
    const v = compileValidator([{ name: 'h', type: 'float16', shape: ['batch', 6] }], { maxBatch: 4 });
    // 1 + 2^-11 is halfway between 1 (0x3c00) and the next half (0x3c01): ties to even, 0x3c00.
    const { feeds } = v({ h: [[1, -2, 65504, 1 + 2 ** -11, 2 ** -24, 0.1]] });
    expect(feeds.h.type).toBe('float16');
    expect(feeds.h.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(feeds.h.data as Uint16Array)).toEqual([0x3c00, 0xc000, 0x7bff, 0x3c00, 0x0001, 0x2e66]);
    expect(() => v({ h: [[1, 1, 65520, 1, 1, 1]] })).toThrow(expect.objectContaining({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'h', index: [0, 2] } }));
    expect(() => v({ h: [[1, 1, 1, null, 1, 1]] })).toThrow(expect.objectContaining({ code: 'AGENT_ERR_INPUT_NAN' }));
    expect(() => v({ h: [[1, 1, 1, 'x', 1, 1]] })).toThrow(expect.objectContaining({ code: 'AGENT_ERR_INPUT_TYPE' }));
  });
});
