/**
 * What the rest of the hub appends to the transparency log, with the log passed in: ingest.ts logs each
 * accepted manifest, assignments.ts each deployment before it signs a single assignment, and rollout
 * decisions arrive through hub/rollouts' onDecision (translog/service.ts). The log is an explicit
 * dependency of whatever appends to it — a component built without one refuses to be built
 * (`requireLog`), rather than silently recording nothing, as a per-store registry once could.
 */
import type { Envelope } from '@fleetcast/protocol/envelope.js';
import type { BundleRecord } from '../store.js';
import type { TransparencyLog } from './translog.js';

/** The one thing appenders need of the log. */
export type LogAppender = Pick<TransparencyLog, 'append'>;

/** Throws at construction when `log` is missing (a JavaScript caller, or a cast, can pass none). */
export function requireLog(log: LogAppender | undefined, who: string): LogAppender {
  if (!log || typeof log.append !== 'function') {
    throw new Error(`${who} needs the transparency log (options.log): everything it does must be logged, so it will not run without one`);
  }
  return log;
}

/** An accepted bundle: its release-signed manifest envelope, once per bundle id. */
export function logManifest(log: LogAppender, bundle: Pick<BundleRecord, 'id' | 'envelope'>): void {
  log.append({ kind: 'manifest', bundleId: bundle.id, envelope: bundle.envelope as Envelope }, bundle.id);
}

/** A deployment: which bundle the hub is about to assign to which devices, and on whose word. */
export function logDeployment(log: LogAppender, bundle: Pick<BundleRecord, 'id' | 'name' | 'version'>, devices: readonly string[], meta: { rolloutId: string | null; ring: string | null; actor?: string }, at: number): void {
  log.append({ kind: 'deployment', bundleId: bundle.id, name: bundle.name, version: bundle.version, devices: [...devices], rolloutId: meta.rolloutId, ring: meta.ring, actor: meta.actor ?? 'api', at });
}
