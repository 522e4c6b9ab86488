/**
 * root.json: the trust anchor on every device. It lists the keys of each role
 * (root, release, hub) with a threshold, and has a version and an expiry.
 * The provisioned root must be signed by a threshold of its own root keys.
 */
import { parseEnvelope, PAYLOAD_TYPES, type Envelope } from '@fleetcast/protocol/envelope.js';
import { arr, int, obj, parse, record, str, type Infer } from '@fleetcast/protocol/schema.js';
import { keyIdOf } from './ed25519.js';
import { isSmallOrderKey } from './small-order.js';
import { verifyEnvelopeWith, type KeySet } from './envelope.js';
import { signingError } from './errors.js';

const roleSchema = obj({ keyids: arr(str({ pattern: /^[0-9a-f]{64}$/ }), { min: 1, max: 64 }), threshold: int({ min: 1, max: 64 }) });
export const rootSchema = obj({
  type: str({ enum: ['fleetcast.root/v1'] as const }),
  version: int({ min: 1 }),
  expires: int({ min: 0 }),
  keys: record(obj({ scheme: str({ enum: ['ed25519'] as const }), public: str({ max: 64 }) }), { keyPattern: /^[0-9a-f]{64}$/, maxKeys: 256 }),
  roles: obj({ root: roleSchema, release: roleSchema, hub: roleSchema }),
});
export type RootPayload = Infer<typeof rootSchema>;

export interface RootSpec {
  version: number;
  expires: number;
  roles: Record<'root' | 'release' | 'hub', { keys: Uint8Array[]; threshold: number }>;
}

export function makeRoot(spec: RootSpec): RootPayload {
  const keys: RootPayload['keys'] = {};
  const roles = {} as RootPayload['roles'];
  for (const [role, r] of Object.entries(spec.roles) as [keyof RootSpec['roles'], RootSpec['roles']['root']][]) {
    const ids = r.keys.map((k) => { const id = keyIdOf(k); keys[id] = { scheme: 'ed25519', public: Buffer.from(k).toString('base64') }; return id; });
    roles[role] = { keyids: [...new Set(ids)], threshold: r.threshold };
  }
  return { type: 'fleetcast.root/v1', version: spec.version, expires: spec.expires, keys, roles };
}

export interface TrustedRoot {
  readonly payload: RootPayload;
  readonly envelope: Envelope;
  readonly version: number;
  readonly expires: number;
  readonly roles: Readonly<Record<'root' | 'release' | 'hub', KeySet>>;
}

function keySets(p: RootPayload): TrustedRoot['roles'] {
  const pubs = new Map<string, Uint8Array>();
  for (const [id, k] of Object.entries(p.keys)) {
    const pub = Buffer.from(k.public, 'base64');
    // A key id that is not the hash of its key would let one key count twice.
    if (pub.length !== 32 || keyIdOf(pub) !== id) throw signingError('SIGN_ERR_BAD_ROOT', `key ${id.slice(0, 12)}… does not hash to its id`);
    if (isSmallOrderKey(pub)) throw signingError('SIGN_ERR_BAD_ROOT', `key ${id.slice(0, 12)}… is a small-order Ed25519 point, under which anyone can forge signatures`);
    pubs.set(id, pub);
  }
  const set = (role: keyof RootPayload['roles']): KeySet => {
    const r = p.roles[role];
    const m = new Map<string, Uint8Array>();
    for (const id of r.keyids) {
      const pub = pubs.get(id);
      if (!pub) throw signingError('SIGN_ERR_BAD_ROOT', `role ${role} lists key ${id.slice(0, 12)}… that is not in keys`);
      m.set(id, pub);
    }
    if (r.threshold > m.size) throw signingError('SIGN_ERR_BAD_ROOT', `role ${role} threshold ${r.threshold} exceeds its ${m.size} keys`);
    return { keys: m, threshold: r.threshold };
  };
  return { root: set('root'), release: set('release'), hub: set('hub') };
}

/** Parse and check a root envelope: self-signed by a threshold of its root keys, not expired. */
export function loadRoot(value: unknown, opts: { now?: number; allowExpired?: boolean } = {}): TrustedRoot {
  let env: Envelope;
  let payload: RootPayload;
  try {
    env = parseEnvelope(value);
    if (env.payloadType !== PAYLOAD_TYPES.root) throw new Error(`payload type ${env.payloadType}`);
    payload = parse(rootSchema, JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')), { what: 'root' });
  } catch (e) {
    throw signingError('SIGN_ERR_BAD_ROOT', (e as Error).message);
  }
  const roles = keySets(payload);
  verifyEnvelopeWith(env, PAYLOAD_TYPES.root, roles.root, `root v${payload.version}`);
  const now = opts.now ?? Date.now();
  if (!opts.allowExpired && payload.expires <= now) throw signingError('SIGN_ERR_ROOT_EXPIRED', `root v${payload.version} expired at ${new Date(payload.expires).toISOString()}`);
  return { payload, envelope: env, version: payload.version, expires: payload.expires, roles };
}

export function loadRootText(text: string, opts: { now?: number; allowExpired?: boolean } = {}): TrustedRoot {
  let v: unknown;
  try { v = JSON.parse(text); } catch { throw signingError('SIGN_ERR_BAD_ROOT', 'root.json is not JSON'); }
  return loadRoot(v, opts);
}
