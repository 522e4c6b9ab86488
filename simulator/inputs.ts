/**
 * Synthetic predict bodies shaped by a model's input schema: symbolic dims
 * (batch) become 1, float inputs get values in their limits, integer inputs get
 * small non-negative categories. Deterministic per generator seed.
 */
import { rng } from '@fleetcast/bundle-build/onnx-build.js';

export interface InputSpecLite { name: string; type: string; shape: readonly (string | number)[]; min?: number | number[]; max?: number | number[] }

function nested(dims: number[], leaf: (flatIndex: number) => number): unknown {
  let i = 0;
  const build = (d: number): unknown => (d === dims.length ? leaf(i++) : Array.from({ length: dims[d] }, () => build(d + 1)));
  return build(0);
}

export function makeInputGenerator(seed = 1): (inputs: readonly InputSpecLite[], batch?: number) => { inputs: Record<string, unknown> } {
  const r = rng(seed);
  return (inputs, batch = 1) => {
    const out: Record<string, unknown> = {};
    for (const spec of inputs) {
      const dims = spec.shape.map((d) => (typeof d === 'number' ? d : batch));
      const width = dims[dims.length - 1] ?? 1;
      const at = (lim: number | number[] | undefined, i: number) => (Array.isArray(lim) ? lim[i % width] : lim);
      const integer = /int/.test(spec.type);
      out[spec.name] = nested(dims, (i) => {
        const lo = at(spec.min, i) ?? (integer ? 0 : -1);
        const hi = at(spec.max, i) ?? (integer ? 4 : 1);
        return integer ? Math.floor(lo + r() * (hi - lo + 1)) : lo + r() * (hi - lo);
      });
    }
    return { inputs: out };
  };
}
