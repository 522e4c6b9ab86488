/**
 * MerkleTree against the recursive definitions of RFC 9162 2.1.1 (MTH),
 * 2.1.3.1 (PATH) and 2.1.4.1 (SUBPROOF), written out naively here as the oracle,
 * and its proofs against the verifiers.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_ROOT, MemoryHashStore, MerkleTree, leafHash, nodeHash, rootFromLeafHashes, verifyConsistency, verifyInclusion, type HashStore,
} from '../../signing/merkle.js';
import { prng as rng } from '../helpers/random.js';

const leaves = (n: number, salt = ''): Buffer[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`entry ${salt}${i}`)));

function k(n: number): number {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
}

function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return createHash('sha256').digest();
  if (d.length === 1) return d[0];
  return nodeHash(mth(d.slice(0, k(d.length))), mth(d.slice(k(d.length))));
}

function path(m: number, d: Buffer[]): Buffer[] {
  if (d.length === 1) return [];
  const s = k(d.length);
  return m < s ? [...path(m, d.slice(0, s)), mth(d.slice(s))] : [...path(m - s, d.slice(s)), mth(d.slice(0, s))];
}

function subproof(m: number, d: Buffer[], b: boolean): Buffer[] {
  if (m === d.length) return b ? [] : [mth(d)];
  const s = k(d.length);
  return m <= s ? [...subproof(m, d.slice(0, s), b), mth(d.slice(s))] : [...subproof(m - s, d.slice(s), false), mth(d.slice(0, s))];
}


const hex = (l: Buffer[]): string[] => l.map((b) => b.toString('hex'));

describe('Merkle hashing (RFC 9162 2.1.1)', () => {
  it('uses the 0x00 leaf and 0x01 node prefixes and SHA-256("") for the empty tree', () => {
    const sha = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
    expect(leafHash(Buffer.from('a')).equals(sha(Buffer.from([0]), Buffer.from('a')))).toBe(true);
    const l = Buffer.alloc(32, 1); const r = Buffer.alloc(32, 2);
    expect(nodeHash(l, r).equals(sha(Buffer.from([1]), l, r))).toBe(true);
    expect(EMPTY_ROOT.toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(rootFromLeafHashes([]).equals(EMPTY_ROOT)).toBe(true);
    // The RFC 6962 test tree of 8 leaves (transparency-dev/merkle testonly), root 5dc9da79…
    const inputs = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
    expect(rootFromLeafHashes(inputs.map((h) => leafHash(Buffer.from(h, 'hex')))).toString('hex'))
      .toBe('5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328');
  });
});

describe('MerkleTree proofs equal the recursive definitions', () => {
  const all = leaves(70);
  const tree = new MerkleTree();
  all.forEach((h) => tree.append(h));

  it('roots, PATH and PROOF for every (m, n) with n ≤ 70, and each proof verifies', () => {
    let checked = 0;
    for (let n = 1; n <= 70; n++) {
      const d = all.slice(0, n);
      const root = mth(d);
      expect(tree.root(n).equals(root)).toBe(true);
      expect(rootFromLeafHashes(d).equals(root)).toBe(true);
      for (let m = 0; m < n; m++) {
        const p = tree.inclusionProof(m, n);
        expect(hex(p)).toEqual(hex(path(m, d)));
        expect(verifyInclusion(m, n, d[m], p, root).equals(root)).toBe(true);
        checked++;
      }
      for (let m = 1; m <= n; m++) {
        const p = tree.consistencyProof(m, n);
        expect(hex(p)).toEqual(hex(m === n ? [] : subproof(m, d, true)));
        expect(verifyConsistency(m, n, p, mth(d.slice(0, m)), root).equals(root)).toBe(true);
        checked++;
      }
    }
    expect(checked).toBe(2 * (70 * 71) / 2);
  });

  it('random (m, n) up to 5,000 leaves, every proof verifies and a flipped bit does not', () => {
    const big = leaves(5000, 'big');
    const t = new MerkleTree();
    big.forEach((h) => t.append(h));
    const rand = rng(9162);
    for (let i = 0; i < 40; i++) {
      const n = 1 + Math.floor(rand() * 5000);
      const m = Math.floor(rand() * n);
      const d = big.slice(0, n);
      const root = mth(d);
      expect(t.root(n).equals(root)).toBe(true);
      const ip = t.inclusionProof(m, n);
      expect(hex(ip)).toEqual(hex(path(m, d)));
      verifyInclusion(m, n, d[m], ip, root);
      const m1 = m + 1; // consistency needs 0 < size1
      const cp = t.consistencyProof(m1, n);
      expect(hex(cp)).toEqual(hex(m1 === n ? [] : subproof(m1, d, true)));
      verifyConsistency(m1, n, cp, mth(d.slice(0, m1)), root);
      if (ip.length > 0) {
        const bad = ip.map((b) => Buffer.from(b)); bad[Math.floor(rand() * bad.length)][7] ^= 0x10;
        expect(() => verifyInclusion(m, n, d[m], bad, root)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_MERKLE_INCLUSION' }));
      }
      if (cp.length > 0) {
        const bad = cp.map((b) => Buffer.from(b)); bad[Math.floor(rand() * bad.length)][3] ^= 0x01;
        expect(() => verifyConsistency(m1, n, bad, mth(d.slice(0, m1)), root)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_MERKLE_CONSISTENCY' }));
      }
    }
  });
});

describe('MerkleTree storage', () => {
  /** The real in-memory store, with its lookups counted (a seam, not a fake). */
  class CountingStore implements HashStore {
    gets = 0; puts = 0;
    readonly inner = new MemoryHashStore();
    get(level: number, index: number) { this.gets++; return this.inner.get(level, index); }
    put(level: number, index: number, hash: Buffer) { this.puts++; this.inner.put(level, index, hash); }
  }

  it('appends in amortised O(1) writes and answers proofs in O(log n) lookups', () => {
    const store = new CountingStore();
    const t = new MerkleTree(store);
    const n = 1 << 14;
    leaves(n, 's').forEach((h) => t.append(h));
    expect(store.puts).toBe(2 * n - 1); // every leaf plus every completed internal node, once
    const log = Math.ceil(Math.log2(n));
    for (const [m, size] of [[0, n], [n - 1, n], [12_345, 16_001], [5, 9_999]] as const) {
      store.gets = 0;
      const p = t.inclusionProof(m, size);
      expect(p.length).toBeLessThanOrEqual(log);
      expect(store.gets).toBeLessThanOrEqual(2 * log);
    }
    for (const [m, size] of [[1, n], [8_191, 16_001], [4_097, 9_999], [16_000, 16_001]] as const) {
      store.gets = 0;
      t.consistencyProof(m, size);
      expect(store.gets).toBeLessThanOrEqual(3 * log);
    }
  });

  it('resumes from a store that already holds a tree, and refuses a store that does not', () => {
    const store = new MemoryHashStore();
    const a = new MerkleTree(store);
    const d = leaves(37);
    d.slice(0, 20).forEach((h) => a.append(h));
    const b = new MerkleTree(store, 20);
    d.slice(20).forEach((h) => b.append(h));
    expect(b.root().equals(mth(d))).toBe(true);
    expect(b.leafHashAt(36).equals(d[36])).toBe(true);
    expect(() => new MerkleTree(new MemoryHashStore(), 5)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_MERKLE_STORE' }));
  });

  it('hands out copies: editing a proof does not change the tree', () => {
    const t = new MerkleTree();
    leaves(9).forEach((h) => t.append(h));
    const root = t.root();
    t.inclusionProof(0).forEach((h) => h.fill(0));
    t.leafHashAt(0).fill(0);
    expect(t.root().equals(root)).toBe(true);
  });

  it('refuses bad requests with coded errors and keeps working', () => {
    const t = new MerkleTree();
    expect(t.root().equals(EMPTY_ROOT)).toBe(true);
    expect(() => t.inclusionProof(0)).toThrow(expect.objectContaining({ code: 'SIGN_ERR_MERKLE_RANGE' }));
    leaves(10).forEach((h) => t.append(h));
    const cases: [() => unknown, string][] = [
      [() => t.inclusionProof(10), 'SIGN_ERR_MERKLE_RANGE'],
      [() => t.inclusionProof(-1), 'SIGN_ERR_MERKLE_RANGE'],
      [() => t.inclusionProof(1.5), 'SIGN_ERR_MERKLE_RANGE'],
      [() => t.inclusionProof(0, 11), 'SIGN_ERR_MERKLE_RANGE'],
      [() => t.consistencyProof(0, 10), 'SIGN_ERR_MERKLE_RANGE'],
      [() => t.consistencyProof(5, 4), 'SIGN_ERR_MERKLE_RANGE'],
      [() => t.consistencyProof(5, 11), 'SIGN_ERR_MERKLE_RANGE'],
      [() => t.root(Number.NaN), 'SIGN_ERR_MERKLE_RANGE'],
      [() => t.append(Buffer.alloc(31)), 'SIGN_ERR_MERKLE_HASH'],
      [() => t.append('x' as unknown as Buffer), 'SIGN_ERR_MERKLE_HASH'],
      [() => new MemoryHashStore().put(0, 3, Buffer.alloc(32)), 'SIGN_ERR_MERKLE_STORE'],
    ];
    for (const [fn, code] of cases) expect(fn).toThrow(expect.objectContaining({ code }));
    expect(t.size).toBe(10);
    expect(t.consistencyProof(10, 10)).toEqual([]);
    expect(t.appendData(Buffer.from('more'))).toBe(10);
  });
});
