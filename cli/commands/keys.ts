import { initKeys } from '../../signing/keys.js';
import { need, parseCli } from '../args.js';

const USAGE = 'fleetcast keys init --out DIR [--expires-days 365]';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, { out: { type: 'string' }, 'expires-days': { type: 'string' } }, USAGE);
  if (positionals[0] !== 'init') { process.stderr.write(`usage: ${USAGE}\n`); return 2; }
  const out = need(values.out, '--out', USAGE);
  const days = values['expires-days'] ? Number(values['expires-days']) : 365;
  const r = initKeys(out, { expiresInDays: days });
  process.stdout.write(`wrote ${r.rootPath}\n`);
  for (const [role, p] of Object.entries(r.keyPaths)) process.stdout.write(`wrote ${p} (${role} key ${r.keys[role as keyof typeof r.keys].keyid.slice(0, 16)}…, mode 0600)\n`);
  process.stdout.write('Keep root.key and release.key offline; provision root.json on every device.\n');
  return 0;
}
