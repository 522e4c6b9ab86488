/**
 * The framer's payload matcher (agent/mqtt-framer.ts, agent/payload-matcher.ts;
 * the simulator's only): a large PUBLISH whose payload equals a reference,
 * byte for byte, reaches mqtt.js's parser as that reference's memory (no copy);
 * one differing byte anywhere (the first, one just past the probe, the middle,
 * the last), however the reads cut the stream, gives the device its own copy
 * of exactly the bytes it received. Packets are parsed with mqtt-packet, the
 * parser mqtt.js uses.
 */
import { describe, expect, it } from 'vitest';
import * as mqttPacket from 'mqtt-packet';
import { MIN_MATCHED_PAYLOAD, MqttFramer } from '../../agent/mqtt-framer.js';
import { PAYLOAD_PROBE_BYTES, type PayloadMatcher } from '../../agent/payload-matcher.js';

/** Deterministic bytes that differ everywhere (a compressed chunk looks like this). */
function bytesOf(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; b[i] = x & 0xff; }
  return b;
}

const CHUNK = bytesOf(64 * 1024 + 123, 7);
const TOPIC = 'fleetcast/bundles/b-1/chunks/0';
const pub = (payload: Buffer, qos: 0 | 1 = 1, topic = TOPIC) =>
  mqttPacket.generate({ cmd: 'publish', topic, payload, qos, dup: false, retain: false, ...(qos > 0 ? { messageId: 7 } : {}) });
const puback = mqttPacket.generate({ cmd: 'puback', messageId: 3 });
const pingresp = mqttPacket.generate({ cmd: 'pingresp' });

/** A matcher holding `refs`; `offered` collects what the framer offers (copies). */
function matcherOf(refs: Buffer[]): PayloadMatcher & { offered: Buffer[]; asked: number } {
  const m = {
    offered: [] as Buffer[],
    asked: 0,
    candidates(length: number, head: Uint8Array) {
      m.asked++;
      return refs.filter((r) => r.length === length && r.subarray(0, PAYLOAD_PROBE_BYTES).equals(head));
    },
    received(p: Buffer) { m.offered.push(Buffer.from(p)); },
  };
  return m;
}

interface Got { pieces: Buffer[]; packets: mqttPacket.Packet[]; errors: Error[] }

/** Feed `stream`, cut at `cuts`, through one reused read buffer (overwritten after each read, as the socket's is), into mqtt-packet's parser. */
function receive(stream: Buffer, cuts: number[], matcher?: PayloadMatcher): Got {
  const f = new MqttFramer(undefined, matcher);
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const got: Got = { pieces: [], packets: [], errors: [] };
  parser.on('packet', (p) => got.packets.push(p));
  parser.on('error', (e) => got.errors.push(e));
  const reused = Buffer.alloc(stream.length);
  let from = 0;
  for (const to of [...cuts.filter((c) => c > 0 && c < stream.length), stream.length]) {
    stream.copy(reused, 0, from, to);
    const err = f.push(reused.subarray(0, to - from), (p) => { got.pieces.push(p); parser.parse(p); });
    expect(err).toBeNull();
    reused.fill(0xee, 0, to - from);
    from = to;
  }
  return got;
}

const payloadsOf = (g: Got) => g.packets.filter((p): p is mqttPacket.IPublishPacket => p.cmd === 'publish').map((p) => p.payload as Buffer);
const isMemoryOf = (b: Buffer, ref: Buffer) => b.buffer === ref.buffer && b.byteOffset === ref.byteOffset && b.length === ref.length;
/** Cuts that fall on and around `at` and every `step` bytes. */
const cutsAround = (at: number, step: number, length: number) => [at - 1, at, at + 1, ...Array.from({ length: Math.floor(length / step) }, (_, i) => (i + 1) * step)].sort((a, b) => a - b);

