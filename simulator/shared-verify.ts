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
 *
 * The same references feed the agents' MQTT framers (agent/payload-matcher.ts):
 * a chunk whose bytes, compared in place as they arrive, equal a reference
 * reaches the agent as a view of that reference, with no copy made. Such a
 * chunk is recognised by identity (its bytes are the reference's memory, which
 * nothing modifies) instead of a memcmp, and identity stands only for what was
 * really checked: the reference's own bytes were hashed against this signed
 * chunk list at this index (once per reference, list and index). A reference
 * may hold any bytes a device received (the framer offers each large payload
 * it had no reference for, tampered or not, kept while its length and first
 * bytes have a free place: MAX_PER_PROBE, a checked chunk pushing out the
 * oldest); one that fails the check is
 * refused to every device that received exactly it, and a device whose bytes
 * differ anywhere gets its own copy, checked as above. A chunk no device has
 * finished yet is received into one pending buffer (the matcher's `pending`):
 * the framer furthest ahead writes, the others compare, and the buffer becomes
 * a reference once a framer has matched or written all of it; it is checked
 * like any other reference. A fleet's MemoryPool
 * keeps a reference itself where a device stores it (`referenceOf`).
 */
import { createHash } from 'node:crypto';
import type { PayloadCheck, PayloadCheckFactory } from '@fleetcast/agent/payload-check.js';
import { PAYLOAD_PROBE_BYTES, type PayloadMatcher, type PendingPayload } from '@fleetcast/agent/payload-matcher.js';
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

/**
 * References kept per length and first bytes. Large payloads that differ per device only further on (an
 * assignment naming hundreds of chunks, with its device id and signature) share both: kept each, every
 * framer would compare each packet with thousands of them, and 10,000 devices' copies would fill the index.
 */
export const MAX_PER_PROBE = 4;

/** Where the matcher looks a payload up: its length and first bytes. */
function probeKey(length: number, head: Uint8Array): string {
  return `${length}/${Buffer.from(head.buffer, head.byteOffset, PAYLOAD_PROBE_BYTES).toString('hex')}`;
}

export interface SharedPayloads {
  /** Each fetch's chunk and whole-payload checks (agent seam payloadCheck). */
  check: PayloadCheckFactory;
  /** References for the agents' framers (agent seam payloadMatcher). */
  matcher: PayloadMatcher;
  /** The reference whose memory `bytes` are, all of it (nothing ever modifies it), if any. */
  referenceOf(bytes: Uint8Array): Buffer | undefined;
  /** Chunks accepted or refused so far: as a reference's own memory (its verdict hashed once per reference), by memcmp with a reference, by hashing. */
  readonly stats: { byIdentity: number; byCompare: number; hashed: number };
}

/** `maxBytes` bounds the references kept, for the signed chunk lists and for the framers each (oldest dropped first). */
export function sharedPayloads(maxBytes = 256 * 1024 * 1024): SharedPayloads {
  const refs = new Map<string, Reference>();
  let held = 0;
  // Every reference, by its own memory (each has an ArrayBuffer of its own: allocUnsafeSlow).
  const owned = new WeakMap<ArrayBufferLike, Buffer>();
  // The framers' index (length and first bytes → references), oldest first for eviction.
  const byProbe = new Map<string, Buffer[]>();
  const indexed = new Map<Buffer, string>();
  let indexedBytes = 0;
  // A reference's verdicts: "chunk list key#index" → its bytes matched that signed chunk (really hashed, once).
  const verdicts = new WeakMap<Buffer, Map<string, boolean>>();
  const stats = { byIdentity: 0, byCompare: 0, hashed: 0 };
  // Payloads a framer is receiving with no reference yet (one per length and first bytes, the first begun): others follow it.
  // Their bytes, bounded by maxBytes like the references: a pending no framer finishes (its writer stopped mid-chunk,
  // every other follower differed) is dropped oldest first. A framer still following a dropped one goes on as before.
  const pendings = new Map<string, PendingPayload>();
  let pendingBytes = 0;

  const referenceOf = (bytes: Uint8Array): Buffer | undefined => {
    const r = owned.get(bytes.buffer);
    return r && bytes.byteOffset === r.byteOffset && bytes.byteLength === r.byteLength ? r : undefined;
  };
  const unindex = (old: Buffer) => {
    const k = indexed.get(old)!;
    indexed.delete(old);
    indexedBytes -= old.length;
    const rest = byProbe.get(k)!.filter((c) => c !== old);
    if (rest.length) byProbe.set(k, rest); else byProbe.delete(k);
  };
  const probeOf = (bytes: Uint8Array): string | null => (bytes.length >= PAYLOAD_PROBE_BYTES ? probeKey(bytes.length, bytes) : null);
  /** A reference already held with these bytes (memcmp against those of the same length and first bytes). */
  const sameAs = (bytes: Uint8Array, probe: string | null): Buffer | undefined => (probe === null ? undefined : byProbe.get(probe)?.find((c) => c.equals(bytes)));
  /** The one reference for these bytes: an equal one already held (memcmp), or a new copy of them (the oldest of its probe out if full). */
  const adopt = (bytes: Uint8Array): Buffer => {
    const known = referenceOf(bytes);
    if (known) return known;
    const probe = probeOf(bytes);
    const same = sameAs(bytes, probe);
    if (same) return same;
    const copy = Buffer.allocUnsafeSlow(bytes.length); // its own memory: identity by ArrayBuffer; callers may reuse theirs
    copy.set(bytes);
    return own(copy, probe, true);
  };
  /**
   * `copy`, equal to no reference held, made one. `checked` false (bytes no check has passed: a pending payload
   * completed by a framer) indexes it only in a free place of its probe, so unchecked bytes never push a checked
   * chunk out; it is a reference (by identity) either way.
   */
  const own = (copy: Buffer, probe: string | null, checked: boolean): Buffer => {
    owned.set(copy.buffer, copy);
    if (probe === null || copy.length > maxBytes) return copy;
    const list = byProbe.get(probe);
    if (list && list.length >= MAX_PER_PROBE) {
      if (!checked) return copy;
      unindex(list[0]);
    }
    const now = byProbe.get(probe);
    if (now) now.push(copy); else byProbe.set(probe, [copy]);
    indexed.set(copy, probe);
    indexedBytes += copy.length;
    for (const old of indexed.keys()) {
      if (indexedBytes <= maxBytes) break;
      unindex(old);
    }
    return copy;
  };
  /**
   * A framer's offer, bytes nobody checked (a tampered chunk, another device's assignment): kept only in a free
   * place of its probe, so it never pushes a checked chunk out, and is not copied when it would not be kept.
   */
  const offer = (payload: Buffer) => {
    const probe = payload.length >= PAYLOAD_PROBE_BYTES && payload.length <= maxBytes ? probeKey(payload.length, payload) : null;
    if (probe !== null && (byProbe.get(probe)?.length ?? 0) < MAX_PER_PROBE) adopt(payload);
  };
  /** Whether a reference's own bytes are chunk `index` of the signed list `key` (hashed once per reference, list and index). */
  const verdictsOf = (ref: Buffer): Map<string, boolean> => {
    let v = verdicts.get(ref);
    if (!v) verdicts.set(ref, (v = new Map()));
    return v;
  };
  const verified = (ref: Buffer, manifest: Manifest, key: string, index: number): boolean => {
    const v = verdictsOf(ref);
    const at = `${key}#${index}`;
    let ok = v.get(at);
    if (ok === undefined) v.set(at, (ok = verifyChunk(manifest, index, ref)));
    return ok;
  };
  const refFor = (key: string): Reference => {
    let r = refs.get(key);
    if (!r) { r = { chunks: [], bytes: 0 }; refs.set(key, r); }
    return r;
  };
  const keep = (r: Reference, index: number, ref: Buffer) => {
    r.chunks[index] = ref;
    r.bytes += ref.length;
    held += ref.length;
    for (const [k, old] of refs) {
      if (held <= maxBytes || old === r) break;
      refs.delete(k);
      held -= old.bytes;
    }
  };

  const check = (manifest: Manifest): PayloadCheck => {
    const key = keyOf(manifest);
    // Chunks of this fetch known to equal the reference (index → reference bytes).
    const same = new Map<number, Buffer>();
    // Appended reference chunks not hashed yet: while all are references, nothing is hashed.
    const deferred: Buffer[] = [];
    let whole: ReturnType<typeof createHash> | null = null;
    return {
      chunk(index, bytes) {
        const r = refFor(key);
        const known = r.chunks[index];
        const mine = referenceOf(bytes);
        if (mine) {
          stats.byIdentity++;
          // The reference's own memory (handed on by the framer): its verdict, no memcmp.
          if (mine !== known && !verified(mine, manifest, key, index)) { same.delete(index); return false; }
          if (!known) keep(r, index, mine);
          same.set(index, mine);
          return true;
        }
        if (known && known.length === bytes.length && known.equals(bytes)) { stats.byCompare++; same.set(index, known); return true; }
        stats.hashed++;
        same.delete(index);
        if (!verifyChunk(manifest, index, bytes)) return false;
        if (!known) {
          const ref = adopt(bytes);
          verdictsOf(ref).set(`${key}#${index}`, true); // equal to bytes that were just hashed
          keep(r, index, ref);
          same.set(index, ref);
        }
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

  const matcher: PayloadMatcher = {
    candidates: (length, head) => byProbe.get(probeKey(length, head)) ?? [],
    received: offer,
    pending(length, head) {
      const k = probeKey(length, head);
      let p = pendings.get(k);
      if (!p) {
        const bytes = Buffer.allocUnsafeSlow(length); // its own memory: it becomes a reference when complete
        bytes.set(head.subarray(0, PAYLOAD_PROBE_BYTES));
        pendings.set(k, (p = { bytes, filled: PAYLOAD_PROBE_BYTES }));
        pendingBytes += length;
        for (const [old, q] of pendings) {
          if (pendingBytes <= maxBytes || q === p) break;
          pendings.delete(old);
          pendingBytes -= q.bytes.length;
        }
      }
      return p;
    },
    complete(p) {
      const k = probeKey(p.bytes.length, p.bytes);
      if (pendings.get(k) === p) { pendings.delete(k); pendingBytes -= p.bytes.length; }
      // Complete: nothing writes it any more, so its own memory can be a reference (unchecked bytes: `own`'s free
      // place only). An equal reference already held is the one handed on.
      const probe = probeOf(p.bytes);
      return owned.get(p.bytes.buffer) ?? sameAs(p.bytes, probe) ?? own(p.bytes, probe, false);
    },
  };
  return { check, referenceOf, stats, matcher };
}

/** The chunk and payload checks alone (no framer references). */
export function sharedPayloadCheck(maxBytes = 256 * 1024 * 1024): PayloadCheckFactory {
  return sharedPayloads(maxBytes).check;
}
