/**
 * Every simulated device assigned a bundle receives the same release-signed
 * manifest, byte for byte, and checks its signatures against the same root:
 * 10,000 agents in one process would verify the same Ed25519 signatures
 * 10,000 times on one CPU, where a fleet does it once per device in parallel
 * (as with hashing, shared-verify.ts). Agents in one process therefore share
 * the verification of identical manifests.
 *
 * Nothing is accepted that a device would refuse: a result is reused only for
 * the same envelope (its exact JSON: payload and every signature) checked
 * against the same root object; a device that took a newer root holds another
 * object and verifies for itself. Only successes are remembered, so a
 * tampered or badly signed manifest is checked, and refused, by every device.
 * The agents then share one parsed manifest, not a copy each.
 */
import type { ManifestVerifier } from '@fleetcast/agent/assignment-check.js';
import { VerifiedByRoot } from '@fleetcast/agent/verified-by-root.js';
import { verifyManifestEnvelope, type VerifiedManifest } from '@fleetcast/bundles/verify.js';

/** `max` bounds the manifests remembered per root (oldest dropped first). */
export function sharedManifestVerify(max = 64): ManifestVerifier {
  const known = new VerifiedByRoot<VerifiedManifest>(max);
  return (envelope, root) => known.through(root, JSON.stringify(envelope), () => verifyManifestEnvelope(envelope, root));
}
