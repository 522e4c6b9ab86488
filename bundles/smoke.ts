/**
 * The smoke check a model must pass before it may serve: on the device (Stage,
 * before the swap) and at `fleetcast bundle build`, from this one module, so a
 * model that no device can install is caught when it is built, not on the
 * fleet. The caller supplies how inputs are run (the device: its predict
 * validator and session; the build: onnxruntime-node over the model bytes) and
 * how a failure is reported (AGENT_ERR_SMOKE_FAILED, BUNDLE_ERR_SMOKE_FAILED).
 *
 * What runs: the manifest's golden cases when it has any (they are inputs the
 * model is known to accept, so they replace the synthetic input); otherwise
 * one synthetic input of zeros (moved inside the released limits) with each
 * dynamic dimension sized by the manifest's `smokeDims`, else 1.
 */
import { halfToFloat } from '@fleetcast/protocol/float16.js';
import type { Manifest, TensorSpec } from '@fleetcast/protocol/manifest.js';

/** What a run returns per output: enough of a tensor to check it (runtime-neutral). */
export interface SmokeTensor { type: string; dims: readonly number[]; data: ArrayLike<unknown> }
export type SmokeRun = (inputs: Record<string, unknown>) => Promise<Record<string, SmokeTensor>>;
export type SmokeManifest = Pick<Manifest, 'inputs' | 'outputs' | 'golden' | 'smokeDims'>;

/** Elements per synthetic input: smokeDims are signed, but sizes multiply, and a device must not run out of memory on them. */
export const MAX_SMOKE_ELEMENTS = 1 << 22;

/** Zeros (moved inside the limits) shaped by the schema; dynamic dims from `dims`, else 1. Throws past MAX_SMOKE_ELEMENTS. */
export function smokeInputs(specs: readonly TensorSpec[], dims: Readonly<Record<string, number>> = {}): Record<string, unknown> {
  const inputs: Record<string, unknown> = {};
  for (const s of specs) {
    const shape = s.shape.map((d) => (typeof d === 'number' ? d : Object.hasOwn(dims, d) ? dims[d] : 1));
    const total = shape.reduce((a, b) => a * b, 1);
    if (total > MAX_SMOKE_ELEMENTS) throw new Error(`the synthetic input ${s.name} would have ${total} elements (shape [${shape.join(', ')}]), more than ${MAX_SMOKE_ELEMENTS}; give smaller smoke dims or an example`);
    const value = (f: number): unknown => {
      if (s.type === 'bool') return false;
      if (s.type === 'string') return '';
      const lo = Array.isArray(s.min) ? s.min[f] : s.min;
      const hi = Array.isArray(s.max) ? s.max[f] : s.max;
      let v = 0;
      if (lo !== undefined && v < lo) v = lo;
      if (hi !== undefined && v > hi) v = hi;
      return s.type.startsWith('float') ? v : Math.ceil(v);
    };
    const build = (d: number): unknown => (d === shape.length - 1
      ? Array.from({ length: shape[d] }, (_, f) => value(f))
      : Array.from({ length: shape[d] }, () => build(d + 1)));
    inputs[s.name] = shape.length === 0 ? value(0) : build(0);
  }
  return inputs;
}

/** An output's values as JS values: float16 bits decoded, bigints as numbers, bools as 0/1. */
export function outputValues(t: SmokeTensor): (number | string)[] {
  const d = t.data;
  const out = new Array<number | string>(d.length);
  const half = t.type === 'float16' && d instanceof Uint16Array;
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    out[i] = typeof v === 'string' ? v : half ? halfToFloat(v as number) : Number(v);
  }
  return out;
}

/** Every manifest output is there, with the manifest's rank and fixed dims, and finite unless allowed. */
function checkOutputs(specs: readonly TensorSpec[], out: Record<string, SmokeTensor>, what: string, fail: (detail: string) => Error): void {
  for (const s of specs) {
    const t = out[s.name];
    if (!t) throw fail(`${what}: output ${s.name} missing`);
    if (t.dims.length !== s.shape.length || s.shape.some((d, i) => typeof d === 'number' && t.dims[i] !== d)) {
      throw fail(`${what}: output ${s.name} has dims [${t.dims.join(', ')}], manifest says [${s.shape.join(', ')}]`);
    }
    if (s.type.startsWith('float') && !s.allowNaN) {
      const v = outputValues(t);
      for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i])) throw fail(`${what}: output ${s.name}[${i}] is ${v[i]}`);
    }
  }
}

/** The cases that run: golden cases, or the one synthetic input. */
export function smokePlan(m: SmokeManifest): { what: string; inputs: Record<string, unknown>; golden?: NonNullable<Manifest['golden']>[number] }[] {
  if (m.golden && m.golden.length > 0) return m.golden.map((g, n) => ({ what: `golden case ${n}`, inputs: g.inputs, golden: g }));
  return [{ what: 'smoke inference', inputs: smokeInputs(m.inputs, m.smokeDims ?? {}) }];
}

/** Run the plan; throws `fail(detail)` at the first problem. */
export async function runSmoke(m: SmokeManifest, run: SmokeRun, defaultTolerance: number, fail: (detail: string) => Error): Promise<void> {
  let plan: ReturnType<typeof smokePlan>;
  try { plan = smokePlan(m); } catch (e) { throw fail(`smoke inference: ${(e as Error).message}`); }
  for (const { what, inputs, golden } of plan) {
    let out: Record<string, SmokeTensor>;
    try {
      out = await run(inputs);
    } catch (e) {
      throw fail(`${what}: ${(e as Error).message}`);
    }
    checkOutputs(m.outputs, out, what, fail);
    if (!golden) continue;
    const tol = golden.tolerance ?? defaultTolerance;
    for (const [name, want] of Object.entries(golden.outputs)) {
      const got = out[name];
      if (!got) throw fail(`${what}: output ${name} missing`);
      if (got.dims.join(',') !== want.dims.join(',')) throw fail(`${what}: ${name} dims [${got.dims.join(', ')}], expected [${want.dims.join(', ')}]`);
      const data = outputValues(got);
      if (data.length !== want.data.length) throw fail(`${what}: ${name} has ${data.length} values, expected ${want.data.length}`);
      for (let i = 0; i < want.data.length; i++) {
        const a = data[i];
        const b = want.data[i];
        // Absolute plus relative tolerance: CPU kernels differ in the last bits across builds. Strings match exactly.
        const ok = typeof a === 'number' && typeof b === 'number' ? Math.abs(a - b) <= tol + tol * Math.abs(b) : a === b;
        if (!ok) throw fail(`${what}: ${name}[${i}] = ${JSON.stringify(a)}, expected ${JSON.stringify(b)}${typeof b === 'number' ? ` ± ${tol}` : ''}`);
      }
    }
  }
}
