/**
 * Where the rest of the hub reaches the transparency log without new
 * constructor parameters: one log per HubStore (several hubs may share a test
 * process). ingest.ts logs each accepted manifest, assignments.ts each
 * deployment before it signs a single assignment, and rollout decisions
 * arrive through hub/rollouts' onDecision.
 */
import type { Envelope } from '@fleetcast/protocol/envelope.js';
import type { BundleRecord, HubStore } from '../store.js';
import type { TransparencyLog } from './translog.js';

const logs = new WeakMap<HubStore, TransparencyLog>();

export function attachLog(store: HubStore, log: TransparencyLog): void { logs.set(store, log); }
export function detachLog(store: HubStore): void { logs.delete(store); }
export function logFor(store: HubStore): TransparencyLog | undefined { return logs.get(store); }

/** An accepted bundle: its release-signed manifest envelope, once per bundle id. */
export function logManifest(store: HubStore, bundle: Pick<BundleRecord, 'id' | 'envelope'>): void {
  logs.get(store)?.append({ kind: 'manifest', bundleId: bundle.id, envelope: bundle.envelope as Envelope }, bundle.id);
}

/** A deployment: which bundle the hub is about to assign to which devices, and on whose word. */
export function logDeployment(store: HubStore, bundle: Pick<BundleRecord, 'id' | 'name' | 'version'>, devices: readonly string[], meta: { rolloutId: string | null; ring: string | null; actor?: string }, at: number): void {
  logs.get(store)?.append({ kind: 'deployment', bundleId: bundle.id, name: bundle.name, version: bundle.version, devices: [...devices], rolloutId: meta.rolloutId, ring: meta.ring, actor: meta.actor ?? 'api', at });
}
