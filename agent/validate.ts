/**
 * Predict input validation against the manifest's input schema (TensorSpec),
 * compiled once per installed model. One pass over the JSON nested arrays
 * checks rank, raggedness, dims (fixed, and symbolic dims that must agree
 * across inputs, e.g. "batch"), element type, NaN/Infinity and limits, while
 * writing straight into a typed array. Errors carry `{input, index}` so a
 * client can find the bad value.
 */
import type { ElementType, TensorSpec } from '@fleetcast/protocol/manifest.js';
import { floatToHalf, HALF_OVERFLOW } from '@fleetcast/protocol/float16.js';
import { agentError } from './errors.js';
import type { TensorArray, TensorData } from './runtime.js';

export interface ValidatedInputs { feeds: Record<string, TensorData>; batch: number }
export type InputValidator = (inputs: unknown) => ValidatedInputs;

type Kind = 'float' | 'int' | 'int64' | 'uint64' | 'bool' | 'string';

const INT_RANGES: Partial<Record<ElementType, [number, number]>> = {
  int8: [-128, 127], uint8: [0, 255], int16: [-32768, 32767], uint16: [0, 65535],
  int32: [-2147483648, 2147483647], uint32: [0, 4294967295],
};
const FLOAT32_MAX = 3.4028234663852886e38;

/** Element types the agent can build from JSON; others make a bundle incompatible. */
export const SUPPORTED_INPUT_TYPES: readonly ElementType[] = ['float32', 'float64', 'float16', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'bool', 'string'];

function kindOf(t: ElementType): Kind {
  if (t === 'float32' || t === 'float64' || t === 'float16') return 'float';
  if (t === 'int64') return 'int64';
  if (t === 'uint64') return 'uint64';
  if (t === 'bool') return 'bool';
  if (t === 'string') return 'string';
  if (INT_RANGES[t]) return 'int';
  throw agentError('AGENT_ERR_INCOMPATIBLE', `input element type ${t} is not supported by this agent`);
}

/**
 * Small numeric tensors are views into a shared slab instead of each having its
 * own ArrayBuffer: V8 gives a typed array over 64 bytes its own off-heap
 * backing store, which cost more (0.25–0.4 µs) than validating a 32-feature
 * row (bench telemetry-cost). A slab is never reused: when it is full the next
 * one is taken and the old one is freed by GC once no tensor views it, so two
 * requests never share memory. A fresh slab is zeroed like `new Float32Array(n)`.
 */
const SLAB_BYTES = 64 * 1024;
/** Larger tensors get their own buffer (the allocation is small beside filling them). */
const SLAB_MAX_BYTES = 4096;
let slab = new ArrayBuffer(0);
let slabUsed = 0;

function carve(bytes: number): [ArrayBuffer, number] {
  if (slabUsed + bytes > slab.byteLength) { slab = new ArrayBuffer(SLAB_BYTES); slabUsed = 0; }
  const at = slabUsed;
  slabUsed += (bytes + 7) & ~7; // every view starts 8-aligned (BigInt64Array, Float64Array need it)
  return [slab, at];
}

type NumericArrayType = { new (n: number): TensorArray; new (b: ArrayBuffer, at: number, n: number): TensorArray; BYTES_PER_ELEMENT: number };

const NUMERIC: Partial<Record<ElementType, NumericArrayType>> = {
  // float16 travels as its raw bits (onnxruntime's form without Float16Array); see float16.ts.
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array, int16: Int16Array,
  uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
} as unknown as Partial<Record<ElementType, NumericArrayType>>;

function allocate(t: ElementType, n: number): TensorArray {
  if (t === 'string') return new Array<string>(n);
  const A = NUMERIC[t];
  if (!A) throw agentError('AGENT_ERR_INCOMPATIBLE', `element type ${t}`);
  const bytes = n * A.BYTES_PER_ELEMENT;
  if (bytes > SLAB_MAX_BYTES) return new A(n);
  const [buf, at] = carve(bytes);
  return new A(buf, at, n);
}

