/**
 * RFC 9162 (RFC 6962) Merkle tree hashing, proof verification, and an append-only
 * tree that generates proofs from stored complete subtrees.
 *
 * Verifiers take untrusted input (proofs arrive over MQTT and HTTP, auditors read
 * them from files), so every function here checks shapes first and throws a coded
 * FleetcastError instead of crashing. Sizes and indices are JS numbers: safe
 * integers (< 2^53) are plenty for a log of model releases, and bit shifts are
 * written as divisions so they stay exact above 2^31.
 */
// A namespace import, so a Node without crypto.hash still loads this module (see oneShot).
import * as nodeCrypto from 'node:crypto';
import { errorFactory, type ErrorTable } from '@fleetcast/protocol/errors.js';

export const MERKLE_ERRORS = {
  SIGN_ERR_MERKLE_RANGE: { message: 'A Merkle request or proof named a leaf index or tree size outside the tree; use an index below the tree size, sizes no larger than the log, and an old size no larger than the new one', status: 400 },
  SIGN_ERR_MERKLE_HASH: { message: 'A Merkle hash or proof was malformed; send a list of 32-byte SHA-256 hashes (base64 in JSON)', status: 400 },
  SIGN_ERR_MERKLE_INCLUSION: { message: 'An inclusion proof did not lead to the expected tree root; the entry is not in that tree or the proof, index or size is wrong. Fetch a fresh proof for the same tree size', status: 400 },
  SIGN_ERR_MERKLE_CONSISTENCY: { message: 'A consistency proof did not connect the old tree root to the new one; the log may have rewritten its history. Keep both checkpoints as evidence and stop trusting the log until an operator investigates', status: 400 },
  SIGN_ERR_MERKLE_STORE: { message: 'The Merkle hash store lacks a hash the tree needs or was written out of order; the store is incomplete or corrupted. Rebuild it from the log entries', status: 500 },
} as const satisfies ErrorTable;

export const merkleError = errorFactory(MERKLE_ERRORS);

/** A proof never needs more than about 2·log2(2^53) hashes; longer input is refused before any work. */
const MAX_PROOF_LENGTH = 128;

export const HASH_SIZE = 32;
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** MTH({}) = SHA-256() (RFC 9162 2.1.1). */
export const EMPTY_ROOT: Buffer = nodeCrypto.createHash('sha256').digest();

// One-shot crypto.hash (Node >= 20.12) is about 3x faster than a Hash object per
// node once a million hashes are alive (no per-call native handle for the GC);
// a log of a million entries hashes two million times while it is built.
const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;
const scratch = Buffer.alloc(1 + 2 * HASH_SIZE);

/** MTH({d}) = SHA-256(0x00 || d) (RFC 9162 2.1.1): the prefix keeps leaves and nodes apart (second-preimage defence). */
export function leafHash(data: Uint8Array): Buffer {
  if (!(data instanceof Uint8Array)) throw merkleError('SIGN_ERR_MERKLE_HASH', `leaf data must be bytes, got ${typeof data}`);
  if (!oneShot || data.length > 4096) return nodeCrypto.createHash('sha256').update(LEAF_PREFIX).update(data).digest();
  const b = Buffer.allocUnsafe(1 + data.length);
  b[0] = 0x00;
  b.set(data, 1);
  return oneShot('sha256', b, 'buffer');
}

