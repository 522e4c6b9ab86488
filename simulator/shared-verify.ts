/**
 * Simulated devices share one CPU. A real fleet hashes each received chunk and
 * the whole payload on every device at once, on its own core; 200 agents in
 * one process would hash the same bytes 400 times in a row, and the benchmark
 * would measure the simulator's CPU, not the rollout (as with decompression,
 * shared-unpack.ts). Agents in one process therefore share the hashing of
 * byte-identical chunks.
 *
 * Nothing is accepted that a device would refuse. Every agent still receives
 * its own bytes over its own MQTT connection and checks each chunk against its
 * own signed manifest; a chunk is accepted without hashing only when it is
 * byte-for-byte equal (memcmp) to bytes that already passed the full sha256
 * check against the same signed chunk list, and equal bytes have equal hashes.
 * Anything else is hashed for real. References are keyed by the signed chunk
 * list itself (sizes and every chunk hash), so two manifests that name the
 * same payload hash but different chunks never share. The whole-payload
 * sha256 of an agent whose every chunk was such a copy is the reference
 * bytes' sha256, computed once; an agent with any other chunk hashes for real.
 */
import { createHash } from 'node:crypto';
import type { PayloadCheck, PayloadCheckFactory } from '@fleetcast/agent/payload-check.js';
import { verifyChunk } from '@fleetcast/bundles/verify.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';

interface Reference { chunks: (Buffer | undefined)[]; bytes: number; digest?: string }

/** Signed chunk list identity: two manifests share references only if all of it is equal. */
function keyOf(m: Manifest): string {
  const p = m.payload;
  const h = createHash('sha256').update(`${p.compressedLength}/${p.chunkSize}/${p.compressedSha256}/`);
  for (const c of p.chunkHashes) h.update(c);
  return h.digest('hex');
}

/** `maxBytes` bounds the reference copies kept (oldest bundle dropped first). */
export function sharedPayloadCheck(maxBytes = 256 * 1024 * 1024): PayloadCheckFactory {
  const refs = new Map<string, Reference>();
  let held = 0;
  const refFor = (key: string): Reference => {
    let r = refs.get(key);
    if (!r) { r = { chunks: [], bytes: 0 }; refs.set(key, r); }
    return r;
  };
  const keep = (r: Reference, index: number, bytes: Uint8Array) => {
    r.chunks[index] = Buffer.from(bytes); // a copy: callers may reuse their buffer
    r.bytes += bytes.length;
    held += bytes.length;
    for (const [k, old] of refs) {
      if (held <= maxBytes || old === r) break;
      refs.delete(k);
      held -= old.bytes;
    }
  };

  return (manifest): PayloadCheck => {
    const key = keyOf(manifest);
    // Chunks of this fetch known to equal the reference (index → reference bytes).
    const same = new Map<number, Buffer>();
    // Appended reference chunks not hashed yet: while all are references, nothing is hashed.
    const deferred: Buffer[] = [];
    let whole: ReturnType<typeof createHash> | null = null;
    return {
      chunk(index, bytes) {
        const r = refFor(key);
        const ref = r.chunks[index];
        if (ref && ref.length === bytes.length && ref.equals(bytes)) { same.set(index, ref); return true; }
        same.delete(index);
        if (!verifyChunk(manifest, index, bytes)) return false;
        if (!ref) { keep(r, index, bytes); same.set(index, r.chunks[index]!); }
        return true;
      },
      append(index, bytes) {
        const ref = same.get(index);
        if (!whole && ref) { deferred.push(ref); return; }
        if (!whole) {
          whole = createHash('sha256');
          for (const b of deferred.splice(0)) whole.update(b);
        }
        whole.update(bytes);
      },
      digest() {
        if (whole) return whole.digest('hex');
        const r = refs.get(key);
        // Every chunk was the reference's: its sha256 is computed once for all agents.
        const complete = r && deferred.length === r.chunks.length && deferred.every((b, i) => r.chunks[i] === b);
        if (complete && r.digest) return r.digest;
        const h = createHash('sha256');
        for (const b of deferred) h.update(b);
        const d = h.digest('hex');
        if (complete) r.digest = d;
        return d;
      },
    };
  };
}
