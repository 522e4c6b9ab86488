/**
 * The transparency-dev/merkle proof vectors (test/vectors/merkle, see its
 * README and LICENSE): every `wantErr: false` case must verify, every `wantErr: true` case
 * must be refused with a coded error. One case per file, so a failure names it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isFleetcastError } from '../../protocol/errors.js';
import { verifyConsistency, verifyInclusion } from '../../signing/merkle.js';

// Inside the repository, with their Apache-2.0 LICENSE: a clone is all the tests need.
const ROOT = fileURLToPath(new URL('../vectors/merkle', import.meta.url));

function jsonFiles(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? jsonFiles(p) : name.endsWith('.json') ? [p] : [];
  });
}

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');
const proofOf = (p: string[] | null): Buffer[] | null => (p === null ? null : p.map(b64));

/** Run `fn`; report whether it threw, and insist that anything thrown is a coded Merkle error. */
function outcome(fn: () => unknown): 'ok' | 'rejected' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    expect(isFleetcastError(e), `threw a non-coded error: ${String(e)}`).toBe(true);
    expect((e as { code: string }).code).toMatch(/^SIGN_ERR_MERKLE_/);
    return 'rejected';
  }
}

interface InclusionCase { leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] | null; desc: string; wantErr: boolean }
interface ConsistencyCase { size1: number; size2: number; root1: string; root2: string; proof: string[] | null; desc: string; wantErr: boolean }

const inclusion = jsonFiles(join(ROOT, 'inclusion')).map((p) => [relative(ROOT, p), p] as const);
const consistency = jsonFiles(join(ROOT, 'consistency')).map((p) => [relative(ROOT, p), p] as const);

describe('RFC 9162 proof vectors', () => {
  it('found the vector files', () => {
    expect(inclusion.length).toBeGreaterThan(50);
    expect(consistency.length).toBeGreaterThan(50);
  });

  it.each(inclusion)('inclusion %s', (_name, path) => {
    const c = JSON.parse(readFileSync(path, 'utf8')) as InclusionCase;
    const got = outcome(() => verifyInclusion(c.leafIdx, c.treeSize, b64(c.leafHash), proofOf(c.proof), b64(c.root)));
    expect(got, c.desc).toBe(c.wantErr ? 'rejected' : 'ok');
  });

  it.each(consistency)('consistency %s', (_name, path) => {
    const c = JSON.parse(readFileSync(path, 'utf8')) as ConsistencyCase;
    const got = outcome(() => verifyConsistency(c.size1, c.size2, proofOf(c.proof), b64(c.root1), b64(c.root2)));
    expect(got, c.desc).toBe(c.wantErr ? 'rejected' : 'ok');
  });
});
