/**
 * IEEE 754 binary16 ("half", ONNX float16) <-> JS numbers. Node 20 has no
 * Float16Array, so onnxruntime takes and returns float16 tensors as the raw
 * bits in a Uint16Array; predict (JSON numbers), telemetry and the build-time
 * example run convert through these two functions. Here, not in agent/,
 * because bundles/ (which may not import agent/) converts examples too.
 */

/** Finite numbers of at least this magnitude round to ±Infinity (65504 is the largest half; 65520 ties away). */
export const HALF_OVERFLOW = 65520;

/**
 * The half nearest to `x`, ties to even (IEEE 754 roundTiesToEven), as its
 * 16 bits. Values at or beyond 65520 (halfway past the largest half, 65504)
 * become ±Infinity; NaN becomes the quiet NaN 0x7e00. Rounds `x` (a double)
 * directly, not through float32, so there is no double rounding.
 */
export function floatToHalf(x: number): number {
  if (x !== x) return 0x7e00;
  const sign = x < 0 || (x === 0 && 1 / x < 0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= HALF_OVERFLOW) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // Subnormal (or zero): a multiple of 2^-24. The scaled value is exact in a double, and
    // Math.round rounds ties up, so ties are resolved to even by hand.
    const s = a * 2 ** 24;
    let m = Math.floor(s);
    const r = s - m;
    if (r > 0.5 || (r === 0.5 && (m & 1) === 1)) m++;
    return sign | m; // m = 1024 carries into the smallest normal (exponent 1), which is right
  }
  // Normal: exponent e with 2^e <= a < 2^(e+1); the significand has 10 fraction bits.
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--; // log2 can be off by one ulp near powers of two
  else if (2 ** (e + 1) <= a) e++;
  const s = (a / 2 ** e - 1) * 1024; // exact: a division by a power of two
  let m = Math.floor(s);
  const r = s - m;
  if (r > 0.5 || (r === 0.5 && (m & 1) === 1)) m++;
  if (m === 1024) { m = 0; e++; }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

/** The number a half's 16 bits stand for (exact: every half is a float32 and a double). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m === 0 ? sign * Infinity : Number.NaN;
  return sign * (1024 + m) * 2 ** (e - 25);
}

/** Raw half bits to numbers (an output of a float16 tensor). */
export function halvesToNumbers(bits: ArrayLike<number>): number[] {
  const out = new Array<number>(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfToFloat(bits[i]);
  return out;
}

