/**
 * Simulated devices that receive chunks without copying them
 * (simulator/shared-verify.ts sharedPayloads, agent/mqtt-framer.ts with its
 * matcher, agent/memory-storage.ts MemoryPool): each device's own framer and
 * mqtt-packet parser (mqtt.js's) read its own byte stream, its own fetch check
 * judges each chunk. A chunk tampered on its way to one device is refused by
 * that device only, wherever the changed byte is and however the reads cut
 * it; equal chunks reach the others as the fleet's reference, accepted by
 * identity, and stored as that same buffer.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as mqttPacket from 'mqtt-packet';
import { MemoryPool } from '../../agent/memory-storage.js';
import { MqttFramer } from '../../agent/mqtt-framer.js';
import { MAX_PER_PROBE, sharedPayloads, type SharedPayloads } from '../../simulator/shared-verify.js';
import { PAYLOAD_PROBE_BYTES } from '../../agent/payload-matcher.js';
import { manifestFor } from '../helpers/hub-fixtures.js';

const CHUNK = 64 * 1024;
function bytesOf(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
  return b;
}
// Three full chunks and a short last one (below the framer's matching size: always copied).
const payload = bytesOf(3 * CHUNK + 5000, 11);
const manifest = manifestFor(payload, CHUNK);
const chunks = () => Array.from({ length: 4 }, (_, i) => Buffer.from(payload.subarray(i * CHUNK, (i + 1) * CHUNK)));
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Device { ok: boolean[]; digest: string; payloads: Buffer[] }

/**
 * One device: `sent` chunks published to it on its own stream, read in pieces (`feed(to)`: the stream up to
 * offset `to`) through one reused read buffer, framed, parsed; `done()` checks them as its fetch does (chunk,
 * then append in order, digest).
 */
function receiver(shared: SharedPayloads, sent: Buffer[], signed = manifest) {
  const stream = Buffer.concat(sent.map((c, i) => mqttPacket.generate({ cmd: 'publish', topic: `fleetcast/bundles/b/chunks/${i}`, payload: c, qos: 1, messageId: i + 1, dup: false, retain: false })));
  const framer = new MqttFramer(undefined, shared.matcher);
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const payloads: Buffer[] = [];
  parser.on('packet', (p) => { if (p.cmd === 'publish') payloads[Number(p.topic.split('/').at(-1))] = p.payload as Buffer; });
  const reused = Buffer.alloc(stream.length);
  let from = 0;
  return {
    feed(to: number) {
      to = Math.min(to, stream.length);
      if (to <= from) return;
      stream.copy(reused, 0, from, to);
      expect(framer.push(reused.subarray(0, to - from), (p) => parser.parse(p))).toBeNull();
      reused.fill(0xee, 0, to - from);
      from = to;
    },
    done(): Device {
      const check = shared.check(signed);
      const ok = payloads.map((b, i) => check.chunk(i, b));
      payloads.forEach((b, i) => { if (ok[i]) check.append(i, b); });
      return { ok, digest: ok.every(Boolean) ? check.digest() : '', payloads };
    },
    length: stream.length,
  };
}

function device(shared: SharedPayloads, sent: Buffer[], cuts: number[] = [], signed = manifest): Device {
  const r = receiver(shared, sent, signed);
  for (const to of [...cuts.filter((c) => c > 0 && c < r.length).sort((a, b) => a - b), r.length]) r.feed(to);
  return r.done();
}

/** Where chunk `index`'s byte `at` lies in a device's stream (packets of the chunks before it, then its headers). */
function streamOffset(index: number, at: number): number {
  const packetLength = (c: Buffer, i: number) => mqttPacket.generate({ cmd: 'publish', topic: `fleetcast/bundles/b/chunks/${i}`, payload: c, qos: 1, messageId: i + 1, dup: false, retain: false }).length;
  const cs = chunks();
  let off = 0;
  for (let i = 0; i < index; i++) off += packetLength(cs[i], i);
  return off + packetLength(cs[index], index) - cs[index].length + at;
}

