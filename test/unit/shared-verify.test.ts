/**
 * The simulator's shared payload check (simulator/shared-verify.ts) must answer
 * exactly what the device's own check (agent/payload-check.ts) answers, for
 * good bytes, bad bytes and forged manifests, while hashing identical chunks
 * only once.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { payloadCheck, type PayloadCheck } from '../../agent/payload-check.js';
import type { Manifest } from '../../protocol/manifest.js';
import { sharedPayloadCheck } from '../../simulator/shared-verify.js';
import { manifestFor, randomPayload } from '../helpers/hub-fixtures.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const chunksOf = (p: Buffer, size: number) => Array.from({ length: Math.ceil(p.length / size) }, (_, i) => Buffer.from(p.subarray(i * size, (i + 1) * size)));

/** Feed chunks as a fetch does (check each, append in order) and return the verdicts and the digest. */
function run(check: PayloadCheck, chunks: Buffer[]): { ok: boolean[]; digest: string } {
  const ok = chunks.map((c, i) => check.chunk(i, c));
  chunks.forEach((c, i) => { if (ok[i]) check.append(i, c); });
  return { ok, digest: check.digest() };
}

describe('shared payload check (simulator)', () => {
  const payload = randomPayload(10 * 1024 + 100);
  const m = manifestFor(payload, 1024);
  const chunks = () => chunksOf(payload, 1024);

  it('gives every agent the verdicts and payload sha256 of the device check', () => {
    const shared = sharedPayloadCheck();
    const mine = run(payloadCheck(m), chunks());
    expect(mine).toEqual({ ok: chunks().map(() => true), digest: sha(payload) });
    // The first agent fills the references, the others compare with them.
    for (let agent = 0; agent < 3; agent++) expect(run(shared(m), chunks())).toEqual(mine);
  });

  it('refuses a flipped byte even after the same chunk was accepted for another agent', () => {
    const shared = sharedPayloadCheck();
    run(shared(m), chunks());
    const bad = chunks();
    bad[3][7] ^= 0x01;
    const check = shared(m);
    expect(check.chunk(3, bad[3])).toBe(false);
    expect(payloadCheck(m).chunk(3, bad[3])).toBe(false);
    // A short chunk is refused too (length is part of the signed chunk).
    expect(check.chunk(2, bad[2].subarray(1))).toBe(false);
    expect(check.chunk(3, chunks()[3])).toBe(true);
  });

  it('never shares between manifests whose chunk lists differ: a forged chunk list gets its own payload hash', () => {
    const shared = sharedPayloadCheck();
    const honest = run(shared(m), chunks());
    // Chunk hashes re-signed over altered bytes, payload hash left as it was (agent-tamper's forged bundle).
    const altered = Buffer.from(payload);
    altered[5000] ^= 0x01;
    const forged: Manifest = { ...m, payload: { ...m.payload, chunkHashes: manifestFor(altered, 1024).payload.chunkHashes } };
    const r = run(shared(forged), chunksOf(altered, 1024));
    expect(r.ok.every(Boolean)).toBe(true);
    expect(r.digest).toBe(sha(altered));
    expect(r.digest).not.toBe(forged.payload.compressedSha256);
    expect(honest.digest).toBe(forged.payload.compressedSha256);
  });

  it('hashes for real when chunks come back from disk in another buffer, and with references evicted', () => {
    const shared = sharedPayloadCheck(2048); // room for two chunks: older references are dropped
    for (let agent = 0; agent < 2; agent++) {
      const check = shared(m);
      const buf = Buffer.alloc(1024);
      // One reused buffer, as the resume scan reads the staging file.
      chunks().forEach((c, i) => {
        const b = buf.subarray(0, c.length);
        c.copy(b);
        expect(check.chunk(i, b)).toBe(true);
        check.append(i, b);
      });
      expect(check.digest()).toBe(sha(payload));
    }
  });
});
