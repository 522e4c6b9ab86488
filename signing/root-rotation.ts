/**
 * Changing the root of trust (DESIGN.md "Trust"; TUF specification 5.3, "Update
 * the root role"). Root N+1 must be signed by a threshold of the root keys of
 * root N AND by a threshold of its own root keys, so neither a stolen old key
 * set nor a new key set alone can move a fleet. Clients take new roots one
 * version at a time (N → N+1 only), with a cap on how many per update, and
 * check expiry only for the root they end on (TUF 5.3.10): an old root in the
 * chain may have expired long ago, which is exactly why it is being replaced.
 *
 * Adding and revoking keys are rotations too: a new root with the key list
 * changed. Revoking a release or hub key is how a fleet recovers from a key
 * compromise or from a counter pushed far ahead (fast-forward): the new hub key
 * starts a new counter space because agents reset counters on a hub-key change
 * (and from then on refuse assignments signed under an older root).
 */
import { PAYLOAD_TYPES, type Envelope } from '@fleetcast/protocol/envelope.js';
import { isFleetcastError } from '@fleetcast/protocol/errors.js';
import { keyIdOf, type KeyPair } from './ed25519.js';
import { signEnvelope, verifyEnvelopeWith } from './envelope.js';
import { signingError } from './errors.js';
import { loadRoot, type RootPayload, type TrustedRoot } from './root.js';

export type RoleName = 'root' | 'release' | 'hub';

/** Default cap on root versions taken in one update (TUF suggests a bound; 32 is plenty for years of rotations). */
export const MAX_ROOT_STEPS = 32;

export interface RoleChange {
  /** Public keys to add to the role. */
  add?: readonly Uint8Array[];
  /** Key ids to remove from the role. */
  revoke?: readonly string[];
  /** Replace the role's keys entirely (applied before add/revoke). */
  replace?: readonly Uint8Array[];
  threshold?: number;
}

export interface RootChange {
  expires: number;
  roles?: Partial<Record<RoleName, RoleChange>>;
}

/** Root N+1's payload: root N with the given role changes, a new expiry, version + 1. Keys no role uses are dropped. */
export function nextRootPayload(current: RootPayload, change: RootChange): RootPayload {
  const pubs = new Map<string, string>(Object.entries(current.keys).map(([id, k]) => [id, k.public]));
  const roles = {} as RootPayload['roles'];
  for (const role of ['root', 'release', 'hub'] as const) {
    const c = change.roles?.[role] ?? {};
    let ids = c.replace ? c.replace.map((k) => remember(pubs, k)) : [...current.roles[role].keyids];
    for (const k of c.add ?? []) ids.push(remember(pubs, k));
    const revoke = new Set(c.revoke ?? []);
    for (const id of revoke) if (!ids.includes(id)) throw signingError('SIGN_ERR_BAD_ROOT', `cannot revoke ${id.slice(0, 12)}…: it is not a ${role} key of root v${current.version}`);
    ids = [...new Set(ids)].filter((id) => !revoke.has(id));
    const threshold = c.threshold ?? Math.min(current.roles[role].threshold, ids.length);
    if (ids.length === 0) throw signingError('SIGN_ERR_BAD_ROOT', `role ${role} would have no keys left; add a key before revoking the last one`);
    if (threshold < 1 || threshold > ids.length) throw signingError('SIGN_ERR_BAD_ROOT', `role ${role}: threshold ${threshold} with ${ids.length} keys`);
    roles[role] = { keyids: ids, threshold };
  }
  const used = new Set(Object.values(roles).flatMap((r) => r.keyids));
  const keys: RootPayload['keys'] = {};
  for (const id of [...used].sort()) keys[id] = { scheme: 'ed25519', public: pubs.get(id)! };
  if (!Number.isSafeInteger(change.expires) || change.expires <= 0) throw signingError('SIGN_ERR_BAD_ROOT', `expiry ${change.expires} is not a time`);
  return { type: 'fleetcast.root/v1', version: current.version + 1, expires: change.expires, keys, roles };
}

function remember(pubs: Map<string, string>, k: Uint8Array): string {
  if (!(k instanceof Uint8Array) || k.length !== 32) throw signingError('SIGN_ERR_BAD_ROOT', 'an Ed25519 public key is 32 bytes');
  const id = keyIdOf(k);
  pubs.set(id, Buffer.from(k).toString('base64'));
  return id;
}

