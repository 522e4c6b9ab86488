/** `fleetcast deploy NAME@VERSION --hub URL (--all | --devices ID,...)`: sign and send assignments. */
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { hubUrlFrom, tokenFrom } from '../hub-client.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';

export const USAGE = 'fleetcast deploy NAME@VERSION --hub URL (--all | --devices ID,... [--allow-unknown]) [--json]\n  --allow-unknown: also assign to ids the hub has never seen (not reported, not enrolled); without it they are refused (HUB_ERR_UNKNOWN_DEVICE)';

function bad(problem: string): FleetcastError {
  return new FleetcastError('PROTO_ERR_INVALID_OPTION', `${problem}\nusage: ${USAGE}`, 2);
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, { hub: { type: 'string' }, token: { type: 'string' }, all: { type: 'boolean' }, devices: { type: 'string' }, json: { type: 'boolean' }, 'allow-unknown': { type: 'boolean' } }, USAGE);
  if (positionals.length !== 1) throw bad('give exactly one NAME@VERSION');
  const m = /^([a-z0-9][a-z0-9._-]{0,63})@([1-9][0-9]{0,15})$/.exec(positionals[0]);
  if (!m) throw bad(`${JSON.stringify(positionals[0])} is not NAME@VERSION (e.g. churn@3)`);
  if (Boolean(values.all) === (values.devices !== undefined)) throw bad('give exactly one of --all or --devices');
  const devices = values.devices?.split(',').map((d) => d.trim()).filter((d) => d.length > 0);
  if (devices && devices.length === 0) throw bad('--devices needs at least one id');
  if (values['allow-unknown'] && values.all) throw bad('--allow-unknown goes with --devices (--all targets known devices only)');
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  const r = await client.deploy({ name: m[1], version: Number(m[2]), ...(values.all ? { all: true as const } : { devices }), ...(values['allow-unknown'] ? { allowUnknown: true } : {}) });
  if (values.json) { process.stdout.write(JSON.stringify(r) + '\n'); return 0; }
  process.stdout.write(`assigned ${m[1]}@${m[2]} (bundle ${r.bundleId.slice(0, 16)}…) to ${r.devices.length} device(s)\n`);
  for (const d of r.devices) process.stdout.write(`  ${d}  counter ${r.counters[d]}\n`);
  return 0;
}
