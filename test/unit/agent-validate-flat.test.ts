/**
 * Flat-tensor validation (agent/validate-flat.ts) on its own: raw little-endian
 * bytes written with DataView/Buffer by the test, checked for the same things
 * as JSON (NaN, limits per feature, BOOL bytes, BYTES layout), and JSON data
 * refused with the same codes as /v1/predict.
 */
import { describe, expect, it } from 'vitest';
import type { TensorSpec } from '../../protocol/manifest.js';
import { compileFlatValidator, type FlatInput } from '../../agent/validate-flat.js';
import { isFleetcastError } from '../../protocol/errors.js';

const opts = { maxBatch: 4 };

function codeOf(fn: () => unknown): { code: string; details: Record<string, unknown> } {
  try { fn(); } catch (e) {
    if (isFleetcastError(e)) return { code: e.code, details: { ...e.details } };
    throw e;
  }
  throw new Error('expected a coded error');
}

describe('validate-flat: binary tensors', () => {
  it('FP32 bytes become a Float32Array; NaN and per-feature limits are refused with the nested index', () => {
    const spec: TensorSpec = { name: 'x', type: 'float32', shape: ['batch', 2], min: [0, -1], max: [10, 1] };
    const v = compileFlatValidator([spec], opts);
    const bytes = (xs: number[]) => { const b = Buffer.alloc(4 * xs.length); xs.forEach((x, i) => b.writeFloatLE(x, 4 * i)); return b; };
    const input = (xs: number[]): FlatInput => ({ name: 'x', datatype: 'FP32', shape: [xs.length / 2, 2], bytes: bytes(xs) });
    const ok = v([input([1, 0.5, 9, -1])]);
    expect(ok.feeds.x.data).toBeInstanceOf(Float32Array);
    expect([...(ok.feeds.x.data as Float32Array)]).toEqual([1, 0.5, 9, -1]);
    expect(ok.batch).toBe(2);
    expect(codeOf(() => v([input([1, 0.5, 9, Number.NaN])]))).toEqual({ code: 'AGENT_ERR_INPUT_NAN', details: { input: 'x', index: [1, 1] } });
    // 2 is inside feature 0's limits but outside feature 1's.
    expect(codeOf(() => v([input([1, 2, 2, 0])]))).toEqual({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'x', index: [0, 1] } });
    expect(codeOf(() => v([{ ...input([1, 0.5]), bytes: bytes([1, 0.5]).subarray(0, 7) }])).code).toBe('AGENT_ERR_BINARY_LAYOUT');
    expect(codeOf(() => v([input([1, 0.5, 1, 0.5, 1, 0.5, 1, 0.5, 1, 0.5])])).code).toBe('AGENT_ERR_BATCH_TOO_LARGE');
  });

  it('a misaligned slice of the body is copied, not viewed', () => {
    const v = compileFlatValidator([{ name: 'n', type: 'int64', shape: [2] }], opts);
    const body = Buffer.alloc(17);
    body.writeBigInt64LE(-5n, 1);
    body.writeBigInt64LE(2n ** 60n, 9);
    const out = v([{ name: 'n', datatype: 'INT64', shape: [2], bytes: body.subarray(1) }]).feeds.n.data as BigInt64Array;
    expect([...out]).toEqual([-5n, 2n ** 60n]);
  });

  it('FP16 bits: NaN and Infinity refused, limits applied to the decoded value', () => {
    const v = compileFlatValidator([{ name: 'h', type: 'float16', shape: [3], max: 2 }], opts);
    const half = (...hs: number[]) => { const b = Buffer.alloc(2 * hs.length); hs.forEach((h, i) => b.writeUInt16LE(h, 2 * i)); return b; };
    // 0x3c00 = 1.0, 0x4000 = 2.0, 0xbc00 = -1.0, 0x4200 = 3.0, 0x7e00 = NaN, 0x7c00 = +Infinity.
    expect([...(v([{ name: 'h', datatype: 'FP16', shape: [3], bytes: half(0x3c00, 0x4000, 0xbc00) }]).feeds.h.data as Uint16Array)]).toEqual([0x3c00, 0x4000, 0xbc00]);
    expect(codeOf(() => v([{ name: 'h', datatype: 'FP16', shape: [3], bytes: half(0x3c00, 0x4200, 0) }]))).toEqual({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'h', index: [1] } });
    expect(codeOf(() => v([{ name: 'h', datatype: 'FP16', shape: [3], bytes: half(0, 0, 0x7e00) }])).code).toBe('AGENT_ERR_INPUT_NAN');
    expect(codeOf(() => v([{ name: 'h', datatype: 'FP16', shape: [3], bytes: half(0x7c00, 0, 0) }])).code).toBe('AGENT_ERR_INPUT_NAN');
  });

  it('BOOL bytes must be 0 or 1; BYTES must be length-prefixed UTF-8 with exactly the shape\'s count', () => {
    const v = compileFlatValidator([{ name: 'b', type: 'bool', shape: [2] }, { name: 's', type: 'string', shape: [2] }], opts);
    const str = (...xs: (string | Buffer)[]) => Buffer.concat(xs.flatMap((x) => { const d = Buffer.from(x); const n = Buffer.alloc(4); n.writeUInt32LE(d.length); return [n, d]; }));
    const run = (b: Buffer, s: Buffer) => v([{ name: 'b', datatype: 'BOOL', shape: [2], bytes: b }, { name: 's', datatype: 'BYTES', shape: [2], bytes: s }]);
    expect(run(Buffer.from([1, 0]), str('a', 'ü')).feeds.s.data).toEqual(['a', 'ü']);
    expect(codeOf(() => run(Buffer.from([1, 2]), str('a', 'b')))).toEqual({ code: 'AGENT_ERR_INPUT_TYPE', details: { input: 'b', index: [1] } });
    expect(codeOf(() => run(Buffer.from([1, 0]), str('a'))).code).toBe('AGENT_ERR_BINARY_LAYOUT');
    expect(codeOf(() => run(Buffer.from([1, 0]), str('a', 'b', 'c'))).code).toBe('AGENT_ERR_BINARY_LAYOUT');
    expect(codeOf(() => run(Buffer.from([1, 0]), Buffer.concat([str('a'), Buffer.from([9, 0, 0, 0, 1])]))).code).toBe('AGENT_ERR_BINARY_LAYOUT');
    expect(codeOf(() => run(Buffer.from([1, 0]), Buffer.concat([str('a'), Buffer.from([1, 0])]))).code).toBe('AGENT_ERR_BINARY_LAYOUT');
    expect(codeOf(() => run(Buffer.from([1, 0]), str('a', Buffer.from([0xff, 0xfe]))))).toEqual({ code: 'AGENT_ERR_INPUT_TYPE', details: { input: 's', index: [1] } });
  });
});

