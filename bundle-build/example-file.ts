/**
 * The `--example FILE` of `fleetcast bundle build`: inputs only. The build runs
 * the model on them (onnxruntime-node) and signs inputs and the computed
 * outputs as golden cases, so an operator never writes expected outputs by
 * hand, and every device then runs exactly these inputs as its smoke check.
 *
 * File: JSON, the predict body of one case, or several:
 *   {"inputs": {"x": [[0.1, 0.2]], "sr": 16000}}
 *   [{"inputs": {...}}, {"inputs": {...}}]
 *   {"tolerance": 1e-3, "cases": [{"inputs": {...}}, ...]}
 * (tolerance: how far a device's outputs may differ, absolute + relative;
 * default: the agent's goldenTolerance).
 */
import type { Manifest, TensorSpec } from '@fleetcast/protocol/manifest.js';
import { arr, json, num, obj, optional, parse, record, union } from '@fleetcast/protocol/schema.js';
import { bundleError } from '@fleetcast/bundles/errors.js';
import { readJsonFile } from '@fleetcast/bundles/file-io.js';
import { outputValues, type SmokeRun } from '@fleetcast/bundles/smoke.js';

export interface ExampleCase { inputs: Record<string, unknown>; tolerance?: number }

const caseSchema = obj({ inputs: record(json(), { maxKeys: 256 }), tolerance: optional(num({ min: 0 })) });
const fileSchema = union(caseSchema, arr(caseSchema, { min: 1, max: 256 }), obj({ tolerance: optional(num({ min: 0 })), cases: arr(caseSchema, { min: 1, max: 256 }) }));

export function parseExampleFile(value: unknown, where = 'example file'): ExampleCase[] {
  let v;
  try {
    v = parse(fileSchema, value, { what: where });
  } catch (e) {
    throw bundleError('BUNDLE_ERR_BAD_EXAMPLE', (e as Error).message);
  }
  if (Array.isArray(v)) return v as ExampleCase[];
  if ('cases' in (v as object)) {
    const { tolerance, cases } = v as { tolerance?: number; cases: ExampleCase[] };
    return cases.map((c) => (c.tolerance === undefined && tolerance !== undefined ? { ...c, tolerance } : c));
  }
  return [v as ExampleCase];
}

export function readExampleFile(path: string): ExampleCase[] {
  return parseExampleFile(readJsonFile(path, 'example file', 'BUNDLE_ERR_BAD_EXAMPLE'), path);
}

/** Run each example and return it as a golden case (every declared output, as JSON values). */
export async function examplesToGolden(examples: readonly ExampleCase[], run: SmokeRun, outputs: readonly TensorSpec[]): Promise<NonNullable<Manifest['golden']>> {
  const golden: NonNullable<Manifest['golden']> = [];
  for (const [n, ex] of examples.entries()) {
    let out;
    try {
      out = await run(ex.inputs);
    } catch (e) {
      const err = e as Error & { code?: string };
      if (err.code === 'BUNDLE_ERR_BAD_EXAMPLE') throw err;
      throw bundleError('BUNDLE_ERR_SMOKE_FAILED', `example case ${n}: the model fails on these inputs: ${err.message}`);
    }
    const expected: Record<string, { dims: number[]; data: (number | string)[] }> = {};
    for (const o of outputs) {
      const t = out[o.name];
      if (t) expected[o.name] = { dims: [...t.dims], data: outputValues(t) };
    }
    golden.push({ inputs: ex.inputs, outputs: expected, ...(ex.tolerance !== undefined ? { tolerance: ex.tolerance } : {}) });
  }
  return golden;
}
