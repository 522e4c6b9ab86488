/**
 * float16 <-> number, exhaustively over all 65,536 halves: every non-NaN half
 * survives half -> number -> half, and every midpoint between two neighbouring
 * halves rounds to the even one (just below it to the lower, just above to the
 * upper), which pins round-to-nearest-even including subnormals and overflow.
 */
import { describe, expect, it } from 'vitest';
import { floatToHalf, halfToFloat, halvesToNumbers } from '../../protocol/float16.js';

const isNaNHalf = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

describe('float16', () => {
  it('half -> number -> half is the identity for all 65,536 non-NaN halves; NaNs stay NaN', () => {
    let checked = 0;
    for (let h = 0; h < 0x10000; h++) {
      const v = halfToFloat(h);
      if (isNaNHalf(h)) {
        expect(Number.isNaN(v)).toBe(true);
        expect(isNaNHalf(floatToHalf(v))).toBe(true);
        continue;
      }
      if (floatToHalf(v) !== h) expect.fail(`half 0x${h.toString(16)} -> ${v} -> 0x${floatToHalf(v).toString(16)}`);
      checked++;
    }
    expect(checked).toBe(65536 - 2 * 1023); // all but the NaNs (2 signs × 1023 non-zero fractions)
  });

  it('decodes the landmarks of IEEE 754 binary16', () => {
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x0400)).toBe(2 ** -14);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x03ff)).toBe(1023 * 2 ** -24);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(halfToFloat(0x3555)).toBeCloseTo(1 / 3, 3);
  });

  it('rounds every midpoint between neighbouring halves to even, and anything off the midpoint to the nearer', () => {
    // Positive finite halves 0x0000 … 0x7bff, then 0x7c00 (Infinity) as the overflow neighbour of 65504.
    for (let h = 0; h < 0x7bff; h++) {
      const lo = halfToFloat(h);
      const hi = halfToFloat(h + 1);
      const mid = (lo + hi) / 2; // exact in a double
      const even = (h & 1) === 0 ? h : h + 1;
      const step = (hi - lo) / 1024;
      for (const sign of [0, 0x8000]) {
        const s = sign ? -1 : 1;
        if (floatToHalf(s * mid) !== (sign | even)) expect.fail(`midpoint ${s * mid} -> 0x${floatToHalf(s * mid).toString(16)}, want 0x${(sign | even).toString(16)}`);
        if (floatToHalf(s * (mid - step)) !== (sign | h)) expect.fail(`just below midpoint ${s * (mid - step)}`);
        if (floatToHalf(s * (mid + step)) !== (sign | (h + 1))) expect.fail(`just above midpoint ${s * (mid + step)}`);
      }
    }
  });

  it('overflows to Infinity from 65520 (halfway past 65504) and keeps signed zero, Infinity and NaN', () => {
    expect(floatToHalf(65519.99)).toBe(0x7bff);
    expect(floatToHalf(65520)).toBe(0x7c00);
    expect(floatToHalf(-65520)).toBe(0xfc00);
    expect(floatToHalf(1e300)).toBe(0x7c00);
    expect(floatToHalf(Infinity)).toBe(0x7c00);
    expect(floatToHalf(-Infinity)).toBe(0xfc00);
    expect(floatToHalf(0)).toBe(0);
    expect(floatToHalf(-0)).toBe(0x8000);
    expect(isNaNHalf(floatToHalf(Number.NaN))).toBe(true);
    // Below half the smallest subnormal: zero; exactly half of it ties to even (zero); a hair more: 2^-24.
    expect(floatToHalf(2 ** -26)).toBe(0);
    expect(floatToHalf(2 ** -25)).toBe(0);
    expect(floatToHalf(2 ** -25 * 1.0001)).toBe(1);
    expect(floatToHalf(-(2 ** -25) * 1.0001)).toBe(0x8001);
    // Values that are not float32-exact round once from the double (no double rounding through float32).
    expect(floatToHalf(1 + 2 ** -11 + 2 ** -40)).toBe(0x3c01);
  });

  it('converts a tensor of raw half bits to numbers', () => {
    expect(halvesToNumbers(Uint16Array.from([0x3c00, 0xc000, 0x7c00]))).toEqual([1, -2, Infinity]);
  });
});
