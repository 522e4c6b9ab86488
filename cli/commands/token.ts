/**
 * `fleetcast token create --role ROLE [--label L] [--expires 30d]`, `token list`, `token revoke ID` (admin token
 * needed), and `token labels` (an auditor token: resolves the token ids in decisions and audit lines to labels).
 */
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { ROLES } from '@fleetcast/hub/auth/tokens.js';
import { parseCli } from '@fleetcast/protocol/cli-args.js';
import { hubUrlFrom, tokenFrom } from '../hub-client.js';
import { table } from './devices.js';

export const USAGE = `fleetcast token create --role admin|operator|auditor [--label TEXT] [--expires 30d|12h|ISO-DATE]
       fleetcast token list
       fleetcast token labels               (auditor: token id → role, label, expiry; actors read \`operator:tok-… (label)\`)
       fleetcast token revoke TOKEN_ID
  common: --hub URL (or FLEETCAST_HUB)  admin token: FLEETCAST_TOKEN_FILE or FLEETCAST_TOKEN (never a flag; the first one is <hub data>/admin.token)`;

const bad = (p: string) => new FleetcastError('PROTO_ERR_INVALID_OPTION', `${p}\nusage: ${USAGE}`, 2);

/** --expires: a duration from now (30d, 12h, 90m) or a date (2027-01-31, 2027-01-31T12:00:00Z); epoch ms. */
export function expiryOf(v: string, now: number): number {
  const m = /^([1-9][0-9]{0,5})(m|h|d)$/.exec(v);
  if (m) return now + Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
  const t = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(t)) throw bad(`--expires must be a duration such as 30d, 12h or 90m, or a date such as 2027-01-31, got ${JSON.stringify(v)}`);
  if (t <= now) throw bad(`--expires ${v} is not in the future`);
  return t;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, { hub: { type: 'string' }, token: { type: 'string' }, role: { type: 'string' }, label: { type: 'string' }, expires: { type: 'string' }, json: { type: 'boolean' } }, USAGE);
  const [sub, arg] = positionals;
  const client = hubUrlFrom(values.hub, USAGE, tokenFrom(values.token));
  if (sub === 'create') {
    if (!values.role || !(ROLES as readonly string[]).includes(values.role)) throw bad(`--role must be one of ${ROLES.join(', ')}`);
    const expiresAt = values.expires === undefined ? undefined : expiryOf(values.expires, Date.now());
    const t = await client.createToken(values.role, values.label, expiresAt);
    // Shown once: the hub keeps only its hash.
    process.stdout.write(values.json ? JSON.stringify(t) + '\n' : `${t.token}\n`);
    if (!values.json) process.stderr.write(`created ${t.role} token ${t.id}${t.label ? ` (${t.label})` : ''}${t.expiresAt ? `, expires ${new Date(t.expiresAt).toISOString()}` : ''}; it is shown only now\n`);
    return 0;
  }
  if (sub === 'labels') {
    const { tokens } = await client.get<{ tokens: { id: string; role: string; label: string | null; expiresAt: number | null; revoked: boolean }[] }>('/v1/tokens/directory');
    if (values.json) { process.stdout.write(JSON.stringify(tokens) + '\n'); return 0; }
    process.stdout.write(table(['ID', 'ROLE', 'LABEL', 'EXPIRES', 'REVOKED'], tokens.map((t) => [t.id, t.role, t.label ?? '-', t.expiresAt ? new Date(t.expiresAt).toISOString() : 'never', t.revoked ? 'yes' : 'no'])));
    return 0;
  }
  if (sub === 'list') {
    const { tokens } = await client.tokens();
    if (values.json) { process.stdout.write(JSON.stringify(tokens) + '\n'); return 0; }
    process.stdout.write(table(['ID', 'ROLE', 'LABEL', 'CREATED', 'BY', 'EXPIRES', 'REVOKED'], tokens.map((t) => [String(t.id), String(t.role), String(t.label ?? '-'), new Date(Number(t.createdAt)).toISOString(), String(t.createdBy), t.expiresAt ? new Date(Number(t.expiresAt)).toISOString() : 'never', t.revoked ? 'yes' : 'no'])));
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
