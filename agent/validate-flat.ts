/**
 * Validation of flat tensors, as the Open Inference Protocol sends them: a
 * name, a datatype, a shape, and either a flat row-major JSON `data` array or
 * raw little-endian bytes (binary tensor data extension). The checks and
 * coded errors are those of `/v1/predict` (agent/validate.ts): unknown,
 * missing or repeated inputs, rank and dims against the manifest (fixed sizes,
 * named dynamic dims agreeing across inputs, maxBatch), the element type,
 * NaN/Infinity and the release limits. JSON data is nested by the declared
 * shape and handed to the same compiled validator as a v1 request, so the two
 * APIs cannot drift apart; raw bytes become a typed array without parsing
 * (a view when aligned) and are checked in one pass, where a check applies at
 * all (a uint8 image without limits needs none).
 */
import { endianness } from 'node:os';
import type { ElementType, TensorSpec } from '@fleetcast/protocol/manifest.js';
import { agentError } from './errors.js';
import type { TensorArray, TensorData } from './runtime.js';
import { checkDims, compileValidator, type InputValidator, type ValidatedInputs } from './validate.js';

export interface FlatInput {
  name: string;
  /** Protocol datatype name: "FP32", "INT64", "BYTES", … */
  datatype: string;
  shape: readonly number[];
  /** Flat row-major JSON elements (nested arrays are accepted and flattened up to the rank). */
  data?: unknown;
  /** Raw little-endian element bytes; BYTES elements are 4-byte LE length + bytes. */
  bytes?: Uint8Array;
}

export type FlatValidator = (inputs: readonly FlatInput[]) => ValidatedInputs;

/** Open Inference Protocol tensor datatypes (KServe required_api.md "Tensor Data Types"). */
export const DATATYPE_OF: Readonly<Record<ElementType, string>> = {
  float32: 'FP32', float64: 'FP64', float16: 'FP16', int8: 'INT8', uint8: 'UINT8', int16: 'INT16', uint16: 'UINT16',
  int32: 'INT32', uint32: 'UINT32', int64: 'INT64', uint64: 'UINT64', bool: 'BOOL', string: 'BYTES',
};

type Ctor = { new (n: number): TensorArray; new (b: ArrayBufferLike, at: number, n: number): TensorArray; BYTES_PER_ELEMENT: number };
const ARRAY_OF: Partial<Record<ElementType, Ctor>> = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
  int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
} as unknown as Partial<Record<ElementType, Ctor>>;

// The extension's bytes are little-endian ("Binary Tensor Data Extension": "organized in little-endian byte
// order"); typed arrays use the host's order, so a big-endian host would read them wrong.
const LITTLE_ENDIAN = endianness() === 'LE';