describe('simulated devices receiving shared chunks', () => {
  it('Shared_receive_tampered_chunk_refused_by_that_device_only: one byte changed (first, middle, last; the read cut at it) is refused by that device; the others accept, by identity', () => {
    for (const at of [0, CHUNK / 2, CHUNK - 1]) {
      for (const cut of [[], [streamOffset(1, at)], [streamOffset(1, at) + 1], [streamOffset(1, at) - 1, streamOffset(1, at) + 2]]) {
        const shared = sharedPayloads();
        const bad = chunks();
        bad[1][at] ^= 0x80;
        // The tampered device first: its bytes become a reference too (the framer offers what it had none for).
        const tampered = device(shared, bad, cut);
        expect(tampered.ok).toEqual([true, false, true, true]);
        // Another device that received exactly the same tampered bytes is refused as well (the reference's own verdict).
        const alsoTampered = device(shared, chunks().map((c, i) => (i === 1 ? bad[1] : c)), cut);
        expect(alsoTampered.ok).toEqual([true, false, true, true]);
        expect(shared.referenceOf(alsoTampered.payloads[1])).toBeDefined();
        // Devices with the signed bytes accept all, with the payload's own sha256.
        const before = { ...shared.stats };
        for (let d = 0; d < 3; d++) {
          const good = device(shared, chunks(), cut);
          expect(good.ok).toEqual([true, true, true, true]);
          expect(good.digest).toBe(sha(payload));
          expect(good.payloads[1].equals(chunks()[1])).toBe(true);
        }
        // After the first good device, the three large chunks of each further one were references, accepted by identity.
        expect(shared.stats.byIdentity - before.byIdentity).toBeGreaterThanOrEqual(2 * 3);
        // The tampered device still refuses: nothing it saw turned good.
        expect(device(shared, bad, cut).ok).toEqual([true, false, true, true]);
      }
    }
  });

  it('Shared_receive_fills_a_chunk_together: devices receiving a chunk no device has finished fill one buffer (the one ahead writes, the others compare) and all get it as the reference; a device whose bytes differ copies its own and refuses it, the others still install', () => {
    const at = (kb: number) => streamOffset(0, kb * 1024);
    // Interleaved reads of two devices: both get chunk 0 as the one buffer they filled.
    {
      const shared = sharedPayloads();
      const a = receiver(shared, chunks());
      const b = receiver(shared, chunks());
      a.feed(at(40)); b.feed(at(20)); a.feed(at(64)); b.feed(at(64));
      a.feed(a.length); b.feed(b.length);
      const [ra, rb] = [a.done(), b.done()];
      expect(ra.ok).toEqual([true, true, true, true]);
      expect(rb.ok).toEqual([true, true, true, true]);
      expect(rb.digest).toBe(sha(payload));
      expect(shared.referenceOf(rb.payloads[0])).toBeDefined();
      expect(shared.referenceOf(ra.payloads[0])).toBe(shared.referenceOf(rb.payloads[0]));
    }
    // b overtakes a; a stops mid-chunk for good; b's bytes differ where a already filled, or past it (b writes them: a, behind, then differs from the buffer).
    const cases: { name: string; tamper?: number; order: (a: ReturnType<typeof receiver>, b: ReturnType<typeof receiver>) => void }[] = [
      { name: 'overtakes', order: (a, b) => { a.feed(at(20)); b.feed(at(40)); a.feed(a.length); b.feed(b.length); } },
      { name: 'leader stops', order: (a, b) => { a.feed(at(40)); b.feed(b.length); } },
      { name: 'tampered within the fill', tamper: 30 * 1024, order: (a, b) => { a.feed(at(40)); b.feed(at(35)); a.feed(a.length); b.feed(b.length); } },
      { name: 'tampered past the fill', tamper: 50 * 1024, order: (a, b) => { a.feed(at(40)); b.feed(at(45)); a.feed(a.length); b.feed(b.length); } },
      { name: 'tampered last byte, leader whole first', tamper: CHUNK - 1, order: (a, b) => { a.feed(at(40)); b.feed(at(20)); a.feed(a.length); b.feed(b.length); } },
    ];
    for (const c of cases) {
      const shared = sharedPayloads();
      const sent = chunks();
      if (c.tamper !== undefined) sent[0][c.tamper] ^= 0x10;
      const a = receiver(shared, chunks());
      const b = receiver(shared, sent);
      c.order(a, b);
      const [ra, rb] = [a.done(), b.done()];
      // The device with the signed bytes installs whatever the other did.
      if (c.name !== 'leader stops') expect(ra.ok, c.name).toEqual([true, true, true, true]);
      expect(rb.payloads[0].equals(sent[0]), c.name).toBe(true);
      expect(rb.ok, c.name).toEqual([c.tamper === undefined, true, true, true]);
      // A third device with the signed bytes still installs (after the leader stopped too).
      const rc = device(shared, chunks());
      expect(rc.ok, c.name).toEqual([true, true, true, true]);
      expect(rc.digest, c.name).toBe(sha(payload));
    }
  });

  it('Shared_receive_abandoned_pending_bounded: a pending buffer no framer finishes (its writer stopped mid-chunk, the next device differed) is dropped once maxBytes of newer pendings follow it, like a reference', () => {
    const LEN = 256 * 1024;
    const pubOf = (payload: Buffer) => mqttPacket.generate({ cmd: 'publish', topic: 't/0', payload, qos: 1, messageId: 3, retain: false, dup: false }) as Buffer;
    const good = (c: number) => { const b = Buffer.alloc(LEN, c & 0xff); b.writeUInt32BE(c, 0); return b; };
    const shared = sharedPayloads(1024 * 1024);
    for (let c = 0; c < 16; c++) {
      const bad = good(c); bad[1000] ^= 1;
      new MqttFramer(undefined, shared.matcher).push(pubOf(bad).subarray(0, 100 * 1024), () => {}); // stops for good
      const out: Buffer[] = [];
      new MqttFramer(undefined, shared.matcher).push(pubOf(good(c)), (p) => out.push(p)); // differs at 1000: its own copy
      expect(Buffer.concat(out).equals(pubOf(good(c)))).toBe(true);
    }
    // Chunk 0's reference and its abandoned pending are both out (16 MB > 1 MB): a device with its bytes fills a new pending,
    // not the stale one (whose byte 1000 differs), and gets it as the reference. Kept, the stale one would be followed forever.
    const out: Buffer[] = [];
    new MqttFramer(undefined, shared.matcher).push(pubOf(good(0)), (p) => out.push(p));
    expect(Buffer.concat(out).equals(pubOf(good(0)))).toBe(true);
    expect(shared.referenceOf(out.at(-1)!)).toBeDefined();
  });

  it('Shared_receive_reference_is_stored_as_is: a memory pool keeps a received reference itself (no copy, no compare); other bytes are copied as before', () => {
    const shared = sharedPayloads();
    device(shared, chunks());
    const second = device(shared, chunks());
    const ref = shared.referenceOf(second.payloads[0]);
    expect(ref).toBeDefined();
    const pool = new MemoryPool(undefined, { shared: shared.referenceOf });
    expect(pool.intern('staging/b/payload.zst@0', second.payloads[0])).toBe(ref);
    expect(pool.bytes).toBe(0);
    // A copy of the same bytes is not a reference: pooled by place and content as before.
    const copy = Buffer.from(second.payloads[0]);
    const kept = pool.intern('staging/b/payload.zst@0', copy);
    expect(kept).not.toBe(ref);
    expect(kept.equals(copy)).toBe(true);
    expect(pool.intern('staging/b/payload.zst@0', Buffer.from(copy))).toBe(kept);
    // A view of part of a reference is not the reference.
    expect(shared.referenceOf(second.payloads[0].subarray(1))).toBeUndefined();
  });

  it('Shared_receive_reference_bound_to_its_list_and_index: a reference checked as one chunk of one signed list is refused, arriving by identity, as another index or as the same index of another list', () => {
    const shared = sharedPayloads();
    device(shared, chunks());
    // Chunk 0's bytes sent as chunk 1: the device gets the reference of chunk 0 itself, and refuses it there.
    const wrongIndex = device(shared, chunks().map((c, i, all) => (i === 1 ? all[0] : c)));
    expect(shared.referenceOf(wrongIndex.payloads[1])).toBe(shared.referenceOf(wrongIndex.payloads[0]));
    expect(shared.referenceOf(wrongIndex.payloads[1])).toBeDefined();
    expect(wrongIndex.ok).toEqual([true, false, true, true]);
    // Another signed list (chunk 0 differs, same sizes): chunk 0 of the first list, a checked reference, is not its chunk 0.
    const other = Buffer.from(payload);
    other[7] ^= 0x01;
    const otherDevice = device(shared, chunks(), [], manifestFor(other, CHUNK));
    expect(shared.referenceOf(otherDevice.payloads[0])).toBeDefined();
    expect(otherDevice.ok).toEqual([false, true, true, true]);
    // The first list still accepts its own chunks by identity.
    expect(device(shared, chunks()).ok).toEqual([true, true, true, true]);
  });

  it('Shared_receive_unique_payloads_bounded: large payloads of one length and first bytes that differ per device further on (an assignment naming many chunks, with its device id) are not each kept for every framer to compare with; a signed chunk with those first bytes is still shared', () => {
    const shared = sharedPayloads();
    const first = chunks()[0];
    const framer = new MqttFramer(undefined, shared.matcher);
    for (let d = 0; d < 300; d++) {
      const unique = Buffer.from(first);
      unique.writeUInt32BE(d, 1000);
      const packet = mqttPacket.generate({ cmd: 'publish', topic: `fleetcast/dev/sim-${d}/assign`, payload: unique, qos: 1, messageId: 1, dup: false, retain: true });
      expect(framer.push(packet, () => {})).toBeNull();
    }
    expect(shared.matcher.candidates(first.length, first.subarray(0, PAYLOAD_PROBE_BYTES)).length).toBeLessThanOrEqual(MAX_PER_PROBE);
    device(shared, chunks());
    const second = device(shared, chunks());
    expect(second.ok).toEqual([true, true, true, true]);
    expect(shared.referenceOf(second.payloads[0])).toBeDefined();
  });
});