interface Compiled {
  spec: TensorSpec;
  kind: Kind;
  rank: number;
  /** Per last-dimension feature limits (or one value for all); null = none. */
  lo: number[] | number | null;
  hi: number[] | number | null;
  allowNaN: boolean;
  intRange: [number, number] | null;
}

function compileSpec(spec: TensorSpec): Compiled {
  return {
    spec,
    kind: kindOf(spec.type),
    rank: spec.shape.length,
    lo: spec.min ?? null,
    hi: spec.max ?? null,
    allowNaN: spec.allowNaN === true,
    intRange: INT_RANGES[spec.type] ?? null,
  };
}

const limitAt = (l: number[] | number | null, f: number): number | undefined => (l === null ? undefined : typeof l === 'number' ? l : l[f]);

/**
 * Dims against the schema: fixed sizes must match; a symbolic name binds once for all inputs (`symbols`
 * is shared across the inputs of one request); a symbolic first dimension is the batch, at most maxBatch.
 * Used by the JSON validator and by the flat/binary one (agent/validate-flat.ts).
 */
export function checkDims(name: string, shape: TensorSpec['shape'], dims: readonly number[], symbols: Map<string, { size: number; input: string }>, maxBatch: number): void {
  for (let d = 0; d < shape.length; d++) {
    const want = shape[d];
    if (typeof want === 'number') {
      if (dims[d] !== want) throw agentError('AGENT_ERR_INPUT_SHAPE', `input ${name} dimension ${d} is ${dims[d]}, the model needs ${want}`, { input: name, dim: d });
    } else {
      const seen = symbols.get(want);
      if (!seen) symbols.set(want, { size: dims[d], input: name });
      else if (seen.size !== dims[d]) throw agentError('AGENT_ERR_INPUT_SHAPE', `dimension "${want}" is ${seen.size} in ${seen.input} but ${dims[d]} in ${name}`, { input: name, dim: d });
    }
  }
  if (shape.length > 0 && typeof shape[0] === 'string' && dims[0] > maxBatch) {
    throw agentError('AGENT_ERR_BATCH_TOO_LARGE', `input ${name} has ${dims[0]} rows, at most ${maxBatch}`, { input: name });
  }
}

export function compileValidator(specs: readonly TensorSpec[], opts: { maxBatch: number }): InputValidator {
  const compiled = specs.map(compileSpec);
  const byName = new Map(compiled.map((c) => [c.spec.name, c]));
  const names = specs.map((s) => s.name);

  return function validate(inputs: unknown): ValidatedInputs {
    if (typeof inputs !== 'object' || inputs === null || Array.isArray(inputs)) {
      throw agentError('AGENT_ERR_BAD_REQUEST', '"inputs" must be an object mapping input names to nested arrays');
    }
    const src = inputs as Record<string, unknown>;
    for (const k of Object.keys(src)) {
      if (!byName.has(k)) throw agentError('AGENT_ERR_UNKNOWN_INPUT', `unknown input ${JSON.stringify(k.slice(0, 100))}; the model takes ${names.join(', ')}`, { input: k.slice(0, 100) });
    }
    const symbols = new Map<string, { size: number; input: string }>();
    const feeds: Record<string, TensorData> = {};
    let batch = 1;
    for (const c of compiled) {
      const name = c.spec.name;
      if (!Object.hasOwn(src, name)) throw agentError('AGENT_ERR_MISSING_INPUT', `input ${name} is missing`, { input: name });
      const dims = measure(src[name], c, name);
      checkDims(name, c.spec.shape, dims, symbols, opts.maxBatch);
      if (c === compiled[0] && c.rank > 0) batch = dims[0];
      feeds[name] = { type: c.spec.type, dims, data: fill(src[name], c, dims, name) };
    }
    return { feeds, batch };
  };
}

