/**
 * The `--golden FILE` of `fleetcast bundle build`: input/output cases (with an
 * optional tolerance) that every device runs on the new session before it may
 * serve (DESIGN "Stage: load a shadow session, run golden cases"). They are
 * signed into the manifest, so a device trusts them as much as the model.
 *
 * File: JSON, either an array of cases or {"tolerance": t, "cases": [...]}
 * (t applies to cases that give none). A case:
 *   {"inputs": {"x": [[1, 2, 3, 4]]}, "outputs": {"y": {"dims": [1, 2], "data": [0.1, 0.2]}}, "tolerance": 1e-4}
 * Names are checked against the model here, so a typo fails the build rather
 * than every device's install.
 */
import { goldenCaseSchema, type Manifest } from '@fleetcast/protocol/manifest.js';
import { arr, num, obj, optional, parse, union } from '@fleetcast/protocol/schema.js';
import { bundleError } from '@fleetcast/bundles/errors.js';
import { readJsonFile } from '@fleetcast/bundles/file-io.js';

export type GoldenCases = NonNullable<Manifest['golden']>;

const fileSchema = union(
  arr(goldenCaseSchema, { min: 1, max: 256 }),
  obj({ tolerance: optional(num({ min: 0 })), cases: arr(goldenCaseSchema, { min: 1, max: 256 }) }),
);

export function parseGoldenFile(value: unknown, where = 'golden file'): GoldenCases {
  let v;
  try {
    v = parse(fileSchema, value, { what: where });
  } catch (e) {
    throw bundleError('BUNDLE_ERR_BAD_GOLDEN', (e as Error).message);
  }
  if (Array.isArray(v)) return v as GoldenCases;
  const { tolerance, cases } = v as { tolerance?: number; cases: GoldenCases };
  return cases.map((c) => (c.tolerance === undefined && tolerance !== undefined ? { ...c, tolerance } : c));
}

export function readGoldenFile(path: string): GoldenCases {
  return parseGoldenFile(readJsonFile(path, 'golden file', 'BUNDLE_ERR_BAD_GOLDEN'), path);
}

/** Every case names only the model's inputs (all of them) and only its outputs. */
export function checkGoldenNames(golden: GoldenCases, inputs: readonly string[], outputs: readonly string[]): void {
  for (const [i, c] of golden.entries()) {
    const names = Object.keys(c.inputs);
    const unknown = names.find((n) => !inputs.includes(n));
    if (unknown !== undefined) throw bundleError('BUNDLE_ERR_BAD_GOLDEN', `case ${i}: input ${JSON.stringify(unknown)} is not a model input (${inputs.join(', ')})`);
    const missing = inputs.find((n) => !names.includes(n));
    if (missing !== undefined) throw bundleError('BUNDLE_ERR_BAD_GOLDEN', `case ${i}: input ${JSON.stringify(missing)} is missing`);
    const out = Object.keys(c.outputs).find((n) => !outputs.includes(n));
    if (out !== undefined) throw bundleError('BUNDLE_ERR_BAD_GOLDEN', `case ${i}: output ${JSON.stringify(out)} is not a model output (${outputs.join(', ')})`);
    if (Object.keys(c.outputs).length === 0) throw bundleError('BUNDLE_ERR_BAD_GOLDEN', `case ${i}: no expected outputs`);
  }
}
