/**
 * Build small ONNX models in code, for tests, benchmarks and the demo (no model
 * hub is reachable, and none is needed). The main shape is an MLP over a float
 * input and an int64 categorical input, with a dynamic batch dimension.
 */
import { ELEMENT_TYPE_CODES, ModelProto } from './onnx-proto.js';

type Dim = number | string;
export interface IO { name: string; type: string; shape: Dim[] }

export function valueInfo(io: IO) {
  return {
    name: io.name,
    type: { tensor_type: { elem_type: ELEMENT_TYPE_CODES[io.type], shape: { dim: io.shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
  };
}

export function floatTensor(name: string, dims: number[], data: Float32Array | number[]) {
  const f = Float32Array.from(data);
  return { name, dims, data_type: 1, raw_data: Buffer.from(f.buffer, f.byteOffset, f.byteLength) };
}

export function int64Tensor(name: string, dims: number[], data: number[]) {
  const v = BigInt64Array.from(data.map(BigInt));
  return { name, dims, data_type: 7, raw_data: Buffer.from(v.buffer, v.byteOffset, v.byteLength) };
}

/** A node; attributes by JS type: number = INT (2), string = STRING (3), number[] = INTS (7) (onnx.proto AttributeType). */
export function node(op: string, inputs: string[], outputs: string[], attrs: Record<string, number | string | number[]> = {}) {
  return {
    op_type: op, input: inputs, output: outputs, name: `${op}_${outputs[0]}`,
    attribute: Object.entries(attrs).map(([name, v]) => (typeof v === 'number' ? { name, i: v, type: 2 }
      : typeof v === 'string' ? { name, s: Buffer.from(v, 'utf8'), type: 3 } : { name, ints: v, type: 7 })),
  };
}

/** Encode a graph as an ONNX model (default-domain opset `opset`), checked against the schema. */
export function encodeModel(name: string, g: { nodes: unknown[]; inits: unknown[]; inputs: IO[]; outputs: IO[] }, opset = 13): Uint8Array {
  const model = {
    ir_version: 8, producer_name: 'fleetcast', opset_import: [{ domain: '', version: opset }],
    graph: { name, node: g.nodes, initializer: g.inits, input: g.inputs.map(valueInfo), output: g.outputs.map(valueInfo) },
  };
  const err = ModelProto.verify(model);
  if (err) throw new Error(`internal: bad ONNX model: ${err}`);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

/** A deterministic pseudo-random generator (mulberry32), so models are reproducible from a seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface MlpOptions {
  /** Width of the float input `x` ([batch, features]). */
  features?: number;
  /** Add an int64 input `category` ([batch, 1]) that is cast and concatenated. */
  categorical?: boolean;
  hidden?: number;
  outputs?: number;
  seed?: number;
  /** Scale added to every weight; versions of "the same" model differ by seed or bias. */
  bias?: number;
  /** Extra hidden layers to make a larger (or slower) model. */
  extraLayers?: number;
  /** Pad the model with an unused initializer of this many float32 values (for size tests). */
  padFloats?: number;
  /** Multiply the output by NaN (a bad model for gate tests). */
  nanOutput?: boolean;
  /**
   * Output NaN for every row whose `x` holds a negative value, finite otherwise: a bad model that
   * passes the agent's smoke inference (inputs at 0) and golden cases on non-negative inputs, and
   * fails only under live traffic (the prediction-error gate's test).
   */
  nanBelowZero?: boolean;
  opset?: number;
}

/** Encode an MLP: y = W2·relu(W1·[x, float(category)] + b1) + b2, batch dimension "batch". */
export function buildMlp(o: MlpOptions = {}): Uint8Array {
  const features = o.features ?? 4;
  const hidden = o.hidden ?? 16;
  const outs = o.outputs ?? 2;
  const r = rng(o.seed ?? 1);
  const w = (n: number) => Array.from({ length: n }, () => (r() * 2 - 1) * 0.5 + (o.bias ?? 0));
  const inputs: IO[] = [{ name: 'x', type: 'float32', shape: ['batch', features] }];
  const nodes: ReturnType<typeof node>[] = [];
  const inits: ReturnType<typeof floatTensor>[] = [];
  let cur = 'x';
  let width = features;
  if (o.categorical) {
    inputs.push({ name: 'category', type: 'int64', shape: ['batch', 1] });
    nodes.push(node('Cast', ['category'], ['category_f'], { to: 1 }));
    nodes.push(node('Concat', ['x', 'category_f'], ['xc'], { axis: 1 }));
    cur = 'xc';
    width = features + 1;
  }
  const layers = [hidden, ...Array.from({ length: o.extraLayers ?? 0 }, () => hidden)];
  layers.forEach((h, i) => {
    inits.push(floatTensor(`W${i}`, [width, h], w(width * h)), floatTensor(`b${i}`, [h], w(h)));
    nodes.push(node('MatMul', [cur, `W${i}`], [`m${i}`]), node('Add', [`m${i}`, `b${i}`], [`a${i}`]), node('Relu', [`a${i}`], [`h${i}`]));
    cur = `h${i}`;
    width = h;
  });
  inits.push(floatTensor('Wout', [width, outs], w(width * outs)), floatTensor('bout', [outs], w(outs)));
  const poisoned = o.nanOutput || o.nanBelowZero;
  nodes.push(node('MatMul', [cur, 'Wout'], ['mout']), node('Add', ['mout', 'bout'], [poisoned ? 'pre_y' : 'y']));
  if (o.nanBelowZero) {
    // sqrt(x)·0 is 0 for x ≥ 0 and NaN for x < 0; summed per row into every output.
    inits.push(floatTensor('zero', [1], [0]), floatTensor('ones', [features, outs], new Array(features * outs).fill(1)));
    nodes.push(node('Sqrt', ['x'], ['sqrt_x']), node('Mul', ['sqrt_x', 'zero'], ['nan_or_0']), node('MatMul', ['nan_or_0', 'ones'], ['row_nan']), node('Add', ['pre_y', 'row_nan'], ['y']));
  }
  if (o.nanOutput) {
    inits.push(floatTensor('nan', [1], [Number.NaN]));
    nodes.push(node('Mul', ['pre_y', 'nan'], ['y']));
  }
  if (o.padFloats) {
    // Incompressible padding (random floats) so a model of a given size stays that size after zstd.
    const pad = new Float32Array(o.padFloats);
    for (let i = 0; i < pad.length; i++) pad[i] = r();
    inits.push(floatTensor('padding', [o.padFloats], pad));
  }
  return encodeModel('mlp', { nodes, inits, inputs, outputs: [{ name: 'y', type: 'float32', shape: ['batch', outs] }] }, o.opset ?? 13);
}
