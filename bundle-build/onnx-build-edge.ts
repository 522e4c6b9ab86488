/**
 * Small ONNX models, built in code, that reproduce what real edge models do
 * and the plain MLP does not: dynamic dimensions with a minimum size (so a
 * synthetic input with every dynamic dimension 1 fails, as on real audio,
 * vision and sequence models) and the element types edge models use
 * (float16, uint8 images, bool, string). Each runs in onnxruntime-node.
 */
import { encodeModel, floatTensor, int64Tensor, node, rng, type IO } from './onnx-build.js';

const weights = (n: number, seed: number) => { const r = rng(seed); return Array.from({ length: n }, () => (r() * 2 - 1) * 0.5); };

/** Reflect padding on a dynamic axis (audio front ends): y = Pad(x, 4 each side, mode=reflect), needs samples ≥ 5. */
export function buildReflectPad(): Uint8Array {
  return encodeModel('reflect-pad', {
    nodes: [node('Pad', ['x', 'pads'], ['y'], { mode: 'reflect' })],
    inits: [int64Tensor('pads', [4], [0, 4, 0, 4])],
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 'samples'] }],
    outputs: [{ name: 'y', type: 'float32', shape: ['batch', 'padded'] }],
  });
}

/** Two 3×3 stride-2 convolutions (no padding) on dynamic height and width: needs height, width ≥ 7. */
export function buildStridedConv(): Uint8Array {
  return encodeModel('strided-conv', {
    nodes: [
      node('Conv', ['image', 'W1', 'B1'], ['c1'], { kernel_shape: [3, 3], strides: [2, 2] }),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'W2', 'B2'], ['features'], { kernel_shape: [3, 3], strides: [2, 2] }),
    ],
    inits: [floatTensor('W1', [4, 3, 3, 3], weights(108, 21)), floatTensor('B1', [4], weights(4, 22)), floatTensor('W2', [4, 4, 3, 3], weights(144, 23)), floatTensor('B2', [4], weights(4, 24))],
    inputs: [{ name: 'image', type: 'float32', shape: ['batch', 3, 'height', 'width'] }],
    outputs: [{ name: 'features', type: 'float32', shape: ['batch', 4, 'fh', 'fw'] }],
  });
}

/**
 * A scalar int64 sample rate that sets the frame length (sr / 100 samples,
 * 10 ms frames): frames = Reshape(x, [-1, sr / 100]). A sample rate of 0 (the
 * synthetic input's zero) asks for frames of length 0, which fails.
 */
export function buildFrameByRate(): Uint8Array {
  return encodeModel('frame-by-rate', {
    nodes: [
      node('Div', ['sr', 'hundred'], ['frame']),
      node('Unsqueeze', ['frame', 'axis0'], ['frame1']),
      node('Concat', ['minus1', 'frame1'], ['shape'], { axis: 0 }),
      // allowzero=1 (opset 14): a 0 in the shape means 0, not "copy the input's dimension".
      node('Reshape', ['x', 'shape'], ['frames'], { allowzero: 1 }),
    ],
    inits: [int64Tensor('hundred', [], [100]), int64Tensor('axis0', [1], [0]), int64Tensor('minus1', [1], [-1])],
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 'samples'] }, { name: 'sr', type: 'int64', shape: [] }],
    outputs: [{ name: 'frames', type: 'float32', shape: ['n', 'frame'] }],
  }, 14);
}

/**
 * Shaped like a streaming voice-activity model: audio `x` [batch, samples],
 * a recurrent `state` [2, batch, 128] and a scalar int64 sample rate `sr`;
 * the signal is reflect-padded by 32 (needs samples ≥ 33) before it is
 * reduced; outputs a probability [batch, 1] and the next state.
 */