/** SHA-256(0x01 || left || right) (RFC 9162 2.1.1). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (!oneShot || left.length !== HASH_SIZE || right.length !== HASH_SIZE) return nodeCrypto.createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
  // Synchronous, so one shared scratch buffer is safe.
  scratch[0] = 0x01;
  scratch.set(left, 1);
  scratch.set(right, 1 + HASH_SIZE);
  return oneShot('sha256', scratch, 'buffer');
}

function isHash(h: unknown): h is Uint8Array {
  return h instanceof Uint8Array && h.length === HASH_SIZE;
}

function checkHash(h: unknown, what: string): Uint8Array {
  if (!isHash(h)) throw merkleError('SIGN_ERR_MERKLE_HASH', `${what} is ${h instanceof Uint8Array ? `${h.length} bytes` : typeof h}, not ${HASH_SIZE} bytes`);
  return h;
}

function checkProof(proof: unknown): Uint8Array[] {
  // JSON vectors and wire messages use null for "no hashes".
  if (proof === null || proof === undefined) return [];
  if (!Array.isArray(proof)) throw merkleError('SIGN_ERR_MERKLE_HASH', 'the proof is not a list of hashes');
  if (proof.length > MAX_PROOF_LENGTH) throw merkleError('SIGN_ERR_MERKLE_HASH', `the proof has ${proof.length} hashes; no valid proof has more than ${MAX_PROOF_LENGTH}`);
  return proof.map((h, i) => checkHash(h, `proof[${i}]`));
}

function checkCount(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw merkleError('SIGN_ERR_MERKLE_RANGE', `${what} must be a non-negative safe integer, got ${String(n)}`);
  return n;
}

function same(a: unknown, b: Uint8Array): boolean {
  return a instanceof Uint8Array && a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

const half = (x: number): number => Math.floor(x / 2);
const odd = (x: number): boolean => x % 2 === 1;

function isPowerOfTwo(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** The k of RFC 9162 2.1.1: the largest power of two smaller than n (n ≥ 2). */
export function splitPoint(n: number): number {
  let k = n <= 0x1_0000_0000 ? 2 ** (31 - Math.clz32(n - 1)) : 2 ** 32;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH(D[n]) computed from all leaf hashes (RFC 9162 2.1.1): the O(n) definition, also the benchmark baseline. */
export function rootFromLeafHashes(hashes: readonly Uint8Array[]): Buffer {
  if (!Array.isArray(hashes)) throw merkleError('SIGN_ERR_MERKLE_HASH', 'the leaf hashes are not a list');
  hashes.forEach((h, i) => checkHash(h, `leaf hash ${i}`));
  if (hashes.length === 0) return Buffer.from(EMPTY_ROOT);
  const mth = (start: number, end: number): Buffer => {
    if (end - start === 1) return hashes[start] as Buffer;
    const k = splitPoint(end - start);
    return nodeHash(mth(start, start + k), mth(start + k, end));
  };
  return Buffer.from(mth(0, hashes.length)); // a copy: with one leaf, mth returns the caller's own buffer
}

/**
 * The root an inclusion proof leads to (RFC 9162 2.1.3.2 steps 1–5, without the
 * final comparison). Throws SIGN_ERR_MERKLE_INCLUSION when the proof has the
 * wrong length for (index, size): the sn checks of steps 4a and 5.
 */
export function rootFromInclusionProof(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[] | null): Buffer {
  checkCount(index, 'leaf index'); checkCount(size, 'tree size');
  if (index >= size) throw merkleError('SIGN_ERR_MERKLE_RANGE', `leaf index ${index} is not below tree size ${size}`);
  checkHash(leaf, 'leaf hash');
  const path = checkProof(proof);
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leaf);
  for (const p of path) {
    if (sn === 0) throw merkleError('SIGN_ERR_MERKLE_INCLUSION', `the proof has ${path.length} hashes, too many for leaf ${index} of ${size}`);
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      // Skip the levels where this node has no right sibling (the tree's ragged right edge).
      while (!odd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn); sn = half(sn);
  }
  if (sn !== 0) throw merkleError('SIGN_ERR_MERKLE_INCLUSION', `the proof has ${path.length} hashes, too few for leaf ${index} of ${size}`);
  return r;
}

