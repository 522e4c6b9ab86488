/**
 * Who signs the transparency log's checkpoints: the hub keys root.json lists
 * (DESIGN.md "Trust"). A note key name is derived from the key id, so agents
 * and auditors build their verifier list from root.json alone, and a rotated
 * hub key is trusted for checkpoints exactly when it is trusted for assignments.
 */
import type { NoteSigner, NoteVerifier } from './checkpoint.js';
import type { KeyPair } from './ed25519.js';
import type { TrustedRoot } from './root.js';

/** The origin line of every fleetcast checkpoint (c2sp.org/tlog-checkpoint). */
export const LOG_ORIGIN = 'fleetcast.log/v1';

export function logKeyName(keyid: string): string {
  return `fleetcast-hub-${keyid.slice(0, 16)}`;
}

export function logSigner(hubKey: KeyPair): NoteSigner {
  return { name: logKeyName(hubKey.keyid), keyPair: hubKey };
}

/** Every hub key of the root, as note verifiers (any one suffices: threshold 1, the hub is one online signer). */
export function logVerifiers(root: TrustedRoot): NoteVerifier[] {
  return [...root.roles.hub.keys].map(([id, publicKey]) => ({ name: logKeyName(id), publicKey }));
}
