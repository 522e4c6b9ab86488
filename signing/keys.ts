/**
 * Key files: one JSON file per private key, written with mode 0600.
 * The seed is the whole secret; the public key and key id are derived again on
 * load and must match what the file says.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, str, obj, type Infer } from '@fleetcast/protocol/schema.js';
import { generateKeyPair, keyPairFromSeed, type KeyPair } from './ed25519.js';
import { signingError } from './errors.js';
import { makeRoot, type RootSpec } from './root.js';
import { signEnvelope } from './envelope.js';
import { PAYLOAD_TYPES } from '@fleetcast/protocol/envelope.js';

export const ROLES = ['root', 'release', 'hub'] as const;
export type Role = (typeof ROLES)[number];

const keyFileSchema = obj({
  type: str({ enum: ['fleetcast.key/v1'] as const }),
  role: str({ enum: ROLES }),
  scheme: str({ enum: ['ed25519'] as const }),
  keyid: str({ pattern: /^[0-9a-f]{64}$/ }),
  public: str({ max: 64 }),
  seed: str({ max: 64 }),
});
type KeyFile = Infer<typeof keyFileSchema>;

export interface RoleKey extends KeyPair { role: Role }

export function encodeKeyFile(role: Role, kp: KeyPair): string {
  const f: KeyFile = { type: 'fleetcast.key/v1', role, scheme: 'ed25519', keyid: kp.keyid, public: Buffer.from(kp.publicKey).toString('base64'), seed: Buffer.from(kp.seed).toString('base64') };
  return JSON.stringify(f, null, 2) + '\n';
}

export function decodeKeyFile(text: string, where = 'key file'): RoleKey {
  let raw: unknown;
  try { raw = JSON.parse(text); } catch { throw signingError('SIGN_ERR_BAD_KEY_FILE', `${where} is not JSON`); }
  let f: KeyFile;
  try { f = parse(keyFileSchema, raw, { what: where }); } catch (e) { throw signingError('SIGN_ERR_BAD_KEY_FILE', (e as Error).message); }
  const seed = Buffer.from(f.seed, 'base64');
  if (seed.length !== 32) throw signingError('SIGN_ERR_BAD_KEY_FILE', `${where}: seed must be 32 bytes`);
  const kp = keyPairFromSeed(seed);
  if (kp.keyid !== f.keyid || Buffer.from(kp.publicKey).toString('base64') !== f.public) {
    throw signingError('SIGN_ERR_BAD_KEY_FILE', `${where}: public key or key id does not match the seed`);
  }
  return { ...kp, role: f.role };
}

export function readKeyFile(path: string): RoleKey {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw signingError('SIGN_ERR_BAD_KEY_FILE', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`); }
  return decodeKeyFile(text, path);
}

export function writeKeyFile(path: string, role: Role, kp: KeyPair): void {
  writeFileSync(path, encodeKeyFile(role, kp), { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
}

export interface InitKeysResult { rootPath: string; keyPaths: Record<Role, string>; keys: Record<Role, RoleKey> }

/**
 * `fleetcast keys init --out DIR`: one root, one release and one hub key, and a
 * root.json (version 1) listing them, signed by the root key.
 */
export function initKeys(outDir: string, opts: { expiresInDays?: number; now?: number } = {}): InitKeysResult {
  mkdirSync(outDir, { recursive: true });
  const keyPaths = { root: join(outDir, 'root.key'), release: join(outDir, 'release.key'), hub: join(outDir, 'hub.key') };
  const rootPath = join(outDir, 'root.json');
  for (const p of [...Object.values(keyPaths), rootPath]) if (existsSync(p)) throw signingError('SIGN_ERR_KEYS_EXIST', p);
  const keys = Object.fromEntries(ROLES.map((r) => [r, { ...generateKeyPair(), role: r }])) as Record<Role, RoleKey>;
  for (const r of ROLES) writeKeyFile(keyPaths[r], r, keys[r]);
  const now = opts.now ?? Date.now();
  const spec: RootSpec = {
    version: 1,
    expires: now + (opts.expiresInDays ?? 365) * 86_400_000,
    roles: {
      root: { keys: [keys.root.publicKey], threshold: 1 },
      release: { keys: [keys.release.publicKey], threshold: 1 },
      hub: { keys: [keys.hub.publicKey], threshold: 1 },
    },
  };
  const env = signEnvelope(PAYLOAD_TYPES.root, Buffer.from(JSON.stringify(makeRoot(spec))), [keys.root]);
  writeFileSync(rootPath, JSON.stringify(env, null, 2) + '\n', { flag: 'wx' });
  return { rootPath, keyPaths, keys };
}