/** Dims along the first element of each level; raggedness is caught by `fill`. */
function measure(value: unknown, c: Compiled, input: string): number[] {
  const dims: number[] = [];
  let v = value;
  const index: number[] = [];
  for (let d = 0; d < c.rank; d++) {
    if (!Array.isArray(v)) throw agentError('AGENT_ERR_INPUT_SHAPE', `input ${input} must be a nested array of rank ${c.rank} (shape [${c.spec.shape.join(', ')}]); found a non-array at depth ${d}`, { input, index });
    if (v.length === 0) throw agentError('AGENT_ERR_INPUT_SHAPE', `input ${input} has an empty dimension ${d}`, { input, index });
    dims.push(v.length);
    v = v[0];
    index.push(0);
  }
  if (Array.isArray(v)) throw agentError('AGENT_ERR_INPUT_SHAPE', `input ${input} has more than ${c.rank} dimensions (shape [${c.spec.shape.join(', ')}])`, { input, index });
  return dims;
}

/** Leaves of a nested array of the given rank, or NaN where a level is not an array. */
function countLeaves(v: unknown, depth: number, rank: number): number {
  if (depth === rank) return 1;
  if (!Array.isArray(v)) return Number.NaN;
  if (depth === rank - 1) return v.length;
  let n = 0;
  for (const x of v) n += countLeaves(x, depth + 1, rank);
  return n;
}

/** Above this many elements the structure is counted before allocating (see fill). */
const COUNT_BEFORE_ALLOCATING = 65_536;

