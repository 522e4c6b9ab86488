import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { generateKeyPair } from '@fleetcast/signing/ed25519.js';
import { initKeys, readKeyFile, writeKeyFile, ROLES, type Role } from '@fleetcast/signing/keys.js';
import { rotateRootFiles } from '@fleetcast/signing/root-files.js';
import type { RoleChange } from '@fleetcast/signing/root-rotation.js';
import { need, parseCli } from '@fleetcast/protocol/cli-args.js';

export const USAGE = `fleetcast keys init --out DIR [--expires-days 365]
fleetcast keys gen --role root|release|hub --out FILE
fleetcast keys rotate --keys DIR --sign KEY [--sign KEY ...] [--root-key FILE ...] [--root-threshold N]
                      [--add-release FILE] [--revoke-release KEYID] [--release-threshold N]
                      [--add-hub FILE] [--revoke-hub KEYID] [--hub-threshold N] [--expires-days 365]
fleetcast keys add --keys DIR --role R --key-file FILE --sign KEY ...    (a rotation that adds one key)
fleetcast keys revoke --keys DIR --role R --keyid HEX --sign KEY ...     (a rotation that removes one key)
  --sign: old root keys AND new root keys; root N+1 needs a threshold of both.`;

const many = { type: 'string', multiple: true } as const;
const one = { type: 'string' } as const;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCli(argv, {
    out: one, 'expires-days': one, role: one, keys: one, sign: many, 'root-key': many, 'root-threshold': one,
    'add-release': many, 'revoke-release': many, 'release-threshold': one, 'add-hub': many, 'revoke-hub': many, 'hub-threshold': one,
    'key-file': one, keyid: one,
  }, USAGE);
  const days = values['expires-days'] ? Number(values['expires-days']) : 365;
  const cmd = positionals[0];
  if (cmd === 'init') {
    const out = need(values.out, '--out', USAGE);
    const r = initKeys(out, { expiresInDays: days });
    process.stdout.write(`wrote ${r.rootPath}\n`);
    for (const [role, p] of Object.entries(r.keyPaths)) process.stdout.write(`wrote ${p} (${role} key ${r.keys[role as keyof typeof r.keys].keyid.slice(0, 16)}…, mode 0600)\n`);
    process.stdout.write('Keep root.key and release.key offline; provision root.json on every device.\n');
    return 0;
  }
  if (cmd === 'gen') {
    const role = roleOf(need(values.role, '--role', USAGE));
    const out = need(values.out, '--out', USAGE);
    const kp = generateKeyPair();
    writeKeyFile(out, role, kp);
    process.stdout.write(`wrote ${out} (${role} key ${kp.keyid}, mode 0600)\n`);
    return 0;
  }
  if (cmd === 'rotate' || cmd === 'add' || cmd === 'revoke') {
    const keysDir = need(values.keys, '--keys', USAGE);
    const signers = (values.sign ?? []).map((f) => readKeyFile(f));
    if (signers.length === 0) need(undefined, '--sign', USAGE);
    const pub = (f: string) => readKeyFile(f).publicKey;
    const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));
    const roles: Partial<Record<Role, RoleChange>> = {
      root: { ...(values['root-key']?.length ? { add: values['root-key'].map(pub) } : {}), ...(values['root-threshold'] ? { threshold: num(values['root-threshold']) } : {}) },
      release: { add: (values['add-release'] ?? []).map(pub), revoke: values['revoke-release'] ?? [], ...(values['release-threshold'] ? { threshold: num(values['release-threshold']) } : {}) },
      hub: { add: (values['add-hub'] ?? []).map(pub), revoke: values['revoke-hub'] ?? [], ...(values['hub-threshold'] ? { threshold: num(values['hub-threshold']) } : {}) },
    };
    if (cmd === 'add') {
      const role = roleOf(need(values.role, '--role', USAGE));
      roles[role] = { ...roles[role], add: [...(roles[role]?.add ?? []), pub(need(values['key-file'], '--key-file', USAGE))] };
    }
    if (cmd === 'revoke') {
      const role = roleOf(need(values.role, '--role', USAGE));
      roles[role] = { ...roles[role], revoke: [...(roles[role]?.revoke ?? []), need(values.keyid, '--keyid', USAGE)] };
    }
    const r = rotateRootFiles(keysDir, { signers, change: { roles }, expiresInDays: days });
    process.stdout.write(`wrote ${r.path}: root v${r.root.version} (was v${r.previous.version}), cross-signed by ${r.root.envelope.signatures.length} key(s); the old root is kept in ${keysDir}/roots/\n`);
    for (const role of ROLES) process.stdout.write(`  ${role}: ${r.root.payload.roles[role].threshold} of ${r.root.payload.roles[role].keyids.map((k) => k.slice(0, 12)).join(', ')}\n`);
    process.stdout.write('Restart the hub so it serves and logs the new root; agents take it one version at a time.\n');
    return 0;
  }
  process.stderr.write(`usage: ${USAGE}\n`);
  return 2;
}

function roleOf(s: string): Role {
  if (!(ROLES as readonly string[]).includes(s)) throw new FleetcastError('PROTO_ERR_INVALID_OPTION', `--role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(s)}`, 2);
  return s as Role;
}