export function buildStreamingVad(): Uint8Array {
  const io: { inputs: IO[]; outputs: IO[] } = {
    inputs: [{ name: 'x', type: 'float32', shape: ['batch', 'samples'] }, { name: 'state', type: 'float32', shape: [2, 'batch', 128] }, { name: 'sr', type: 'int64', shape: [] }],
    outputs: [{ name: 'prob', type: 'float32', shape: ['batch', 1] }, { name: 'new_state', type: 'float32', shape: [2, 'batch', 128] }],
  };
  return encodeModel('streaming-vad', {
    nodes: [
      node('Pad', ['x', 'pads'], ['padded'], { mode: 'reflect' }),
      node('Mul', ['padded', 'padded'], ['energy']),
      node('ReduceMean', ['energy'], ['power'], { axes: [1], keepdims: 1 }),
      node('Cast', ['sr'], ['srf'], { to: 1 }),
      node('Div', ['srf', 'rate16k'], ['rate']),
      node('Mul', ['power', 'rate'], ['scaled']),
      node('Sigmoid', ['scaled'], ['prob']),
      node('Unsqueeze', ['prob', 'axis0'], ['prob3']),
      node('Mul', ['state', 'decay'], ['kept']),
      node('Add', ['kept', 'prob3'], ['mixed']),
      node('Tanh', ['mixed'], ['new_state']),
    ],
    inits: [int64Tensor('pads', [4], [0, 32, 0, 32]), floatTensor('rate16k', [], [16000]), int64Tensor('axis0', [1], [0]), floatTensor('decay', [], [0.5])],
    ...io,
  });
}

/** A float16 linear layer (computed in float32 between Casts): `h` [batch, 4] -> `h_out` [batch, 2], both float16. */
function halfLinear() {
  return {
    nodes: [
      node('Cast', ['h'], ['h32'], { to: 1 }),
      node('MatMul', ['h32', 'Wh'], ['hm']),
      node('Add', ['hm', 'bh'], ['ha']),
      node('Cast', ['ha'], ['h_out'], { to: 10 }),
    ],
    inits: [floatTensor('Wh', [4, 2], weights(8, 31)), floatTensor('bh', [2], weights(2, 32))],
  };
}

/** Only the float16 layer: an fp16 edge model in its simplest form. */
export function buildHalfLinear(): Uint8Array {
  return encodeModel('half-linear', {
    ...halfLinear(),
    inputs: [{ name: 'h', type: 'float16', shape: ['batch', 4] }],
    outputs: [{ name: 'h_out', type: 'float16', shape: ['batch', 2] }],
  });
}

/**
 * One model over the element types edge models use, each input to its own
 * output, all sharing "batch": float16 features through a float16 linear layer
 * (`h` [batch, 4] -> `h_out` [batch, 2]), a uint8 image (`img` [batch, 4, 4, 3]
 * -> per-channel mean `img_mean` float32 and max `img_max` uint8), bool flags
 * negated (`flag` -> `flag_not`), and strings echoed (`word` -> `word_echo`).
 */
export function buildEdgeTypes(): Uint8Array {
  const half = halfLinear();
  return encodeModel('edge-types', {
    nodes: [
      ...half.nodes,
      node('Cast', ['img'], ['imgf'], { to: 1 }),
      node('ReduceMean', ['imgf'], ['img_mean'], { axes: [1, 2], keepdims: 0 }),
      node('ReduceMax', ['img'], ['img_max'], { axes: [1, 2], keepdims: 0 }),
      node('Not', ['flag'], ['flag_not']),
      node('Identity', ['word'], ['word_echo']),
    ],
    inits: half.inits,
    inputs: [
      { name: 'h', type: 'float16', shape: ['batch', 4] }, { name: 'img', type: 'uint8', shape: ['batch', 4, 4, 3] },
      { name: 'flag', type: 'bool', shape: ['batch', 2] }, { name: 'word', type: 'string', shape: ['batch', 1] },
    ],
    outputs: [
      { name: 'h_out', type: 'float16', shape: ['batch', 2] }, { name: 'img_mean', type: 'float32', shape: ['batch', 3] },
      { name: 'img_max', type: 'uint8', shape: ['batch', 3] }, { name: 'flag_not', type: 'bool', shape: ['batch', 2] },
      { name: 'word_echo', type: 'string', shape: ['batch', 1] },
    ],
  });
}
