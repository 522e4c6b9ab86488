/**
 * Starting the transparency log inside a hub: open its tables, log every root
 * version the hub serves and every bundle it already holds (a data folder from
 * before the log existed is caught up), listen for rollout decisions, and keep
 * the latest root chain and checkpoint retained on MQTT for agents.
 */
import type { Logger } from 'pino';
import type { Envelope } from '@fleetcast/protocol/envelope.js';
import { encode, PROTOCOL_VERSION } from '@fleetcast/protocol/messages.js';
import { topics } from '@fleetcast/protocol/topics.js';
import type { KeyPair } from '@fleetcast/signing/ed25519.js';
import type { TrustedRoot } from '@fleetcast/signing/root.js';
import { onDecision, type DecisionRecord } from '../rollouts/decisions.js';
import type { HubStore } from '../store.js';
import { logManifest } from './hooks.js';
import { loadRootChain } from './root-chain.js';
import { TransparencyLog } from './translog.js';

export interface TranslogService {
  readonly log: TransparencyLog;
  readonly roots: readonly Envelope[];
  /** Publish the root chain and the latest checkpoint (retained), and every later checkpoint as it is signed; again when called again. */
  startPublishing(publish: (topic: string, payload: Buffer) => Promise<void>): Promise<void>;
  /** Stop publishing checkpoints as they are signed (this hub lost the cluster's leadership). */
  stopPublishing(): void;
  /** Log the root chain and the known bundles that are not logged yet (at start, or once elected with deferCatchUp). */
  catchUp(): void;
  close(): void;
}

/** `deferCatchUp`: a hub of a cluster appends only once elected (catchUp() is then a leader duty). */
export function startTranslog(o: { store: HubStore; hubKey: KeyPair; root: TrustedRoot; keysDir: string; now: () => number; logger: Logger; deferCatchUp?: boolean }): TranslogService {
  const db = o.store.db;
  const log = new TransparencyLog(db, { hubKey: o.hubKey, now: o.now, ...(o.store.fence ? { fence: o.store.fence } : {}) });
  const roots = loadRootChain(o.keysDir, o.root);
  const catchUp = () => {
    for (const env of roots) {
      const version = (JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { version: number }).version;
      log.append({ kind: 'root', version, envelope: env }, `v${version}`);
    }
    for (const b of o.store.listBundles()) logManifest(log, b);
  };
  if (!o.deferCatchUp) catchUp();

  // onDecision is process-wide; only decisions committed in this hub's own database are ours.
  const offDecision = onDecision((rec: DecisionRecord, text: string) => {
    let mine = false;
    try { mine = db.open && db.prepare('SELECT 1 FROM rollout_decisions WHERE rollout_id = ? AND seq = ? AND record = ?').get(rec.rolloutId, rec.seq, text) !== undefined; } catch { mine = false; }
    if (!mine) return;
    try { log.append({ kind: 'rollout-decision', record: JSON.parse(text) }, `${rec.rolloutId}#${rec.seq}`); } catch (e) { o.logger.error({ err: e }, 'could not log a rollout decision'); }
  });

  let offCheckpoint: (() => void) | undefined;
  const proofFromPrevious = (size: number) => {
    // Every append signs a checkpoint, so the previous one is at size - 1.
    const prev = size > 1 ? log.checkpoint(size - 1) : undefined;
    if (!prev) return {};
    return { proof: { from: prev.size, hashes: log.consistencyProof(prev.size, size).map((h) => h.toString('base64')) } };
  };
  return {
    log,
    roots,
    async startPublishing(publish) {
      // Each checkpoint carries the proof from the one before it (agents online for that one need no round trip).
      const send = (cp: { note: string; size: number }) => publish(topics.trustCheckpoint(), encode({ v: PROTOCOL_VERSION, checkpoint: cp.note, ...proofFromPrevious(cp.size) }))
        .catch((e: unknown) => o.logger.warn({ err: e }, 'publishing the log checkpoint failed; the next one supersedes it'));
      // Called again after an embedded broker restart (its retained messages are gone): one listener, not two.
      offCheckpoint?.();
      offCheckpoint = log.onCheckpoint((cp) => { void send(cp); });
      await publish(topics.trustRoots(), encode({ v: PROTOCOL_VERSION, roots }));
      const cp = log.latest();
      if (cp) await send(cp);
    },
    stopPublishing() {
      offCheckpoint?.();
      offCheckpoint = undefined;
    },
    catchUp,
    close() {
      offDecision();
      offCheckpoint?.();
    },
  };
}
