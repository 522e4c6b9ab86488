/**
 * What the agent trusts beyond its provisioned root (issue #6):
 *
 * - Root updates: the hub keeps the root chain retained on fc/v1/trust/roots;
 *   the agent takes new versions one at a time (N → N+1, each cross-signed,
 *   signing/root-rotation.ts), at most MAX_ROOT_STEPS per message, persists
 *   each one, and from then on verifies with the newest. When a new root drops
 *   a hub key, the assignment counter is reset: a counter pushed far ahead by a
 *   compromised hub key (fast-forward) is recovered from by rotating that key
 *   away (TUF 5.3.11 deletes trusted timestamp/snapshot metadata likewise).
 *   The reset is bound to the root version it happened at: assignments name
 *   the root they were signed under, and one signed under an older root is
 *   refused (AGENT_ERR_ASSIGNMENT_BEFORE_RESET). Otherwise a recorded message
 *   signed by a hub key that SURVIVED the revocation would be accepted again by
 *   the emptied counter (a rollback by replay). A root epoch rather than a
 *   per-key high-water mark: it also covers messages this device never saw.
 * - The log: the latest checkpoint is retained on fc/v1/trust/checkpoint. The
 *   agent keeps the last one it verified; for a newer one it asks the hub for a
 *   consistency proof (RFC 9162 2.1.4) and takes it only if the proof holds. A
 *   history that does not extend the one it holds (smaller, same size with
 *   another root, or a failed proof) is reported as a security event and the
 *   old checkpoint is kept as evidence.
 *
 * Nothing here throws at its callers: refusals become coded events.
 */
import { join } from 'node:path';
import { errorCode } from '@fleetcast/protocol/errors.js';
import { encode, PROTOCOL_VERSION } from '@fleetcast/protocol/messages.js';
import { topics } from '@fleetcast/protocol/topics.js';
import { decodeCheckpointMessage, decodeProofResponse, decodeRootsMessage } from '@fleetcast/protocol/trust-messages.js';
import { verifyCheckpoint, verifyCheckpointAsync } from '@fleetcast/signing/checkpoint.js';
import { LOG_ORIGIN, logVerifiers } from '@fleetcast/signing/log-keys.js';
import { verifyConsistency } from '@fleetcast/signing/merkle.js';
import { loadRoot, type TrustedRoot } from '@fleetcast/signing/root.js';
import { MAX_ROOT_STEPS, verifyNextRoot, verifyRootChain } from '@fleetcast/signing/root-rotation.js';
import { signingError } from '@fleetcast/signing/errors.js';
import { agentError } from './errors.js';
import { nextTurn } from './next-turn.js';
import { diskStorage } from './disk-storage.js';
import { KeptFolderSlot } from './kept-folder.js';
import type { AgentStorage } from './storage.js';

interface HeldCheckpoint { size: number; rootHash: Buffer; text: string }

/** Verify a log checkpoint's note against the root's hub keys; throws when it does not verify. */
export type CheckpointVerifier = (text: string, root: TrustedRoot) => { size: number; rootHash: Buffer };

/** The device's own check: every hub key of the root, the log's origin. */
export const verifyLogCheckpoint: CheckpointVerifier = (text, root) => verifyCheckpoint(text, logVerifiers(root), { origin: LOG_ORIGIN });

/** The same check with its signatures verified on libuv's threadpool (a checkpoint comes with every deploy). */
const verifyLogCheckpointAsync = (text: string, root: TrustedRoot) => verifyCheckpointAsync(text, logVerifiers(root), { origin: LOG_ORIGIN });

export interface TrustDeps {
  dataDir: string;
  /** Where dataDir is kept (default the disk). */
  storage?: AgentStorage;
  deviceId: string;
  now: () => number;
  publish(topic: string, payload: Buffer): Promise<void>;
  /** A coded refusal to report to the hub (kind "security"). */
  onSecurity(code: string, detail: string): void;
  /** A new root dropped hub keys: reset the assignment counter. */
  onHubKeysRevoked(root: TrustedRoot): Promise<void>;
  onRootUpdated?(root: TrustedRoot): void;
  maxRootSteps?: number;
  /** Replace the checkpoint signature check (default verifyLogCheckpoint; the simulator verifies identical checkpoints once). */
  verifyCheckpoint?: CheckpointVerifier;
}