function fill(value: unknown, c: Compiled, dims: number[], input: string): TensorArray {
  let total = 1;
  for (const d of dims) total *= d;
  // `measure` reads each dimension off the first element only, so a small ragged body (one long
  // first row, then scalars) could claim billions of elements; count what is really there first.
  if (total > COUNT_BEFORE_ALLOCATING && countLeaves(value, 0, c.rank) !== total) {
    throw agentError('AGENT_ERR_INPUT_SHAPE', `input ${input} is ragged: its rows differ in length from the first row's (shape [${dims.join(', ')}] by the first row)`, { input, index: [] });
  }
  const out = allocate(c.spec.type, total);
  const index = new Array<number>(c.rank).fill(0);
  const rank = c.rank;
  const last = rank > 0 ? dims[rank - 1] : 1;
  const half = c.spec.type === 'float16';
  let pos = 0;

  const bad = (code: Parameters<typeof agentError>[0], why: string, depth: number): never => {
    throw agentError(code, `input ${input}${depth ? ` at [${index.slice(0, depth).join(', ')}]` : ''}: ${why}`, { input, index: index.slice(0, depth) });
  };

  const leaf = (x: unknown, feature: number): void => {
    switch (c.kind) {
      case 'float': {
        let f: number;
        if (typeof x === 'number') f = x;
        else if (x === null || x === 'NaN' || x === 'Infinity' || x === '-Infinity') {
          // JSON has no NaN: JSON.stringify writes it as null, some clients as strings.
          // Both are accepted only to be refused clearly (or mapped when allowNaN).
          f = x === 'Infinity' ? Infinity : x === '-Infinity' ? -Infinity : NaN;
        } else if (Array.isArray(x)) return bad('AGENT_ERR_INPUT_SHAPE', `expected a number, found an array (too many dimensions for shape [${c.spec.shape.join(', ')}])`, rank);
        else return bad('AGENT_ERR_INPUT_TYPE', `expected a number for ${c.spec.type}, found ${describe(x)}`, rank);
        if (!Number.isFinite(f)) {
          if (!c.allowNaN) return bad('AGENT_ERR_INPUT_NAN', `${String(f)} is not allowed`, rank);
        } else {
          checkLimits(f, feature);
          if (c.spec.type === 'float32' && Math.abs(f) > FLOAT32_MAX) return bad('AGENT_ERR_INPUT_RANGE', `${f} does not fit float32`, rank);
          if (half && Math.abs(f) >= HALF_OVERFLOW) return bad('AGENT_ERR_INPUT_RANGE', `${f} does not fit float16 (largest 65504)`, rank);
        }
        if (half) (out as Uint16Array)[pos++] = floatToHalf(f);
        else (out as Float32Array)[pos++] = f;
        return;
      }
      case 'int': case 'int64': case 'uint64': {
        if (typeof x !== 'number') {
          if (Array.isArray(x)) return bad('AGENT_ERR_INPUT_SHAPE', 'expected an integer, found an array (too many dimensions)', rank);
          return bad('AGENT_ERR_INPUT_TYPE', `expected an integer for ${c.spec.type}, found ${describe(x)}`, rank);
        }
        if (!Number.isInteger(x)) return bad('AGENT_ERR_INPUT_TYPE', `expected an integer for ${c.spec.type}, found ${x}`, rank);
        if (c.kind === 'int') {
          const [a, b] = c.intRange!;
          if (x < a || x > b) return bad('AGENT_ERR_INPUT_RANGE', `${x} does not fit ${c.spec.type}`, rank);
        } else if (!Number.isSafeInteger(x) || (c.kind === 'uint64' && x < 0)) {
          // Beyond ±2^53 a JSON number has already lost precision in the parser.
          return bad('AGENT_ERR_INPUT_RANGE', `${x} is outside the exactly representable range for ${c.spec.type}`, rank);
        }
        checkLimits(x, feature);
        if (c.kind === 'int') (out as Int32Array)[pos++] = x;
        else (out as BigInt64Array)[pos++] = BigInt(x);
        return;
      }
      case 'bool':
        if (typeof x !== 'boolean') return Array.isArray(x) ? bad('AGENT_ERR_INPUT_SHAPE', 'too many dimensions', rank) : bad('AGENT_ERR_INPUT_TYPE', `expected true or false, found ${describe(x)}`, rank);
        (out as Uint8Array)[pos++] = x ? 1 : 0;
        return;
      case 'string':
        if (typeof x !== 'string') return Array.isArray(x) ? bad('AGENT_ERR_INPUT_SHAPE', 'too many dimensions', rank) : bad('AGENT_ERR_INPUT_TYPE', `expected a string, found ${describe(x)}`, rank);
        (out as string[])[pos++] = x;
    }
  };

  const checkLimits = (x: number, feature: number): void => {
    const lo = limitAt(c.lo, feature);
    const hi = limitAt(c.hi, feature);
    if ((lo !== undefined && x < lo) || (hi !== undefined && x > hi)) {
      const fname = c.spec.features?.[feature];
      bad('AGENT_ERR_INPUT_RANGE', `${x} is outside [${lo ?? '-∞'}, ${hi ?? '∞'}]${fname ? ` for feature ${fname}` : ''}`, rank);
    }
  };

  // Fast path for the common row of plain finite floats within limits: one test per value, no call.
  // Anything else (NaN, a string, out of range, not a number) goes through `leaf`, which refuses or
  // maps it exactly as before, so results and errors do not depend on which path a value took.
  const fastFloat = c.kind === 'float' && !half;
  const f32 = c.spec.type === 'float32';
  const loAll = typeof c.lo === 'number' ? c.lo : -Infinity;
  const hiAll = typeof c.hi === 'number' ? c.hi : Infinity;
  const loEach = Array.isArray(c.lo) ? c.lo : null;
  const hiEach = Array.isArray(c.hi) ? c.hi : null;

  const walk = (v: unknown, depth: number): void => {
    if (!Array.isArray(v) || v.length !== dims[depth]) {
      bad('AGENT_ERR_INPUT_SHAPE', Array.isArray(v) ? `ragged array: length ${v.length}, expected ${dims[depth]}` : `expected an array of length ${dims[depth]}, found ${describe(v)}`, depth);
    }
    const a = v as unknown[];
    if (depth === rank - 1) {
      if (fastFloat) {
        const o = out as Float32Array | Float64Array;
        for (let j = 0; j < last; j++) {
          const x = a[j];
          if (typeof x === 'number' && x - x === 0 && x >= (loEach ? loEach[j] ?? -Infinity : loAll) && x <= (hiEach ? hiEach[j] ?? Infinity : hiAll) && (!f32 || Math.abs(x) <= FLOAT32_MAX)) o[pos++] = x;
          else { index[depth] = j; leaf(x, j); }
        }
        return;
      }
      for (let j = 0; j < last; j++) { index[depth] = j; leaf(a[j], j); }
      return;
    }
    for (let i = 0; i < a.length; i++) { index[depth] = i; walk(a[i], depth + 1); }
  };

  if (rank === 0) leaf(value, 0);
  else walk(value, 0);
  return out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}
