/**
 * The verifiers take proofs from the network and from auditors' files: every
 * malformed input must end in a coded SIGN_ERR_MERKLE_* error, never a crash
 * (RFC 9162 2.1.3.2 and 2.1.4.2 edge cases included).
 */
import { describe, expect, it } from 'vitest';
import { FleetcastError } from '../../protocol/errors.js';
import {
  EMPTY_ROOT, MerkleTree, leafHash, rootFromConsistencyProof, rootFromInclusionProof, verifyConsistency, verifyInclusion,
} from '../../signing/merkle.js';

const tree = new MerkleTree();
for (let i = 0; i < 21; i++) tree.appendData(Buffer.from(`leaf ${i}`));
const root = (n = 21) => tree.root(n);
const leaf = (i: number) => tree.leafHashAt(i);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetcastError);
    expect((e as FleetcastError).message.length).toBeGreaterThan(20);
    return (e as FleetcastError).code;
  }
  return 'accepted';
}

describe('inclusion verification (RFC 9162 2.1.3.2)', () => {
  const p = tree.inclusionProof(6, 21);
  const any = (x: unknown) => x as never;

  it('accepts the real proof and returns the computed root', () => {
    expect(verifyInclusion(6, 21, leaf(6), p, root()).equals(root())).toBe(true);
    expect(rootFromInclusionProof(6, 21, leaf(6), p).equals(root())).toBe(true);
    expect(verifyInclusion(0, 1, leaf(0), null, leaf(0)).equals(leaf(0))).toBe(true); // a one-leaf tree's root is the leaf
  });

  it.each([
    ['one hash too many', () => verifyInclusion(6, 21, leaf(6), [...p, p[0]], root()), 'SIGN_ERR_MERKLE_INCLUSION'],
    ['one hash too few', () => verifyInclusion(6, 21, leaf(6), p.slice(0, -1), root()), 'SIGN_ERR_MERKLE_INCLUSION'],
    ['no proof for a big tree', () => verifyInclusion(6, 21, leaf(6), [], root()), 'SIGN_ERR_MERKLE_INCLUSION'],
    ['the wrong leaf', () => verifyInclusion(6, 21, leaf(7), p, root()), 'SIGN_ERR_MERKLE_INCLUSION'],
    ['the wrong index', () => verifyInclusion(7, 21, leaf(6), p, root()), 'SIGN_ERR_MERKLE_INCLUSION'],
    ['the wrong size (a shape with fewer levels)', () => verifyInclusion(6, 16, leaf(6), p, root()), 'SIGN_ERR_MERKLE_INCLUSION'],
    ['a root of the wrong length', () => verifyInclusion(6, 21, leaf(6), p, root().subarray(0, 31)), 'SIGN_ERR_MERKLE_INCLUSION'],
    ['a root that is not bytes', () => verifyInclusion(6, 21, leaf(6), p, any('root')), 'SIGN_ERR_MERKLE_INCLUSION'],
    ['index equal to size', () => verifyInclusion(21, 21, leaf(6), p, root()), 'SIGN_ERR_MERKLE_RANGE'],
    ['size zero', () => verifyInclusion(0, 0, leaf(0), [], EMPTY_ROOT), 'SIGN_ERR_MERKLE_RANGE'],
    ['a negative index', () => verifyInclusion(-1, 21, leaf(6), p, root()), 'SIGN_ERR_MERKLE_RANGE'],
    ['a fractional size', () => verifyInclusion(6, 21.5, leaf(6), p, root()), 'SIGN_ERR_MERKLE_RANGE'],
    ['a string index', () => verifyInclusion(any('6'), 21, leaf(6), p, root()), 'SIGN_ERR_MERKLE_RANGE'],
    ['a size past 2^53', () => verifyInclusion(6, 2 ** 60, leaf(6), p, root()), 'SIGN_ERR_MERKLE_RANGE'],
    ['a 31-byte proof hash', () => verifyInclusion(6, 21, leaf(6), [p[0].subarray(1), ...p.slice(1)], root()), 'SIGN_ERR_MERKLE_HASH'],
    ['an empty proof hash', () => verifyInclusion(6, 21, leaf(6), [Buffer.alloc(0), ...p.slice(1)], root()), 'SIGN_ERR_MERKLE_HASH'],
    ['base64 text instead of bytes', () => verifyInclusion(6, 21, leaf(6), any(p.map((h) => h.toString('base64'))), root()), 'SIGN_ERR_MERKLE_HASH'],
    ['a proof that is not a list', () => verifyInclusion(6, 21, leaf(6), any({ 0: p[0] }), root()), 'SIGN_ERR_MERKLE_HASH'],
    ['a million-hash proof', () => verifyInclusion(6, 21, leaf(6), new Array(1_000_000).fill(p[0]), root()), 'SIGN_ERR_MERKLE_HASH'],
    ['a 33-byte leaf hash', () => verifyInclusion(6, 21, Buffer.concat([leaf(6), Buffer.from([0])]), p, root()), 'SIGN_ERR_MERKLE_HASH'],
  ])('refuses %s', (_what, fn, code) => {
    expect(codeOf(fn)).toBe(code);
  });
});