/** Half-precision bits → number (IEEE 754 binary16), for limits on FP16 inputs. */
function halfToNumber(h: number): number {
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  const s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Row-major flat index → nested index, for error details like v1's `{input, index}`. */
function unravel(i: number, dims: readonly number[]): number[] {
  const index = new Array<number>(dims.length);
  for (let d = dims.length - 1; d >= 0; d--) { index[d] = i % dims[d]; i = Math.floor(i / dims[d]); }
  return index;
}

/** A flat array as the nested arrays of `dims` (what the v1 validator walks). */
function nest(flat: readonly unknown[], dims: readonly number[]): unknown {
  if (dims.length === 0) return flat[0];
  let level: unknown[] = flat as unknown[];
  for (let d = dims.length - 1; d >= 1; d--) {
    const k = dims[d];
    const next = new Array<unknown>(level.length / k);
    for (let i = 0; i < next.length; i++) next[i] = level.slice(i * k, (i + 1) * k);
    level = next;
  }
  return level;
}

const limitAt = (l: number[] | number | undefined, f: number): number | undefined => (l === undefined ? undefined : typeof l === 'number' ? l : l[f]);

interface Compiled { spec: TensorSpec; nested: () => InputValidator }

/** The v1 validator of one input, compiled on the first JSON request for it (binary requests never need it). */
function lazyNested(spec: TensorSpec, opts: { maxBatch: number }): () => InputValidator {
  let v: InputValidator | null = null;
  return () => (v ??= compileValidator([spec], opts));
}

export function compileFlatValidator(specs: readonly TensorSpec[], opts: { maxBatch: number }): FlatValidator {
  const byName = new Map<string, Compiled>(specs.map((s) => [s.name, { spec: s, nested: lazyNested(s, opts) }]));
  const names = specs.map((s) => s.name);

  return function validate(inputs: readonly FlatInput[]): ValidatedInputs {
    const symbols = new Map<string, { size: number; input: string }>();
    const feeds: Record<string, TensorData> = {};
    let batch = 1;
    for (const input of inputs) {
      const name = input.name;
      const c = byName.get(name);
      if (!c) throw agentError('AGENT_ERR_UNKNOWN_INPUT', `unknown input ${JSON.stringify(name.slice(0, 100))}; the model takes ${names.join(', ')}`, { input: name.slice(0, 100) });
      if (Object.hasOwn(feeds, name)) throw agentError('AGENT_ERR_BAD_REQUEST', `input ${name} is given twice`, { input: name });
      const { spec } = c;
      const want = DATATYPE_OF[spec.type];
      if (input.datatype !== want) throw agentError('AGENT_ERR_INPUT_TYPE', `input ${name} is ${want} in the model, the request says ${JSON.stringify(String(input.datatype).slice(0, 20))}`, { input: name });
      const dims = input.shape;
      if (dims.length !== spec.shape.length) throw agentError('AGENT_ERR_INPUT_SHAPE', `input ${name} has rank ${dims.length}, the model needs shape [${spec.shape.join(', ')}]`, { input: name });
      const empty = dims.indexOf(0);
      if (empty >= 0) throw agentError('AGENT_ERR_INPUT_SHAPE', `input ${name} has an empty dimension ${empty}`, { input: name, dim: empty });
      checkDims(name, spec.shape, dims, symbols, opts.maxBatch);
      let count = 1;
      for (const d of dims) count *= d;
      // Sizes are checked against what arrived before anything is allocated: a shape alone claims nothing.
      const data = input.bytes !== undefined ? fromBytes(spec, dims, count, input.bytes, name) : fromJson(c, dims, count, input.data, name);
      if (names[0] === name && dims.length > 0) batch = dims[0];
      feeds[name] = { type: spec.type, dims: [...dims], data };
    }
    for (const n of names) if (!Object.hasOwn(feeds, n)) throw agentError('AGENT_ERR_MISSING_INPUT', `input ${n} is missing`, { input: n });
    return { feeds, batch };
  };
}

function fromJson(c: Compiled, dims: readonly number[], count: number, data: unknown, name: string): TensorArray {
  if (!Array.isArray(data)) throw agentError('AGENT_ERR_BAD_REQUEST', `input ${name} needs "data" (a flat array) or binary_data_size`, { input: name });
  // The protocol writes tensors flat, but clients may send them nested (then the first element is an
  // array); a rank-r tensor nests r - 1 levels deep, so flat() goes no further, and an array left
  // among the elements is refused by the element check.
  const flat = Array.isArray(data[0]) ? data.flat(Math.max(0, dims.length - 1)) : data;
  if (flat.length !== count) throw agentError('AGENT_ERR_INPUT_SHAPE', `input ${name} has ${flat.length} elements, shape [${dims.join(', ')}] needs ${count}`, { input: name });
  return c.nested()({ [name]: nest(flat, dims) }).feeds[name].data;
}

function fromBytes(spec: TensorSpec, dims: readonly number[], count: number, bytes: Uint8Array, name: string): TensorArray {
  if (!LITTLE_ENDIAN) throw agentError('AGENT_ERR_INCOMPATIBLE', 'binary tensor data needs a little-endian host; send JSON data');
  if (spec.type === 'string') return stringsFromBytes(bytes, count, name);
  const A = ARRAY_OF[spec.type];
  if (!A) throw agentError('AGENT_ERR_INCOMPATIBLE', `element type ${spec.type}`);
  const size = A.BYTES_PER_ELEMENT;
  if (bytes.byteLength !== count * size) {
    throw agentError('AGENT_ERR_BINARY_LAYOUT', `input ${name} has ${bytes.byteLength} bytes, shape [${dims.join(', ')}] of ${DATATYPE_OF[spec.type]} needs ${count * size}`, { input: name });
  }
  let a: TensorArray;
  if (bytes.byteOffset % size === 0) a = new A(bytes.buffer, bytes.byteOffset, count);
  else {
    // Typed arrays need element-aligned offsets; a misaligned slice of the body is copied once.
    a = new A(count);
    new Uint8Array((a as Uint8Array).buffer).set(bytes);
  }
  checkElements(spec, dims, a, name);
  return a;
}

function checkElements(spec: TensorSpec, dims: readonly number[], a: TensorArray, name: string): void {
  const lo = spec.min;
  const hi = spec.max;
  const limits = lo !== undefined || hi !== undefined;
  const last = dims.length > 0 ? dims[dims.length - 1] : 1;
  const bad = (code: 'AGENT_ERR_INPUT_NAN' | 'AGENT_ERR_INPUT_RANGE' | 'AGENT_ERR_INPUT_TYPE', why: string, i: number): never => {
    const index = unravel(i, dims);
    throw agentError(code, `input ${name}${index.length ? ` at [${index.join(', ')}]` : ''}: ${why}`, { input: name, index });
  };
  const inLimits = (x: number, i: number): void => {
    const l = limitAt(lo, i % last);
    const h = limitAt(hi, i % last);
    if ((l !== undefined && x < l) || (h !== undefined && x > h)) {
      const f = spec.features?.[i % last];
      bad('AGENT_ERR_INPUT_RANGE', `${x} is outside [${l ?? '-∞'}, ${h ?? '∞'}]${f ? ` for feature ${f}` : ''}`, i);
    }
  };
  const t = spec.type;
  if (t === 'bool') {
    // BOOL is one byte, 1 for true and 0 for false: any other byte is not a boolean.
    const b = a as Uint8Array;
    for (let i = 0; i < b.length; i++) if (b[i] > 1) bad('AGENT_ERR_INPUT_TYPE', `byte ${b[i]} is not a BOOL (0 or 1)`, i);
    return;
  }
  const isFloat = t === 'float32' || t === 'float64' || t === 'float16';
  if (!limits && !(isFloat && spec.allowNaN !== true)) return;
  if (t === 'float16') {
    const h = a as Uint16Array;
    for (let i = 0; i < h.length; i++) {
      const x = halfToNumber(h[i]);
      if (!Number.isFinite(x)) { if (spec.allowNaN !== true) bad('AGENT_ERR_INPUT_NAN', `${x} is not allowed`, i); } else if (limits) inLimits(x, i);
    }
    return;
  }
  if (a instanceof BigInt64Array || a instanceof BigUint64Array) {
    for (let i = 0; i < a.length; i++) inLimits(Number(a[i]), i);
    return;
  }
  const n = a as Float32Array;
  for (let i = 0; i < n.length; i++) {
    const x = n[i];
    if (x - x !== 0) { if (spec.allowNaN !== true) bad('AGENT_ERR_INPUT_NAN', `${x} is not allowed`, i); } else if (limits) inLimits(x, i);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** BYTES: each element a 4-byte little-endian length, then that many bytes ("Binary Tensor Data Extension"). */
function stringsFromBytes(bytes: Uint8Array, count: number, name: string): string[] {
  const out: string[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.byteLength) {
    if (at + 4 > bytes.byteLength) throw agentError('AGENT_ERR_BINARY_LAYOUT', `input ${name}: element ${out.length} has a cut-off length prefix`, { input: name });
    const len = view.getUint32(at, true);
    at += 4;
    if (at + len > bytes.byteLength) throw agentError('AGENT_ERR_BINARY_LAYOUT', `input ${name}: element ${out.length} claims ${len} bytes, ${bytes.byteLength - at} remain`, { input: name });
    if (out.length === count) throw agentError('AGENT_ERR_BINARY_LAYOUT', `input ${name} holds more than the ${count} elements of its shape`, { input: name });
    try { out.push(utf8.decode(bytes.subarray(at, at + len))); } catch {
      throw agentError('AGENT_ERR_INPUT_TYPE', `input ${name}: element ${out.length} is not UTF-8 text (the model takes strings)`, { input: name, index: [out.length] });
    }
    at += len;
  }
  if (out.length !== count) throw agentError('AGENT_ERR_BINARY_LAYOUT', `input ${name} holds ${out.length} elements, its shape needs ${count}`, { input: name });
  return out;
}
