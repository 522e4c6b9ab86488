/**
 * JSON inputs (the predict body's nested arrays) to onnxruntime tensors, for
 * running a model at build time (`--example`, the build's smoke check). The
 * device checks far more (limits, NaN, batch cap: agent/validate.ts) when it
 * runs the signed cases again at install; here only what is needed to build a
 * tensor is checked, and every problem names the input (BUNDLE_ERR_BAD_EXAMPLE).
 */
import ort from 'onnxruntime-node';
import { floatToHalf, HALF_OVERFLOW } from '@fleetcast/protocol/float16.js';
import type { ElementType, TensorSpec } from '@fleetcast/protocol/manifest.js';
import { bundleError } from '@fleetcast/bundles/errors.js';
import type { SmokeRun, SmokeTensor } from '@fleetcast/bundles/smoke.js';

const MAX_ELEMENTS = 1 << 26;

function shapeOf(v: unknown, rank: number, name: string): number[] {
  const dims: number[] = [];
  let x = v;
  for (let d = 0; d < rank; d++) {
    if (!Array.isArray(x) || x.length === 0) throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${name}: expected a non-empty nested array of rank ${rank} at depth ${d}`);
    dims.push(x.length);
    x = x[0];
  }
  return dims;
}

function flatten(v: unknown, dims: number[], name: string): unknown[] {
  const out: unknown[] = [];
  const walk = (x: unknown, d: number): void => {
    if (d === dims.length) {
      if (Array.isArray(x)) throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${name}: more dimensions than the model's rank ${dims.length}`);
      out.push(x);
      return;
    }
    if (!Array.isArray(x) || x.length !== dims[d]) throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${name}: ragged array at depth ${d} (expected length ${dims[d]})`);
    for (const y of x) walk(y, d + 1);
  };
  walk(v, 0);
  return out;
}

/** JSON has no NaN: null and the strings "NaN", "Infinity", "-Infinity" stand for them (as the predict API reads them). */
const NON_FINITE: Record<string, number> = { NaN: Number.NaN, Infinity: Infinity, '-Infinity': -Infinity };

const num = (x: unknown, name: string, type: string): number => {
  if (type.startsWith('float') && (x === null || (typeof x === 'string' && Object.hasOwn(NON_FINITE, x)))) return x === null ? Number.NaN : NON_FINITE[x as string];
  if (typeof x !== 'number') throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${name}: expected numbers for ${type}, found ${JSON.stringify(x)?.slice(0, 40)}`);
  return x;
};

const INT_RANGES: Partial<Record<ElementType, [number, number]>> = {
  int8: [-128, 127], uint8: [0, 255], int16: [-32768, 32767], uint16: [0, 65535],
  int32: [-2147483648, 2147483647], uint32: [0, 4294967295],
  // JSON numbers beyond ±2^53 have lost digits in the parser: the device refuses them for int64/uint64.
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER], uint64: [0, Number.MAX_SAFE_INTEGER],
};
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * The value checks the device's predict validator makes (agent/validate.ts, which bundles/ may not
 * import): NaN/Infinity only with allowNaN, integers for integer types and within the type, the
 * float32/float16 range, and the release limits per feature (the last dimension). A case the device
 * refuses would fail the smoke check on every device after the build had signed it.
 */
function checkAsDevice(spec: TensorSpec, flat: readonly unknown[], dims: readonly number[]): void {
  const t = spec.type;
  if (t === 'string' || t === 'bool') return;
  const name = spec.name;
  const last = dims.length > 0 ? dims[dims.length - 1] : 1;
  const limit = (l: number | number[] | undefined, f: number) => (Array.isArray(l) ? l[f] : l);
  const isFloat = t === 'float16' || t === 'float32' || t === 'float64';
  for (let i = 0; i < flat.length; i++) {
    const x = num(flat[i], name, t);
    const bad = (why: string) => bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${name} element ${i}: ${why}; the device's predict validator refuses it, so every device would fail this case`);
    if (!Number.isFinite(x)) {
      if (spec.allowNaN !== true) throw bad(`${String(x)} (NaN/Infinity) is not allowed without allowNaN`);
      continue;
    }
    if (isFloat) {
      if (t === 'float32' && Math.abs(x) > FLOAT32_MAX) throw bad(`${x} does not fit float32`);
      if (t === 'float16' && Math.abs(x) >= HALF_OVERFLOW) throw bad(`${x} does not fit float16 (largest 65504)`);
    } else {
      if (!Number.isInteger(x)) throw bad(`expected an integer for ${t}, found ${x}`);
      const [a, b] = INT_RANGES[t]!;
      if (x < a || x > b) throw bad(`${x} does not fit ${t} exactly`);
    }
    const lo = limit(spec.min, i % last);
    const hi = limit(spec.max, i % last);
    if ((lo !== undefined && x < lo) || (hi !== undefined && x > hi)) {
      const f = spec.features?.[i % last];
      throw bad(`${x} is outside [${lo ?? '-∞'}, ${hi ?? '∞'}]${f ? ` for feature ${f}` : ''}`);
    }
  }
}