describe('consistency verification (RFC 9162 2.1.4.2)', () => {
  it('accepts real proofs, including a power-of-two old size whose root the proof omits', () => {
    for (const m of [1, 2, 4, 8, 16, 5, 13, 20]) {
      const p = tree.consistencyProof(m, 21);
      expect(verifyConsistency(m, 21, p, root(m), root()).equals(root())).toBe(true);
      expect(rootFromConsistencyProof(m, 21, p, root(m)).equals(root())).toBe(true);
    }
    // 8 → 16: both powers of two; the proof is the single right-hand subtree.
    expect(tree.consistencyProof(8, 16)).toHaveLength(1);
    expect(verifyConsistency(21, 21, [], root(), root()).equals(root())).toBe(true);
    expect(verifyConsistency(0, 0, null, EMPTY_ROOT, EMPTY_ROOT).equals(EMPTY_ROOT)).toBe(true);
  });

  const p = tree.consistencyProof(13, 21);
  const p8 = tree.consistencyProof(8, 21);
  it.each([
    ['a proof that names the power-of-two old root itself', () => verifyConsistency(8, 21, [root(8), ...p8], root(8), root()), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['one hash too many', () => verifyConsistency(13, 21, [...p, p[0]], root(13), root()), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['one hash too few', () => verifyConsistency(13, 21, p.slice(0, -1), root(13), root()), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['an empty proof for different sizes', () => verifyConsistency(13, 21, [], root(13), root()), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['a different old root (history rewritten)', () => verifyConsistency(13, 21, p, leafHash(Buffer.from('x')), root()), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['a different new root', () => verifyConsistency(13, 21, p, root(13), root(20)), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['the wrong old size', () => verifyConsistency(12, 21, p, root(13), root()), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['equal sizes with a proof', () => verifyConsistency(21, 21, [p[0]], root(), root()), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['equal sizes with different roots', () => verifyConsistency(21, 21, [], root(20), root()), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['size 0 with a root that is not SHA-256("")', () => verifyConsistency(0, 0, [], root(), root()), 'SIGN_ERR_MERKLE_CONSISTENCY'],
    ['a proof from the empty tree', () => verifyConsistency(0, 21, [], EMPTY_ROOT, root()), 'SIGN_ERR_MERKLE_RANGE'],
    ['a shrinking log', () => verifyConsistency(21, 13, p, root(), root(13)), 'SIGN_ERR_MERKLE_RANGE'],
    ['a negative size', () => verifyConsistency(-13, 21, p, root(13), root()), 'SIGN_ERR_MERKLE_RANGE'],
    ['an old root of the wrong length', () => verifyConsistency(13, 21, p, root(13).subarray(0, 16), root()), 'SIGN_ERR_MERKLE_HASH'],
    ['a garbage proof hash', () => verifyConsistency(13, 21, [Buffer.from('garbage'), ...p.slice(1)], root(13), root()), 'SIGN_ERR_MERKLE_HASH'],
  ])('refuses %s', (_what, fn, code) => {
    expect(codeOf(fn)).toBe(code);
  });
});

describe('fuzzed input', () => {
  it('2,000 random malformed calls end in coded errors, and verification still works after', () => {
    let seed = 42;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
    const hashish = () => pick<unknown>([Buffer.alloc(Math.floor(rand() * 40), Math.floor(rand() * 256)), leaf(Math.floor(rand() * 21)), 'AAAA', null, 7, {}]);
    const num = () => pick<unknown>([Math.floor(rand() * 30), -1, 0, 1.5, Number.NaN, Infinity, '3', 2 ** 55]);
    const proof = () => pick<unknown>([null, undefined, 'proof', Array.from({ length: Math.floor(rand() * 8) }, hashish), tree.inclusionProof(Math.floor(rand() * 21))]);
    const outcomes = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const a = [num(), num(), hashish(), proof(), hashish()] as never[];
      const code = codeOf(() => (i % 2 ? verifyInclusion(a[0], a[1], a[2], a[3], a[4]) : verifyConsistency(a[0], a[1], a[3], a[2], a[4])));
      expect(code).toMatch(/^(accepted|SIGN_ERR_MERKLE_(RANGE|HASH|INCLUSION|CONSISTENCY))$/);
      outcomes.add(code);
    }
    expect(outcomes.size).toBeGreaterThanOrEqual(4);
    expect(verifyInclusion(3, 21, leaf(3), tree.inclusionProof(3), root()).equals(root())).toBe(true);
  });
});