/** RFC 9162 2.1.3.2: check that `leaf` is entry `index` of the tree of `size` leaves with `root`. Returns the computed root. */
export function verifyInclusion(index: number, size: number, leaf: Uint8Array, proof: readonly Uint8Array[] | null, root: Uint8Array): Buffer {
  const r = rootFromInclusionProof(index, size, leaf, proof);
  if (!same(root, r)) throw merkleError('SIGN_ERR_MERKLE_INCLUSION', `leaf ${index} of ${size} leads to root ${r.toString('base64')}, not the expected root`);
  return r;
}

/**
 * The new root a consistency proof leads to from (size1, root1), after checking
 * that the proof also rebuilds root1 (RFC 9162 2.1.4.2 steps 1–7, without the
 * comparison with the second root). Requires 0 < size1 < size2.
 */
export function rootFromConsistencyProof(size1: number, size2: number, proof: readonly Uint8Array[] | null, root1: Uint8Array): Buffer {
  checkCount(size1, 'old tree size'); checkCount(size2, 'new tree size');
  if (size1 >= size2) throw merkleError('SIGN_ERR_MERKLE_RANGE', `old size ${size1} must be below new size ${size2} to derive a new root`);
  // Every tree extends the empty tree, so a proof from size 0 proves nothing;
  // 2.1.4.1 defines proofs for 0 < m < n only. A client with no checkpoint trusts its first one.
  if (size1 === 0) throw merkleError('SIGN_ERR_MERKLE_RANGE', 'a consistency proof from the empty tree proves nothing; verify the new checkpoint on its own');
  checkHash(root1, 'old root');
  const given = checkProof(proof);
  if (given.length === 0) throw merkleError('SIGN_ERR_MERKLE_CONSISTENCY', `an empty proof cannot connect size ${size1} to size ${size2}`); // step 1
  // Step 2: when size1 is a power of two the old root is itself a node of the new tree, and the proof omits it.
  const path = isPowerOfTwo(size1) ? [root1, ...given] : given;
  let fn = size1 - 1; // step 3
  let sn = size2 - 1;
  while (odd(fn)) { fn = half(fn); sn = half(sn); } // step 4
  let fr: Buffer = Buffer.from(path[0]); // step 5
  let sr: Buffer = fr;
  for (const c of path.slice(1)) { // step 6
    if (sn === 0) throw merkleError('SIGN_ERR_MERKLE_CONSISTENCY', `the proof has ${given.length} hashes, too many for ${size1} → ${size2}`);
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) { fn = half(fn); sn = half(sn); }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn); sn = half(sn);
  }
  // Step 7: sn must have reached the root, and the old root must be rebuilt exactly.
  if (sn !== 0) throw merkleError('SIGN_ERR_MERKLE_CONSISTENCY', `the proof has ${given.length} hashes, too few for ${size1} → ${size2}`);
  if (!same(root1, fr)) throw merkleError('SIGN_ERR_MERKLE_CONSISTENCY', `the proof does not rebuild the old root of size ${size1}`);
  return sr;
}

/**
 * RFC 9162 2.1.4.2: check that the tree (size2, root2) extends the tree (size1, root1).
 * Returns root2 as computed. Equal sizes need an empty proof and equal roots
 * (and for size 0 the empty-tree root); size1 = 0 < size2 is refused (see above).
 */
export function verifyConsistency(size1: number, size2: number, proof: readonly Uint8Array[] | null, root1: Uint8Array, root2: Uint8Array): Buffer {
  checkCount(size1, 'old tree size'); checkCount(size2, 'new tree size');
  if (size1 > size2) throw merkleError('SIGN_ERR_MERKLE_RANGE', `old size ${size1} is larger than new size ${size2}: a log never shrinks`);
  if (size1 === size2) {
    if (checkProof(proof).length !== 0) throw merkleError('SIGN_ERR_MERKLE_CONSISTENCY', `sizes are equal (${size1}), so the proof must be empty`);
    // Nothing is hashed: the same tree must simply have the same root. Only for
    // size 0 do we know which root that is (MTH({}), 2.1.1).
    if (!(root1 instanceof Uint8Array) || !same(root2, Buffer.from(root1))) throw merkleError('SIGN_ERR_MERKLE_CONSISTENCY', `sizes are equal (${size1}) but the roots differ`);
    if (size1 === 0 && !same(root1, EMPTY_ROOT)) throw merkleError('SIGN_ERR_MERKLE_CONSISTENCY', 'a tree of size 0 must have the empty-tree root SHA-256("")');
    return Buffer.from(root1);
  }
  const r = rootFromConsistencyProof(size1, size2, proof, root1);
  if (!same(root2, r)) throw merkleError('SIGN_ERR_MERKLE_CONSISTENCY', `the proof leads to new root ${r.toString('base64')}, not the expected root of size ${size2}`);
  return r;
}

