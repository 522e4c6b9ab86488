/**
 * Two more models built in code, for the Open Inference Protocol tests and
 * the predict-v2 benchmark: one that takes and returns many element types
 * (float32, int64, BYTES strings, bool), and a small image classifier over a
 * uint8 NHWC image (the input the binary tensor extension is for).
 */
import { floatTensor, node, rng, valueInfo, type IO } from './onnx-build.js';
import { ModelProto } from './onnx-proto.js';

/** A node with int-list attributes (Transpose perm), which `node` (int attributes only) cannot write. */
function nodeInts(op: string, inputs: string[], outputs: string[], attrs: Record<string, number[]>) {
  return { op_type: op, input: inputs, output: outputs, name: `${op}_${outputs[0]}`, attribute: Object.entries(attrs).map(([name, ints]) => ({ name, ints, type: 7 })) };
}

function encode(name: string, nodes: object[], inits: object[], inputs: IO[], outputs: IO[]): Uint8Array {
  const model = {
    ir_version: 8,
    producer_name: 'fleetcast',
    opset_import: [{ domain: '', version: 13 }],
    graph: { name, node: nodes, initializer: inits, input: inputs.map(valueInfo), output: outputs.map(valueInfo) },
  };
  const err = ModelProto.verify(model);
  if (err) throw new Error(`internal: bad ONNX model: ${err}`);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

/**
 * Inputs x float32 [batch, 4], category int64 [batch, 1], text string [batch], flag bool [batch];
 * outputs y float32 [batch, 2] (an MLP of x and category), label int64 [batch] (argmax of y),
 * echo string [batch] (text unchanged) and negated bool [batch] (not flag).
 */
export function buildMixedIo(seed = 1): Uint8Array {
  const r = rng(seed);
  const w = (n: number) => Array.from({ length: n }, () => r() * 2 - 1);
  return encode('mixed', [
    node('Cast', ['category'], ['category_f'], { to: 1 }),
    node('Concat', ['x', 'category_f'], ['xc'], { axis: 1 }),
    node('MatMul', ['xc', 'W'], ['m']),
    node('Add', ['m', 'b'], ['y']),
    node('ArgMax', ['y'], ['label'], { axis: 1, keepdims: 0 }),
    node('Identity', ['text'], ['echo']),
    node('Not', ['flag'], ['negated']),
  ], [floatTensor('W', [5, 2], w(10)), floatTensor('b', [2], w(2))], [
    { name: 'x', type: 'float32', shape: ['batch', 4] },
    { name: 'category', type: 'int64', shape: ['batch', 1] },
    { name: 'text', type: 'string', shape: ['batch'] },
    { name: 'flag', type: 'bool', shape: ['batch'] },
  ], [
    { name: 'y', type: 'float32', shape: ['batch', 2] },
    { name: 'label', type: 'int64', shape: ['batch'] },
    { name: 'echo', type: 'string', shape: ['batch'] },
    { name: 'negated', type: 'bool', shape: ['batch'] },
  ]);
}

/**
 * image uint8 [batch, size, size, 3] (NHWC, as cameras deliver it) → float, NCHW, one 3×3
 * convolution with `channels` filters, ReLU, global average pool, a linear layer → logits
 * float32 [batch, classes].
 */
export function buildImageConv(o: { size?: number; channels?: number; classes?: number; seed?: number } = {}): Uint8Array {
  const size = o.size ?? 224;
  const ch = o.channels ?? 8;
  const classes = o.classes ?? 10;
  const r = rng(o.seed ?? 1);
  const w = (n: number, scale: number) => Array.from({ length: n }, () => (r() * 2 - 1) * scale);
  return encode('image-conv', [
    node('Cast', ['image'], ['image_f'], { to: 1 }),
    nodeInts('Transpose', ['image_f'], ['nchw'], { perm: [0, 3, 1, 2] }),
    node('Conv', ['nchw', 'K', 'kb'], ['conv']),
    node('Relu', ['conv'], ['act']),
    node('GlobalAveragePool', ['act'], ['pool']),
    node('Flatten', ['pool'], ['flat'], { axis: 1 }),
    node('MatMul', ['flat', 'W'], ['m']),
    node('Add', ['m', 'b'], ['logits']),
  ], [
    floatTensor('K', [ch, 3, 3, 3], w(ch * 27, 1 / 255)), floatTensor('kb', [ch], w(ch, 0.1)),
    floatTensor('W', [ch, classes], w(ch * classes, 1)), floatTensor('b', [classes], w(classes, 0.1)),
  ], [{ name: 'image', type: 'uint8', shape: ['batch', size, size, 3] }], [{ name: 'logits', type: 'float32', shape: ['batch', classes] }]);
}
