/** `fleetcast publish FILE --hub URL`: upload a bundle; the hub verifies it before storing it. */
import { hubUrlFrom, tokenFrom } from '../hub-client.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';

export const USAGE = 'fleetcast publish FILE --hub URL [--json]';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, { hub: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  if (positionals.length !== 1) { process.stderr.write(`usage: ${USAGE}\n`); return 2; }
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  const r = await client.publish(positionals[0]);
  if (values.json) process.stdout.write(JSON.stringify(r) + '\n');
  else process.stdout.write(`${r.created ? 'published' : 'already published'} ${r.name}@${r.version} bundle ${r.bundleId}\n`);
  return 0;
}