describe('MQTT framer with a payload matcher', () => {
  it('Matcher_identical_payload_is_the_reference: a payload equal to a reference arrives as its memory, with nothing copied, for every cut of the stream', () => {
    const ref = Buffer.from(CHUNK); // the reference: memory of its own
    const stream = Buffer.concat([puback, pub(CHUNK, 1), pingresp, pub(CHUNK, 0, 'x'), puback]);
    const headerEnd = pub(CHUNK, 1).length - CHUNK.length + puback.length;
    const cutSets = [[], cutsAround(headerEnd, 4096, stream.length), cutsAround(headerEnd + PAYLOAD_PROBE_BYTES, 65_536, stream.length),
      Array.from({ length: 120 }, (_, i) => i + 1), [stream.length - 1]];
    for (const cuts of cutSets) {
      const m = matcherOf([ref]);
      const g = receive(stream, cuts, m);
      expect(g.errors).toEqual([]);
      expect(g.packets.map((p) => p.cmd)).toEqual(['puback', 'publish', 'pingresp', 'publish', 'puback']);
      const [a, b] = payloadsOf(g);
      expect(isMemoryOf(a, ref) && isMemoryOf(b, ref)).toBe(true);
      expect(g.packets.filter((p) => p.cmd === 'publish').map((p) => (p as mqttPacket.IPublishPacket).topic)).toEqual([TOPIC, 'x']);
      // No piece the size of a payload was allocated: the only large pieces are the reference itself.
      expect(g.pieces.filter((p) => p.length >= MIN_MATCHED_PAYLOAD).every((p) => p === ref)).toBe(true);
      expect(m.offered).toEqual([]);
      expect(ref.equals(CHUNK)).toBe(true);
    }
  });

  it('Matcher_tampered_byte_is_copied: one byte changed at the start, just past the probe, in the middle or last gives exactly the received bytes, in a copy, however the reads are cut', () => {
    const ref = Buffer.from(CHUNK);
    for (const at of [0, PAYLOAD_PROBE_BYTES - 1, PAYLOAD_PROBE_BYTES, Math.floor(CHUNK.length / 2), CHUNK.length - 1]) {
      const bad = Buffer.from(CHUNK);
      bad[at] ^= 0x01;
      const packet = pub(bad, 1);
      const payloadAt = packet.length - bad.length;
      const stream = Buffer.concat([packet, pub(CHUNK, 1), pingresp]);
      // Split across reads: a read ending right before, on and after the changed byte, and cut every 1000 bytes.
      for (const cuts of [[], cutsAround(payloadAt + at, 1000, stream.length), [payloadAt + at], [payloadAt + at + 1]]) {
        const m = matcherOf([ref]);
        const g = receive(stream, cuts, m);
        expect(g.errors).toEqual([]);
        const [tampered, good] = payloadsOf(g);
        expect(tampered.equals(bad)).toBe(true);
        expect(tampered.buffer).not.toBe(ref.buffer);
        // The next packet of the same stream still matches.
        expect(isMemoryOf(good, ref)).toBe(true);
        // The copy is offered to the matcher (a reference for the next device), as received.
        expect(m.offered.length).toBe(1);
        expect(m.offered[0].equals(bad)).toBe(true);
        expect(ref.equals(CHUNK)).toBe(true);
      }
    }
  });

  it('Matcher_none_same_packets: without a matcher, or with no reference for the bytes, every packet comes out whole in a buffer of its own, as before', () => {
    const stream = Buffer.concat([puback, pub(CHUNK, 1), pingresp, pub(bytesOf(40_000, 9), 0, 'y')]);
    const whole = [puback, pub(CHUNK, 1), pingresp, pub(bytesOf(40_000, 9), 0, 'y')].map((b) => b.toString('hex'));
    for (const cuts of [[], cutsAround(puback.length + 40, 777, stream.length)]) {
      expect(receive(stream, cuts).pieces.map((b) => b.toString('hex'))).toEqual(whole);
      const m = matcherOf([bytesOf(CHUNK.length, 8)]); // same length, other bytes
      const g = receive(stream, cuts, m);
      expect(g.pieces.map((b) => b.toString('hex'))).toEqual(whole);
      expect(g.pieces[1].buffer.byteLength).toBe(g.pieces[1].length);
      expect(m.asked).toBe(2);
      expect(m.offered.map((b) => b.toString('hex'))).toEqual([CHUNK.toString('hex'), bytesOf(40_000, 9).toString('hex')]);
    }
  });

  it('Matcher_malformed_publish: a topic longer than its packet, or QoS 3, is handed on whole for mqtt.js to refuse, and the stream goes on', () => {
    const body = Buffer.concat([Buffer.from([0xff, 0xff]), bytesOf(MIN_MATCHED_PAYLOAD + 10, 3)]);
    const len = body.length; // 3-byte remaining length
    const longTopic = Buffer.concat([Buffer.from([0x32, (len & 0x7f) | 0x80, ((len >> 7) & 0x7f) | 0x80, len >> 14]), body]);
    const qos3 = Buffer.from(pub(CHUNK, 1));
    qos3[0] |= 0x06;
    for (const bad of [longTopic, qos3]) {
      const m = matcherOf([Buffer.from(CHUNK)]);
      const f = new MqttFramer(undefined, m);
      const out: Buffer[] = [];
      const stream = Buffer.concat([bad, pingresp]);
      for (let at = 0; at < stream.length; at += 5000) expect(f.push(stream.subarray(at, at + 5000), (p) => out.push(Buffer.from(p)))).toBeNull();
      expect(out.map((b) => b.toString('hex'))).toEqual([bad.toString('hex'), pingresp.toString('hex')]);
      expect(m.offered).toEqual([]);
    }
  });

  it('Matcher_several_candidates_wire_bytes_only: with several references that part from the payload at different places, however the reads are cut, every byte handed on is the wire\'s, and a packet is whole or its headers then a reference equal to it', () => {
    let x = 0x2545f491;
    const rnd = (n: number) => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) % n; };
    let matched = 0;
    for (let run = 0; run < 300; run++) {
      const base = bytesOf(MIN_MATCHED_PAYLOAD + rnd(4000), run + 1);
      // References equal to the base up to a place after the probe, one of them maybe equal throughout.
      const refs = Array.from({ length: 2 + rnd(4) }, () => {
        const r = Buffer.from(base);
        r[PAYLOAD_PROBE_BYTES + rnd(r.length - PAYLOAD_PROBE_BYTES)] ^= 1 + rnd(255);
        return r;
      });
      if (rnd(2)) refs.splice(rnd(refs.length), 0, Buffer.from(base));
      const payloads = [Buffer.from(base), ...refs.map((r) => Buffer.from(r)), (() => { const b = Buffer.from(base); b[rnd(b.length)] ^= 1 + rnd(255); return b; })()];
      const packets = Array.from({ length: 1 + rnd(4) }, () => (rnd(5) === 0 ? puback : pub(payloads[rnd(payloads.length)], rnd(2) as 0 | 1, `t/${'x'.repeat(rnd(200))}`)));
      const stream = Buffer.concat(packets);
      const cuts: number[] = [];
      for (let at = rnd(3000); at < stream.length; at += 1 + rnd(rnd(2) ? 64 : 20_000)) cuts.push(at);
      const g = receive(stream, cuts, matcherOf(refs));
      expect(g.errors).toEqual([]);
      expect(Buffer.concat(g.pieces).equals(stream)).toBe(true);
      let k = 0;
      for (const p of packets) {
        if (g.pieces[k].length === p.length) { k++; continue; }
        expect(refs).toContain(g.pieces[k + 1]);
        expect(g.pieces[k].length + g.pieces[k + 1].length).toBe(p.length);
        matched++;
        k += 2;
      }
      expect(k).toBe(g.pieces.length);
    }
    // The streams did exercise matching.
    expect(matched).toBeGreaterThan(50);
  });
});
