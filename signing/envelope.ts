/** Signing and verifying DSSE envelopes against the keys root.json lists for a role. */
import { pae, type Envelope } from '@fleetcast/protocol/envelope.js';
import { signBytes, type KeyPair } from './ed25519.js';
import { signingError } from './errors.js';
import type { TrustedRoot } from './root.js';
import { settleAsync, settleSync, type Verifying } from './verify-steps.js';

export function signEnvelope(payloadType: string, payload: Uint8Array, keys: readonly KeyPair[]): Envelope {
  const msg = pae(payloadType, payload);
  return {
    payloadType,
    payload: Buffer.from(payload).toString('base64'),
    signatures: keys.map((k) => ({ keyid: k.keyid, sig: Buffer.from(signBytes(k.secretKey, msg)).toString('base64') })),
  };
}

export function envelopePayload(env: Envelope): Buffer {
  return Buffer.from(env.payload, 'base64');
}

export interface KeySet { keys: ReadonlyMap<string, Uint8Array>; threshold: number }

/**
 * The envelope check as verification steps (signing/verify-steps.ts).
 * Count valid signatures by distinct trusted key ids (each key counts once, as in
 * TUF 5.3.4); throw unless the threshold is met. Returns the exact payload bytes.
 */
export function* envelopeSteps(env: Envelope, payloadType: string, set: KeySet, what: string): Verifying<Buffer> {
  if (env.payloadType !== payloadType) throw signingError('SIGN_ERR_WRONG_TYPE', `${what}: expected ${payloadType}, got ${env.payloadType}`);
  const payload = envelopePayload(env);
  const msg = pae(payloadType, payload);
  const good = new Set<string>();
  let known = 0;
  for (const s of env.signatures) {
    const pub = set.keys.get(s.keyid);
    if (!pub) continue;
    known++;
    if (good.has(s.keyid)) continue;
    if (yield { publicKey: pub, message: msg, signature: Buffer.from(s.sig, 'base64') }) good.add(s.keyid);
  }
  if (good.size >= set.threshold) return payload;
  if (known === 0) throw signingError('SIGN_ERR_UNKNOWN_KEY', `${what}: no signature from a trusted key`);
  if (good.size === 0) throw signingError('SIGN_ERR_BAD_SIGNATURE', what);
  throw signingError('SIGN_ERR_THRESHOLD', `${what}: ${good.size} of ${set.threshold} required`);
}

export function verifyEnvelopeWith(env: Envelope, payloadType: string, set: KeySet, what: string): Buffer {
  return settleSync(envelopeSteps(env, payloadType, set, what));
}

export function verifyForRole(root: TrustedRoot, role: 'root' | 'release' | 'hub', env: Envelope, payloadType: string, what: string): Buffer {
  return verifyEnvelopeWith(env, payloadType, root.roles[role], what);
}

/** verifyForRole with the signatures checked off the event loop (signing/verify-steps.ts). */
export function verifyForRoleAsync(root: TrustedRoot, role: 'root' | 'release' | 'hub', env: Envelope, payloadType: string, what: string): Promise<Buffer> {
  return settleAsync(envelopeSteps(env, payloadType, root.roles[role], what));
}
