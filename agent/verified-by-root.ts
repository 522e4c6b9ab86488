/**
 * Results of signature checks remembered by the exact bytes checked and the
 * root object they were checked against: the same bytes under the same root
 * verify the same way, so the check need not run again. Only successes go in
 * (a forgery is checked, and refused, every time); a new root (rotation,
 * revoked keys) is another object and starts empty; each root keeps at most
 * `max` results, the oldest dropped first. Used by the agent for its
 * manifests (verified-manifests.ts) and by the simulator to share checks
 * across its devices (simulator/shared-manifests.ts, shared-checkpoints.ts).
 */
import type { TrustedRoot } from '@fleetcast/signing/root.js';

export class VerifiedByRoot<V> {
  readonly #byRoot = new WeakMap<TrustedRoot, Map<string, V>>();

  constructor(private readonly max: number) {}

  get(root: TrustedRoot, key: string): V | undefined {
    return this.#byRoot.get(root)?.get(key);
  }

  /** Remember what verified: `check` runs when nothing is remembered for this key; a throw is not remembered. */
  through(root: TrustedRoot, key: string, check: () => V): V {
    const hit = this.get(root, key);
    if (hit !== undefined) return hit;
    const v = check();
    this.set(root, key, v);
    return v;
  }

  set(root: TrustedRoot, key: string, v: V): void {
    let known = this.#byRoot.get(root);
    if (!known) { known = new Map(); this.#byRoot.set(root, known); }
    known.delete(key);
    known.set(key, v);
    if (known.size > this.max) known.delete(known.keys().next().value!);
  }
}
