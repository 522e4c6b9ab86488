/**
 * The hub's transparency log (DESIGN.md "Trust"): every root version, every
 * accepted bundle manifest and every deployment and rollout decision is a leaf
 * of an append-only RFC 9162 Merkle tree kept in SQLite. Each append is one
 * transaction (leaf, subtree hashes, checkpoint), after which the hub signs a
 * checkpoint (c2sp.org/tlog-checkpoint) with its key; all checkpoints are kept,
 * so any two sizes can be proven consistent and an auditor can replay them.
 */
import type { Fence } from '../cluster/fence.js';
import type { Db } from '../db/db.js';
import { signCheckpoint } from '@fleetcast/signing/checkpoint.js';
import type { KeyPair } from '@fleetcast/signing/ed25519.js';
import { LOG_ORIGIN, logSigner } from '@fleetcast/signing/log-keys.js';
import { leafHash, MerkleTree } from '@fleetcast/signing/merkle.js';
import { hubError } from '../errors.js';
import { isFleetcastError } from '@fleetcast/protocol/errors.js';
import { SqliteHashStore } from './translog-store.js';
import { encodeEntry, type LogEntry } from '@fleetcast/signing/log-entry.js';

export interface LogLeaf { index: number; data: Buffer }
export interface StoredCheckpoint { size: number; note: string; createdAt: number }

export class TransparencyLog {
  private readonly db: Db;
  private tree: MerkleTree;
  private readonly hubKey: KeyPair;
  private readonly now: () => number;
  private readonly listeners = new Set<(cp: StoredCheckpoint) => void>();

  /** A hub of a cluster checks its leadership epoch in each append's transaction (hub/cluster/fence.ts). */
  private readonly fence: Fence | undefined;

  constructor(db: Db, opts: { hubKey: KeyPair; now?: () => number; fence?: Fence }) {
    this.db = db;
    this.fence = opts.fence;
    this.hubKey = opts.hubKey;
    this.now = opts.now ?? Date.now;
    this.tree = this.openTree();
  }

  get size(): number { return this.current().size; }

  /** Called after each new checkpoint (the hub publishes it to agents). */
  onCheckpoint(fn: (cp: StoredCheckpoint) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Append an entry (once per `ref` of a kind, when given); returns its index and the new checkpoint. */
  append(entry: LogEntry, ref?: string): { index: number; checkpoint: StoredCheckpoint; created: boolean } {
    if (ref !== undefined) {
      const known = this.db.prepare('SELECT idx FROM translog_leaves WHERE kind = ? AND ref = ?').pluck().get(entry.kind, ref) as number | undefined;
      if (known !== undefined) return { index: known, checkpoint: this.latest()!, created: false };
    }
    const data = encodeEntry(entry);
    let cp: StoredCheckpoint;
    let index: number;
    try {
      ({ index, cp } = this.db.transaction(() => {
        if (this.fence) {
          this.fence(this.db, 'appending to the transparency log');
          // Another hub may have led, and appended, since this one last did: the tree's size comes from what committed.
          this.tree = this.openTree();
        }
        const at = this.now();
        const i = this.tree.appendData(data);
        this.db.prepare('INSERT INTO translog_leaves (idx, kind, ref, data, created_at) VALUES (?, ?, ?, ?, ?)').run(i, entry.kind, ref ?? null, data, at);
        const note = signCheckpoint({ origin: LOG_ORIGIN, size: i + 1, rootHash: this.tree.root() }, logSigner(this.hubKey));
        this.db.prepare('INSERT INTO translog_checkpoints (size, note, created_at) VALUES (?, ?, ?)').run(i + 1, note, at);
        return { index: i, cp: { size: i + 1, note, createdAt: at } };
      })());
    } catch (e) {
      // The tree's in-memory size may be ahead of the rolled-back rows: reopen from what committed.
      this.tree = this.openTree();
      // Refused by the leadership check: nothing was written, and the caller must hear why (not as a storage fault).
      if (isFleetcastError(e) && e.code === 'HUB_ERR_NOT_LEADER') throw e;
      const err = hubError('HUB_ERR_STORE', `cannot append to the transparency log: ${(e as Error).message}`);
      err.cause = e;
      throw err;
    }
    for (const fn of this.listeners) { try { fn(cp); } catch { /* a listener must not undo an append */ } }
    return { index, checkpoint: cp, created: true };
  }

  latest(): StoredCheckpoint | undefined {
    const r = this.db.prepare('SELECT size, note, created_at AS createdAt FROM translog_checkpoints ORDER BY size DESC LIMIT 1').get() as StoredCheckpoint | undefined;
    return r;
  }

  checkpoint(size: number): StoredCheckpoint | undefined {
    return this.db.prepare('SELECT size, note, created_at AS createdAt FROM translog_checkpoints WHERE size = ?').get(size) as StoredCheckpoint | undefined;
  }

  checkpoints(fromSize = 0, limit = 10_000): StoredCheckpoint[] {
    return this.db.prepare('SELECT size, note, created_at AS createdAt FROM translog_checkpoints WHERE size >= ? ORDER BY size LIMIT ?').all(fromSize, limit) as StoredCheckpoint[];
  }

  leaves(start: number, end: number): LogLeaf[] {
    const rows = this.db.prepare('SELECT idx, data FROM translog_leaves WHERE idx >= ? AND idx < ? ORDER BY idx').all(start, end) as { idx: number; data: Buffer }[];
    return rows.map((r) => ({ index: r.idx, data: r.data }));
  }

  /** Leaves of one kind, in log order (the kind column is written with each leaf). */
  leavesOfKind(kind: LogEntry['kind']): LogLeaf[] {
    const rows = this.db.prepare('SELECT idx, data FROM translog_leaves WHERE kind = ? ORDER BY idx').all(kind) as { idx: number; data: Buffer }[];
    return rows.map((r) => ({ index: r.idx, data: r.data }));
  }

  hasRef(kind: LogEntry['kind'], ref: string): boolean {
    return this.db.prepare('SELECT 1 FROM translog_leaves WHERE kind = ? AND ref = ?').get(kind, ref) !== undefined;
  }

  inclusionProof(index: number, size?: number): { leafHash: Buffer; proof: Buffer[] } {
    const tree = this.current();
    return { leafHash: tree.leafHashAt(index), proof: tree.inclusionProof(index, size ?? tree.size) };
  }

  consistencyProof(size1: number, size2?: number): Buffer[] {
    const tree = this.current();
    return tree.consistencyProof(size1, size2 ?? tree.size);
  }

  root(size?: number): Buffer {
    const tree = this.current();
    return tree.root(size ?? tree.size);
  }

  private openTree(): MerkleTree {
    return new MerkleTree(new SqliteHashStore(this.db), this.committedSize());
  }

  private committedSize(): number {
    return this.db.prepare('SELECT COALESCE(MAX(idx) + 1, 0) FROM translog_leaves').pluck().get() as number;
  }

  /**
   * The tree as committed. A single hub is the log's only writer, so its tree in memory is the log. On a hub of a
   * cluster (a fence) another hub may have appended since this one last did: a follower, or a leader that took over
   * and has not appended yet, would otherwise serve leaves, sizes and proofs of the tree as it last wrote it (the
   * audit export read a checkpoint of 15 leaves and then got 1).
   */
  private current(): MerkleTree {
    if (this.fence && this.committedSize() !== this.tree.size) this.tree = this.openTree();
    return this.tree;
  }

  /** Recompute a leaf hash from stored bytes (the auditor does the same from the export). */
  static leafHashOf(data: Uint8Array): Buffer { return leafHash(data); }
}