/**
 * Where a MerkleTree keeps hashes: (level, index) holds the hash of leaves
 * [index·2^level, (index+1)·2^level), i.e. level 0 = leaf hashes. Only complete,
 * aligned subtrees are stored; they never change once written, so a store can
 * be a SQLite table keyed by (level, index).
 */
export interface HashStore {
  get(level: number, index: number): Buffer | undefined;
  put(level: number, index: number, hash: Buffer): void;
}

const CHUNK = 4096; // hashes per chunk: 128 KiB, so a million leaves is ~500 allocations, not 2 million Buffers

/** In-memory HashStore: per level, fixed-size chunks of packed 32-byte hashes, written in index order. */
export class MemoryHashStore implements HashStore {
  private readonly levels: { chunks: Buffer[]; length: number }[] = [];

  get(level: number, index: number): Buffer | undefined {
    const l = this.levels[level];
    if (!l || !Number.isInteger(index) || index < 0 || index >= l.length) return undefined;
    const off = (index % CHUNK) * HASH_SIZE;
    // A copy, so a caller that edits a proof cannot corrupt the tree.
    return Buffer.from(l.chunks[Math.floor(index / CHUNK)].subarray(off, off + HASH_SIZE));
  }

  put(level: number, index: number, hash: Buffer): void {
    checkHash(hash, 'stored hash');
    while (this.levels.length <= level) this.levels.push({ chunks: [], length: 0 });
    const l = this.levels[level];
    if (!Number.isInteger(index) || index < 0 || index > l.length) throw merkleError('SIGN_ERR_MERKLE_STORE', `level ${level} holds ${l.length} hashes; cannot write index ${index}`);
    const c = Math.floor(index / CHUNK);
    if (c === l.chunks.length) l.chunks.push(Buffer.alloc(CHUNK * HASH_SIZE));
    l.chunks[c].set(hash, (index % CHUNK) * HASH_SIZE);
    if (index === l.length) l.length++;
  }
}

/**
 * An append-only Merkle tree that answers root, inclusion and consistency
 * queries for any size up to its current one. Appends store each newly completed
 * aligned subtree (amortised O(1) hashes); a proof is O(log n) store lookups plus
 * at most one ragged right-edge node, rebuilt in O(log n) hashes.
 */
export class MerkleTree {
  private count: number;

  /** `size` resumes a tree whose store already holds that many leaves. */
  constructor(readonly store: HashStore = new MemoryHashStore(), size = 0) {
    this.count = checkCount(size, 'tree size');
    if (size > 0 && !store.get(0, size - 1)) throw merkleError('SIGN_ERR_MERKLE_STORE', `the store has no leaf ${size - 1}, so it does not hold a tree of size ${size}`);
  }

  get size(): number {
    return this.count;
  }

  /** Append a leaf hash (see leafHash); returns the new leaf's index. */
  append(leaf: Uint8Array): number {
    const h0 = Buffer.from(checkHash(leaf, 'leaf hash'));
    const index = this.count;
    this.store.put(0, index, h0);
    // Each time the index is odd, a left sibling exists and their parent just became complete.
    let h: Buffer = h0; let i = index; let level = 0;
    while (odd(i)) {
      h = nodeHash(this.need(level, i - 1), h);
      i = (i - 1) / 2; level++;
      this.store.put(level, i, h);
    }
    this.count = index + 1;
    return index;
  }

