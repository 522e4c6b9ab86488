import { runDemo } from '../demo.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';

export const USAGE = 'fleetcast demo [--agents 50] [--keep]';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseCli(argv, { agents: { type: 'string' }, keep: { type: 'boolean' } }, USAGE);
  const agents = values.agents ? Number(values.agents) : 50;
  if (!Number.isInteger(agents) || agents < 1 || agents > 5000) { process.stderr.write(`--agents must be an integer 1..5000\nusage: ${USAGE}\n`); return 2; }
  const r = await runDemo({ agents, keep: values.keep ?? false });
  const complete = Object.keys(r.versions).length === 1 && r.versions['demo-mlp@2'] === agents;
  if (r.failed > 0 || !complete) {
    process.stderr.write(`demo FAILED: ${r.failed} failed predictions, versions ${JSON.stringify(r.versions)}\n`);
    return 1;
  }
  process.stdout.write('\ndemo ok: every agent runs demo-mlp@2 and no prediction failed\n');
  return 0;
}
