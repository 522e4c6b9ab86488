/**
 * The console's in-browser inclusion check (hub/console/web/merkle.ts, WebCrypto
 * SHA-256) against the transparency-dev/merkle inclusion vectors: the compiled
 * module the hub serves to the browser is loaded here as it is (Node 20 has the
 * same crypto.subtle and atob), so every vector that must verify does and every
 * one that must fail is refused. The browser test (console-browser.test.ts)
 * runs it in Chromium against the hub's real log.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { distFile } from '../helpers/build-cli.js';

const ROOT = fileURLToPath(new URL('../vectors/merkle/inclusion', import.meta.url));
type Merkle = typeof import('../../hub/console/web/merkle.js');

function jsonFiles(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? jsonFiles(p) : name.endsWith('.json') ? [p] : [];
  });
}

interface InclusionCase { leafIdx: number; treeSize: number; root: string; leafHash: string; proof: string[] | null; desc: string; wantErr: boolean }

async function outcome(m: Merkle, c: InclusionCase): Promise<'ok' | 'rejected'> {
  try {
    const got = await m.rootFromInclusionProof(c.leafIdx, c.treeSize, m.fromBase64(c.leafHash), (c.proof ?? []).map(m.fromBase64));
    return m.equal(got, m.fromBase64(c.root)) ? 'ok' : 'rejected';
  } catch {
    return 'rejected';
  }
}

describe('console inclusion proof check (browser module) against the RFC 6962 vectors', () => {
  const files = jsonFiles(ROOT);
  it('has the vectors', () => expect(files.length).toBeGreaterThan(50));
  it.each(files.map((f) => [relative(ROOT, f), f]))('%s', async (_name, file) => {
    const m = (await import(pathToFileURL(distFile('hub/console/web/merkle.js')).href)) as Merkle;
    const c = JSON.parse(readFileSync(file, 'utf8')) as InclusionCase;
    expect(await outcome(m, c), c.desc).toBe(c.wantErr ? 'rejected' : 'ok');
  });

  it('hashes a leaf as SHA-256(0x00 || entry) (RFC 9162 2.1.1)', async () => {
    const m = (await import(pathToFileURL(distFile('hub/console/web/merkle.js')).href)) as Merkle;
    // The empty entry's leaf hash, from RFC 6962's test vectors.
    expect(Buffer.from(await m.leafHash(new Uint8Array())).toString('hex')).toBe('6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
  });
});