  /** Append the entry's data, hashed as a leaf. */
  appendData(data: Uint8Array): number {
    return this.append(leafHash(data));
  }

  leafHashAt(index: number): Buffer {
    this.checkIndex(index, this.count);
    return this.need(0, index);
  }

  /** MTH(D[0:size]) (RFC 9162 2.1.1). */
  root(size = this.count): Buffer {
    this.checkSize(size, 'tree size');
    return size === 0 ? Buffer.from(EMPTY_ROOT) : this.hashRange(0, size);
  }

  /** PATH(index, D[0:size]) (RFC 9162 2.1.3.1), ordered leaf to root as verifiers expect. */
  inclusionProof(index: number, size = this.count): Buffer[] {
    this.checkSize(size, 'tree size');
    this.checkIndex(index, size);
    const topDown: Buffer[] = [];
    let start = 0; let end = size;
    while (end - start > 1) {
      const k = splitPoint(end - start);
      if (index < start + k) { topDown.push(this.hashRange(start + k, end)); end = start + k; } else { topDown.push(this.hashRange(start, start + k)); start += k; }
    }
    return topDown.reverse();
  }

  /** PROOF(size1, D[0:size2]) = SUBPROOF(size1, D[0:size2], true) (RFC 9162 2.1.4.1); empty for equal sizes. */
  consistencyProof(size1: number, size2 = this.count): Buffer[] {
    this.checkSize(size2, 'new tree size');
    checkCount(size1, 'old tree size');
    if (size1 > size2) throw merkleError('SIGN_ERR_MERKLE_RANGE', `old size ${size1} is larger than new size ${size2}`);
    if (size1 === size2) return [];
    if (size1 === 0) throw merkleError('SIGN_ERR_MERKLE_RANGE', 'a consistency proof from the empty tree proves nothing; send the new checkpoint on its own');
    const topDown: Buffer[] = [];
    let start = 0; let end = size2; let whole = true; // `whole` is SUBPROOF's b flag
    while (size1 !== end) {
      const k = splitPoint(end - start);
      if (size1 - start <= k) { topDown.push(this.hashRange(start + k, end)); end = start + k; } else { topDown.push(this.hashRange(start, start + k)); start += k; whole = false; }
    }
    // SUBPROOF(m, D[m], b): the old tree's own subtree is named unless it is the whole old tree.
    if (!whole) topDown.push(this.hashRange(start, end));
    return topDown.reverse();
  }

  /**
   * MTH(D[start:end]) where start is aligned to the subtree the RFC splits off
   * (true for every range a proof names): a complete aligned block is one lookup,
   * a ragged right edge is split at k and rebuilt.
   */
  private hashRange(start: number, end: number): Buffer {
    const len = end - start;
    if (isPowerOfTwo(len) && start % len === 0) return this.need(Math.round(Math.log2(len)), start / len);
    const k = splitPoint(len);
    return nodeHash(this.hashRange(start, start + k), this.hashRange(start + k, end));
  }

  private need(level: number, index: number): Buffer {
    const h = this.store.get(level, index);
    if (!h || h.length !== HASH_SIZE) throw merkleError('SIGN_ERR_MERKLE_STORE', `no ${HASH_SIZE}-byte hash at level ${level}, index ${index}`);
    return h;
  }

  private checkSize(size: number, what: string): void {
    checkCount(size, what);
    if (size > this.count) throw merkleError('SIGN_ERR_MERKLE_RANGE', `${what} ${size} is larger than the log (${this.count} leaves)`);
  }

  private checkIndex(index: number, size: number): void {
    checkCount(index, 'leaf index');
    if (index >= size) throw merkleError('SIGN_ERR_MERKLE_RANGE', `leaf index ${index} is not below tree size ${size}`);
  }
}
