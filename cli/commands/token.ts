/** `fleetcast token create --role ROLE [--label L]`, `token list`, `token revoke ID` (admin token needed). */
import { FleetcastError } from '../../protocol/errors.js';
import { ROLES } from '../../hub/auth/tokens.js';
import { parseCli } from '../args.js';
import { hubUrlFrom, tokenFrom } from '../hub-client.js';
import { table } from './devices.js';

export const USAGE = `fleetcast token create --role admin|operator|auditor [--label TEXT]
       fleetcast token list
       fleetcast token revoke TOKEN_ID
  common: --hub URL (or FLEETCAST_HUB)  admin token: FLEETCAST_TOKEN_FILE or FLEETCAST_TOKEN (never a flag; the first one is <hub data>/admin.token)`;

const bad = (p: string) => new FleetcastError('PROTO_ERR_INVALID_OPTION', `${p}\nusage: ${USAGE}`, 2);

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, { hub: { type: 'string' }, token: { type: 'string' }, role: { type: 'string' }, label: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const [sub, arg] = positionals;
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  if (sub === 'create') {
    if (!values.role || !(ROLES as readonly string[]).includes(values.role)) throw bad(`--role must be one of ${ROLES.join(', ')}`);
    const t = await client.createToken(values.role, values.label);
    // Shown once: the hub keeps only its hash.
    process.stdout.write(values.json ? JSON.stringify(t) + '\n' : `${t.token}\n`);
    if (!values.json) process.stderr.write(`created ${t.role} token ${t.id}; it is shown only now\n`);
    return 0;
  }
  if (sub === 'list') {
    const { tokens } = await client.tokens();
    if (values.json) { process.stdout.write(JSON.stringify(tokens) + '\n'); return 0; }
    process.stdout.write(table(['ID', 'ROLE', 'LABEL', 'CREATED', 'BY', 'REVOKED'], tokens.map((t) => [String(t.id), String(t.role), String(t.label ?? '-'), new Date(Number(t.createdAt)).toISOString(), String(t.createdBy), t.revoked ? 'yes' : 'no'])));
    return 0;
  }
  if (sub === 'revoke') {
    if (!arg) throw bad('revoke needs a TOKEN_ID (see `fleetcast token list`)');
    await client.revokeToken(arg);
    process.stdout.write(`revoked ${arg}\n`);
    return 0;
  }
  throw bad(sub ? `unknown subcommand ${JSON.stringify(sub)}` : 'give a subcommand');
}