describe('validate-flat: JSON data and the request as a whole', () => {
  const specs: TensorSpec[] = [{ name: 'x', type: 'float32', shape: ['batch', 2] }, { name: 'c', type: 'int64', shape: ['batch', 1], min: 0 }];
  const v = compileFlatValidator(specs, opts);
  const x = (data: unknown, shape = [2, 2]): FlatInput => ({ name: 'x', datatype: 'FP32', shape, data });
  const c = (data: unknown, shape = [2, 1]): FlatInput => ({ name: 'c', datatype: 'INT64', shape, data });

  it('flat data is the row-major tensor; the codes are those of /v1/predict', () => {
    const ok = v([x([1, 2, 3, 4]), c([0, 5])]);
    expect([...(ok.feeds.x.data as Float32Array)]).toEqual([1, 2, 3, 4]);
    expect([...(ok.feeds.c.data as BigInt64Array)]).toEqual([0n, 5n]);
    expect(codeOf(() => v([x([1, 2, 3, 'four']), c([0, 5])]))).toEqual({ code: 'AGENT_ERR_INPUT_TYPE', details: { input: 'x', index: [1, 1] } });
    expect(codeOf(() => v([x([1, 2, 3, 4]), c([0, -1])]))).toEqual({ code: 'AGENT_ERR_INPUT_RANGE', details: { input: 'c', index: [1, 0] } });
    expect(codeOf(() => v([x([1, 2, 3]), c([0, 5])])).code).toBe('AGENT_ERR_INPUT_SHAPE');
    expect(codeOf(() => v([x([1, 2, 3, 4]), c([0], [1, 1])])).details).toMatchObject({ input: 'c' });
    expect(codeOf(() => v([x([1, 2, 3, 4], [2, 2, 1]), c([0, 5])])).code).toBe('AGENT_ERR_INPUT_SHAPE');
    expect(codeOf(() => v([x([1, 2, 3, 4]), c([0, 5]), x([1, 2, 3, 4])])).code).toBe('AGENT_ERR_BAD_REQUEST');
    expect(codeOf(() => v([x([1, 2, 3, 4])])).code).toBe('AGENT_ERR_MISSING_INPUT');
    expect(codeOf(() => v([x([1, 2, 3, 4]), { ...c([0, 5]), datatype: 'INT32' }])).code).toBe('AGENT_ERR_INPUT_TYPE');
    expect(codeOf(() => v([x('1,2,3,4'), c([0, 5])])).code).toBe('AGENT_ERR_BAD_REQUEST');
    // Nested data is accepted as deep as the rank and no deeper.
    expect([...(v([x([[1, 2], [3, 4]]), c([[0], [5]])]).feeds.x.data as Float32Array)]).toEqual([1, 2, 3, 4]);
    expect(codeOf(() => v([x([[[1, 2]], [[3, 4]]]), c([0, 5])])).code).toBe('AGENT_ERR_INPUT_SHAPE');
  });

  it('a shape that claims more elements than arrived allocates nothing and is refused', () => {
    const wide = compileFlatValidator([{ name: 'z', type: 'float32', shape: ['batch', 'n'] }], opts);
    expect(codeOf(() => wide([{ name: 'z', datatype: 'FP32', shape: [1, 2 ** 40], data: [1, 2] }])).code).toBe('AGENT_ERR_INPUT_SHAPE');
    expect(codeOf(() => wide([{ name: 'z', datatype: 'FP32', shape: [1, 2 ** 40], bytes: new Uint8Array(16) }])).code).toBe('AGENT_ERR_BINARY_LAYOUT');
  });
});
