/**
 * `fleetcast model example --out FILE`: write a small ONNX model (an MLP with a
 * float input `x` [batch, N] and an int64 input `category` [batch, 1], the
 * demo's shape) so the README's "By hand" walk-through has a model to start
 * from without exporting one from a training framework.
 */
import { writeFileSync } from 'node:fs';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { need, parseCli } from '@fleetcast/protocol/cli-args.js';

export const USAGE = 'fleetcast model example --out FILE [--features 8] [--seed 1]   (an example ONNX model: inputs x [batch, features] float32, category [batch, 1] int64)';

function small(v: string | undefined, flag: string, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  if (!/^[0-9]{1,6}$/.test(v) || Number(v) < 1 || Number(v) > max) throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `${flag} must be a whole number from 1 to ${max}, got ${JSON.stringify(v)}\nusage: ${USAGE}`, 2);
  return Number(v);
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, { out: { type: 'string' }, features: { type: 'string' }, seed: { type: 'string' } }, USAGE);
  if (positionals[0] !== 'example' || positionals.length !== 1) { process.stderr.write(`usage: ${USAGE}\n`); return 2; }
  const out = need(values.out, '--out', USAGE);
  const features = small(values.features, '--features', 8, 1024);
  const seed = small(values.seed, '--seed', 1, 999_999);
  writeFileSync(out, buildMlp({ features, categorical: true, hidden: 32, seed }));
  process.stdout.write(`wrote ${out}: inputs x float32 [batch, ${features}], category int64 [batch, 1]; output float32 [batch, 2]\n`);
  return 0;
}