/**
 * One input of an example as an onnxruntime tensor of the spec's element type. `asDevice`: also
 * refuse values the device's validator refuses (checkAsDevice), for cases that are signed.
 */
export function jsonToTensor(spec: TensorSpec, value: unknown, asDevice = false): ort.Tensor {
  const name = spec.name;
  const dims = shapeOf(value, spec.shape.length, name);
  spec.shape.forEach((want, d) => {
    if (typeof want === 'number' && dims[d] !== want) throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${name}: dimension ${d} is ${dims[d]}, the model needs ${want}`);
  });
  if (dims.reduce((a, b) => a * b, 1) > MAX_ELEMENTS) throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${name}: more than ${MAX_ELEMENTS} elements`);
  const flat = flatten(value, dims, name);
  if (asDevice) checkAsDevice(spec, flat, dims);
  return tensorOf(spec.type, flat, dims, name);
}

/** Row-major JSON values as an onnxruntime tensor of element type `t` (float16 as half bits). */
export function tensorOf(t: ElementType, flat: unknown[], dims: readonly number[], name: string): ort.Tensor {
  const n = (x: unknown) => num(x, name, t);
  switch (t) {
    case 'string':
      return new ort.Tensor('string', flat.map((x) => { if (typeof x !== 'string') throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${name}: expected strings`); return x; }), dims);
    case 'bool':
      return new ort.Tensor('bool', Uint8Array.from(flat, (x) => { if (typeof x !== 'boolean') throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${name}: expected true or false`); return x ? 1 : 0; }), dims);
    case 'float16': return new ort.Tensor('float16', Uint16Array.from(flat, (x) => floatToHalf(n(x))), dims);
    case 'float32': return new ort.Tensor('float32', Float32Array.from(flat, n), dims);
    case 'float64': return new ort.Tensor('float64', Float64Array.from(flat, n), dims);
    case 'int64': return new ort.Tensor('int64', BigInt64Array.from(flat, (x) => BigInt(Math.trunc(n(x)))), dims);
    case 'uint64': return new ort.Tensor('uint64', BigUint64Array.from(flat, (x) => BigInt(Math.trunc(n(x)))), dims);
    case 'int8': return new ort.Tensor('int8', Int8Array.from(flat, n), dims);
    case 'uint8': return new ort.Tensor('uint8', Uint8Array.from(flat, n), dims);
    case 'int16': return new ort.Tensor('int16', Int16Array.from(flat, n), dims);
    case 'uint16': return new ort.Tensor('uint16', Uint16Array.from(flat, n), dims);
    case 'int32': return new ort.Tensor('int32', Int32Array.from(flat, n), dims);
    case 'uint32': return new ort.Tensor('uint32', Uint32Array.from(flat, n), dims);
  }
}

/**
 * A session over the model bytes and a SmokeRun for it. The caller releases
 * the session. Inputs not in `specs` are refused; a missing one is named.
 */
export async function buildTimeRunner(model: Uint8Array, specs: readonly TensorSpec[]): Promise<{ run: SmokeRun; release: () => Promise<void> }> {
  let session: ort.InferenceSession;
  try {
    // 4 = fatal only: a failing run is reported once, as a coded error, not also as an ORT log line on stderr.
    session = await ort.InferenceSession.create(model, { logSeverityLevel: 4 });
  } catch (e) {
    throw bundleError('BUNDLE_ERR_BAD_MODEL', `onnxruntime-node cannot load the model: ${(e as Error).message}`);
  }
  const run: SmokeRun = async (inputs) => {
    const feeds: Record<string, ort.Tensor> = {};
    for (const k of Object.keys(inputs)) if (!specs.some((s) => s.name === k)) throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${JSON.stringify(k)} is not a model input (${specs.map((s) => s.name).join(', ')})`);
    // A named dynamic dimension has one size across the inputs of a request, as the device's validator requires.
    const sizes = new Map<string, { size: number; input: string }>();
    for (const s of specs) {
      if (!Object.hasOwn(inputs, s.name)) throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `input ${s.name} is missing`);
      const t = jsonToTensor(s, inputs[s.name], true);
      s.shape.forEach((d, i) => {
        if (typeof d !== 'string') return;
        const seen = sizes.get(d);
        if (!seen) sizes.set(d, { size: t.dims[i], input: s.name });
        else if (seen.size !== t.dims[i]) throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', `dimension "${d}" is ${seen.size} in input ${seen.input} but ${t.dims[i]} in input ${s.name}; the device refuses such a request`);
      });
      feeds[s.name] = t;
    }
    const out = await session.run(feeds);
    const res: Record<string, SmokeTensor> = {};
    for (const [k, t] of Object.entries(out)) res[k] = { type: t.type, dims: [...t.dims], data: t.data as ArrayLike<unknown> };
    return res;
  };
  return { run, release: () => session.release() };
}