/**
 * Sign root N+1 with old and new root keys. Throws unless the result is
 * acceptable to a client holding `current` (both thresholds met), so an
 * operator learns about a missing key before any device does.
 */
export function signNextRoot(current: TrustedRoot, next: RootPayload, signers: readonly KeyPair[], now = Date.now()): { envelope: Envelope; root: TrustedRoot } {
  const ids = new Set<string>();
  const uniq = signers.filter((k) => !ids.has(k.keyid) && ids.add(k.keyid));
  const envelope = signEnvelope(PAYLOAD_TYPES.root, Buffer.from(JSON.stringify(next)), uniq);
  const root = verifyNextRoot(current, envelope, { now });
  return { envelope, root };
}

/**
 * One step N → N+1: `next` must be signed by a threshold of `trusted`'s root keys
 * and of its own root keys (TUF 5.3.4–5.3.5), and its version must be exactly
 * trusted.version + 1 (5.3.5, rollback and skip both refused). Expiry is not
 * checked here; see verifyRootChain.
 */
export function verifyNextRoot(trusted: TrustedRoot, next: unknown, opts: { now?: number; checkExpiry?: boolean } = {}): TrustedRoot {
  const candidate = loadRoot(next, { allowExpired: true });
  if (candidate.version !== trusted.version + 1) {
    const code = candidate.version <= trusted.version ? 'SIGN_ERR_ROOT_ROLLBACK' : 'SIGN_ERR_ROOT_VERSION';
    throw signingError(code, `holding root v${trusted.version}, offered v${candidate.version}; only v${trusted.version + 1} is accepted next`);
  }
  try {
    verifyEnvelopeWith(candidate.envelope, PAYLOAD_TYPES.root, trusted.roles.root, `root v${candidate.version} by the root keys of v${trusted.version}`);
  } catch (e) {
    if (isFleetcastError(e)) throw signingError('SIGN_ERR_ROOT_NOT_CROSS_SIGNED', e.message);
    throw e;
  }
  if (opts.checkExpiry && candidate.expires <= (opts.now ?? Date.now())) throw signingError('SIGN_ERR_ROOT_EXPIRED', `root v${candidate.version} expired at ${new Date(candidate.expires).toISOString()}`);
  return candidate;
}

/**
 * Walk a list of root envelopes from `trusted`: versions at or below the trusted
 * one are skipped (already known), the rest must be consecutive, at most
 * `maxSteps` are taken, and the root we end on must not be expired. Returns
 * the new trusted root and the envelopes taken, in order.
 */
export function verifyRootChain(trusted: TrustedRoot, offered: readonly unknown[], opts: { now?: number; maxSteps?: number } = {}): { root: TrustedRoot; taken: Envelope[] } {
  const maxSteps = opts.maxSteps ?? MAX_ROOT_STEPS;
  if (!Array.isArray(offered)) throw signingError('SIGN_ERR_BAD_ROOT', 'the root chain is not a list');
  let root = trusted;
  const taken: Envelope[] = [];
  for (const env of offered) {
    const version = peekVersion(env);
    if (version !== undefined && version <= root.version) continue;
    if (taken.length >= maxSteps) throw signingError('SIGN_ERR_ROOT_CHAIN_TOO_LONG', `more than ${maxSteps} new root versions after v${trusted.version}; update in several steps`);
    root = verifyNextRoot(root, env);
    taken.push(root.envelope);
  }
  const now = opts.now ?? Date.now();
  if (taken.length > 0 && root.expires <= now) throw signingError('SIGN_ERR_ROOT_EXPIRED', `root v${root.version} expired at ${new Date(root.expires).toISOString()}`);
  return { root, taken };
}

/** The version a root envelope claims, unverified, to skip ones already held; undefined when unreadable. */
function peekVersion(env: unknown): number | undefined {
  try {
    const p = (env as { payload?: unknown }).payload;
    if (typeof p !== 'string') return undefined;
    const v = (JSON.parse(Buffer.from(p, 'base64').toString('utf8')) as { version?: unknown }).version;
    return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
  } catch { return undefined; }
}
