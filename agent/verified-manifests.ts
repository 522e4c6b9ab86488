/**
 * The agent's verified manifests, remembered by their exact signed bytes.
 * Swapping back to the model in the previous slot brings the same
 * release-signed manifest again; its signatures were checked and its JSON
 * parsed and schema-checked last time. Parsing and schema-checking it again
 * runs on the event loop that serves predictions, during the swap.
 *
 * Nothing is accepted that a fresh check would refuse: a result is reused only
 * for the same envelope (payload type, payload and every signature, compared
 * as strings) checked against the same root object; a new root (rotation,
 * revoked keys) is another object and verifies again. Only successes are
 * remembered. The assignment around the manifest (its own signature,
 * counter, expiry, device, and its agreement with the manifest) is still
 * checked fresh every time by assignment-check.ts.
 */
import type { VerifiedManifest } from '@fleetcast/bundles/verify.js';
import type { Envelope } from '@fleetcast/protocol/envelope.js';
import type { TrustedRoot } from '@fleetcast/signing/root.js';
import { VerifiedByRoot } from './verified-by-root.js';

export class VerifiedManifests {
  readonly #known: VerifiedByRoot<VerifiedManifest>;

  /** `max` bounds the manifests remembered per root (oldest dropped first); an agent swaps between two. */
  constructor(max = 4) { this.#known = new VerifiedByRoot(max); }

  get(env: Envelope, root: TrustedRoot): VerifiedManifest | undefined {
    const key = keyOf(env);
    return key === null ? undefined : this.#known.get(root, key);
  }

  /** Remember a manifest that verified against `root`. */
  set(env: Envelope, root: TrustedRoot, verified: VerifiedManifest): void {
    const key = keyOf(env);
    if (key !== null) this.#known.set(root, key, verified);
  }
}

/** The envelope's exact strings; null for anything not shaped like an envelope (the full check refuses it). */
function keyOf(env: Envelope): string | null {
  if (!env || typeof env !== 'object' || typeof env.payload !== 'string' || typeof env.payloadType !== 'string' || !Array.isArray(env.signatures)) return null;
  let key = JSON.stringify([env.payloadType, env.payload]);
  for (const s of env.signatures) {
    if (!s || typeof s !== 'object' || typeof s.keyid !== 'string' || typeof s.sig !== 'string') return null;
    key += JSON.stringify([s.keyid, s.sig]);
  }
  return key;
}
