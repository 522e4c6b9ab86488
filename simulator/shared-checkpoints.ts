/**
 * Every simulated device receives the same signed log checkpoint, byte for
 * byte (retained on the trust topic, one per log entry), and checks its note
 * signature against the same root: 10,000 agents in one process would verify
 * the same Ed25519 signature 10,000 times on one CPU, where a fleet does it
 * once per device in parallel. In the sim-scale bench that was a quarter of the
 * fleet's CPU while the devices took a deploy (2,000 devices, two checkpoints:
 * the bundle's and the deployment's entry). Agents in one process therefore
 * share the verification of identical checkpoints (as manifests,
 * shared-manifests.ts).
 *
 * Nothing is accepted that a device would refuse: a result is reused only for
 * the same note text checked against the same root object (a device that took
 * a newer root holds another object and verifies for itself), and only
 * successes are remembered, so a forged or altered checkpoint is checked, and
 * refused, by every device. What each device does with a verified checkpoint
 * (its consistency with the one it holds, the proof it asks for) stays its own.
 */
import { verifyLogCheckpoint, type CheckpointVerifier } from '@fleetcast/agent/trust.js';
import { VerifiedByRoot } from '@fleetcast/agent/verified-by-root.js';

/** `max` bounds the checkpoints remembered per root (oldest dropped first). */
export function sharedCheckpointVerify(max = 64): CheckpointVerifier {
  const known = new VerifiedByRoot<{ size: number; rootHash: Buffer }>(max);
  return (text, root) => known.through(root, text, () => {
    const v = verifyLogCheckpoint(text, root);
    return { size: v.size, rootHash: v.rootHash };
  });
}
