/**
 * The four classes of model whose dynamic dimensions (or scalar inputs) need
 * more than the synthetic smoke input gives, each with example inputs it
 * accepts and, where dims alone suffice, the --smoke-dims that fix it.
 */
import { buildFrameByRate, buildReflectPad, buildStreamingVad, buildStridedConv } from '../../bundle-build/onnx-build-edge.js';

export interface EdgeClass {
  name: string;
  model: Uint8Array;
  example: Record<string, unknown>;
  /** Dims that make the synthetic input work, or null where no dims can (a scalar value is the problem). */
  smokeDims: Record<string, number> | null;
}

const ramp = (n: number, f = 0.01) => Array.from({ length: n }, (_, i) => Math.sin(i * f * 37) * 0.5);
const zeros = (a: number, b: number, c: number) => Array.from({ length: a }, () => Array.from({ length: b }, () => new Array<number>(c).fill(0.1)));

export const EDGE_CLASSES: EdgeClass[] = [
  { name: 'reflect padding on a dynamic axis', model: buildReflectPad(), example: { x: [ramp(16)] }, smokeDims: { samples: 16 } },
  {
    name: 'stride-2 convolutions on dynamic height and width', model: buildStridedConv(),
    example: { image: [Array.from({ length: 3 }, (_, c) => Array.from({ length: 9 }, (_, y) => ramp(9, 0.01 * (c + y + 1))))] }, smokeDims: { height: 9, width: 9 },
  },
  { name: 'a scalar int64 sample rate', model: buildFrameByRate(), example: { x: [ramp(320)], sr: 16000 }, smokeDims: null },
  { name: 'a recurrent state [2, batch, 128] beside reflect-padded audio (streaming VAD)', model: buildStreamingVad(), example: { x: [ramp(512)], state: zeros(2, 1, 128), sr: 16000 }, smokeDims: { samples: 512 } },
];