export class TrustState {
  #root: TrustedRoot;
  #cp: HeldCheckpoint | null;
  #pending: HeldCheckpoint | null = null;
  readonly #d: TrustDeps;
  readonly #dir: string;
  readonly #fs: AgentStorage;
  #queue: Promise<void> = Promise.resolve();
  #closed = false;
  /** trust/ kept open for the folder sync of each checkpoint write (one comes with every deploy). */
  readonly #folder: KeptFolderSlot;

  private constructor(d: TrustDeps, root: TrustedRoot, cp: HeldCheckpoint | null) {
    this.#d = d; this.#root = root; this.#cp = cp; this.#dir = join(d.dataDir, 'trust'); this.#fs = d.storage ?? diskStorage;
    this.#folder = new KeptFolderSlot(this.#fs, this.#dir);
  }

  /** The provisioned root, then every root this device took since, verified again as a chain. */
  static async open(d: TrustDeps, provisioned: TrustedRoot): Promise<TrustState> {
    const dir = join(d.dataDir, 'trust');
    const fs = d.storage ?? diskStorage;
    await fs.makeDir(join(dir, 'roots'));
    let root = provisioned;
    const files = (await fs.list(join(dir, 'roots'))).map((f) => /^root-([0-9]+)\.json$/.exec(f)).filter((m) => m !== null).map((m) => ({ f: m[0], v: Number(m[1]) })).sort((a, b) => a.v - b.v);
    for (const { f, v } of files) {
      if (v <= root.version) continue;
      try { root = verifyNextRoot(root, JSON.parse((await fs.readText(join(dir, 'roots', f))) ?? 'null')); } catch { break; }
    }
    let cp: HeldCheckpoint | null = null;
    try {
      const text = await fs.readText(join(dir, 'checkpoint'));
      if (text === null) throw new Error('no checkpoint held yet');
      const c = (d.verifyCheckpoint ?? verifyLogCheckpoint)(text, root);
      cp = { size: c.size, rootHash: c.rootHash, text };
    } catch { cp = null; }
    return new TrustState(d, root, cp);
  }

  get root(): TrustedRoot { return this.#root; }
  get checkpoint(): { size: number; rootHash: string } | null { return this.#cp ? { size: this.#cp.size, rootHash: this.#cp.rootHash.toString('base64') } : null; }

  /** Messages are handled one at a time, in arrival order. */
  onRoots(bytes: Uint8Array): Promise<void> { return this.#serial(() => this.#roots(bytes)); }
  onCheckpoint(bytes: Uint8Array): Promise<void> { return this.#serial(() => this.#checkpoint(bytes)); }
  onProof(bytes: Uint8Array): Promise<void> { return this.#serial(() => this.#proof(bytes)); }

  /** Stop taking messages and wait for the one in progress: nothing is written into dataDir after this. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#queue;
    await this.#folder.close();
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    if (this.#closed) return Promise.resolve();
    // Each message is handled on a turn of its own, not in the MQTT read that brought it (requests waiting go first).
    this.#queue = this.#queue.then(nextTurn).then(() => (this.#closed ? undefined : fn())).catch((e: unknown) => this.#d.onSecurity(errorCode(e), (e as Error)?.message ?? String(e)));
    return this.#queue;
  }

  async #roots(bytes: Uint8Array): Promise<void> {
    let taken;
    try {
      const msg = decodeRootsMessage(bytes);
      // A chain that ends below the root held is a rollback attempt (or a hub that lost its keys folder): refuse and say so.
      const newest = Math.max(...msg.roots.map((r) => { try { return loadRoot(r, { allowExpired: true }).version; } catch { return 0; } }));
      if (newest < this.#root.version) throw signingError('SIGN_ERR_ROOT_ROLLBACK', `offered roots up to v${newest}; this device holds v${this.#root.version}`);
      taken = verifyRootChain(this.#root, msg.roots, { now: this.#d.now(), maxSteps: this.#d.maxRootSteps ?? MAX_ROOT_STEPS });
    } catch (e) {
      throw agentError('AGENT_ERR_ROOT_UPDATE', (e as Error).message, { cause: errorCode(e) });
    }
    if (taken.taken.length === 0) return;
    const before = new Set(this.#root.roles.hub.keys.keys());
    // Each version is persisted before it is used, so a restart resumes from the newest verified root.
    for (const env of taken.taken) {
      const v = loadRoot(env, { allowExpired: true }).version;
      await this.#fs.writeAtomic(join(this.#dir, 'roots', `root-${v}.json`), JSON.stringify(env));
    }
    this.#root = taken.root;
    if ([...before].some((k) => !taken.root.roles.hub.keys.has(k))) await this.#d.onHubKeysRevoked(taken.root);
    // After the reset, so that what the update triggers (asking for the retained assignment again) sees the new counter state.
    this.#d.onRootUpdated?.(taken.root);
    // Checkpoints are verified with the hub keys of the current root; a held one stays evidence as it is.
  }

  async #checkpoint(bytes: Uint8Array): Promise<void> {
    let c: HeldCheckpoint;
    let attached: { from: number; hashes: string[] } | undefined;
    try {
      const msg = decodeCheckpointMessage(bytes);
      const text = msg.checkpoint;
      attached = msg.proof;
      // Off the event loop: a checkpoint comes with every deploy, while predictions are being served. A
      // verifier seam (the simulator checks identical checkpoints once for its fleet) replaces it.
      const seam = this.#d.verifyCheckpoint;
      const v = seam ? seam(text, this.#root) : await verifyLogCheckpointAsync(text, this.#root);
      c = { size: v.size, rootHash: v.rootHash, text };
    } catch (e) {
      throw agentError('AGENT_ERR_CHECKPOINT_INVALID', (e as Error).message, { cause: errorCode(e) });
    }
    const held = this.#cp;
    if (!held) { await this.#take(c); return; } // trust on first use: nothing to be consistent with yet
    if (c.size === held.size) {
      if (!c.rootHash.equals(held.rootHash)) throw agentError('AGENT_ERR_LOG_INCONSISTENT', `two checkpoints of size ${c.size} with different root hashes`);
      return;
    }
    if (c.size < held.size) throw agentError('AGENT_ERR_LOG_INCONSISTENT', `the log now has ${c.size} entries; this device has seen ${held.size}`);
    this.#pending = c;
    // The proof from the previous checkpoint came along: no round trip when this device holds exactly that one.
    if (attached && attached.from === held.size) {
      await this.#proof(encode({ v: PROTOCOL_VERSION, from: held.size, to: c.size, proof: attached.hashes }));
      return;
    }
    const req = { v: PROTOCOL_VERSION, deviceId: this.#d.deviceId, from: held.size, to: c.size };
    await this.#d.publish(topics.device(this.#d.deviceId, 'proof-req'), encode(req)).catch(() => { /* the next checkpoint asks again */ });
  }

  async #proof(bytes: Uint8Array): Promise<void> {
    const p = decodeProofResponse(bytes);
    const held = this.#cp;
    const pending = this.#pending;
    if (!held || !pending || p.from !== held.size || p.to !== pending.size) return; // an answer to an older question
    this.#pending = null;
    if (p.error) throw agentError('AGENT_ERR_LOG_INCONSISTENT', `the hub cannot prove ${p.from} → ${p.to} (${p.error})`);
    try {
      verifyConsistency(p.from, p.to, p.proof.map((h) => Buffer.from(h, 'base64')), held.rootHash, pending.rootHash);
    } catch (e) {
      throw agentError('AGENT_ERR_LOG_INCONSISTENT', (e as Error).message, { cause: errorCode(e) });
    }
    await this.#take(pending);
  }

  async #take(c: HeldCheckpoint): Promise<void> {
    await this.#fs.writeAtomic(join(this.#dir, 'checkpoint'), c.text, await this.#folder.get());
    this.#cp = c;
  }
}
