/**
 * The agent's MQTT framer (agent/mqtt-framer.ts): whatever way the bytes are
 * cut by the socket, every packet comes out whole, alone in a buffer of its own
 * size, in order; a malformed or oversized remaining length fails the stream.
 */
import { describe, expect, it } from 'vitest';
import { MqttFramer } from '../../agent/mqtt-framer.js';

/** A packet: the type byte, the remaining length as MQTT's variable-length integer, the body. */
function packet(typeByte: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; len.push(b); } while (n > 0);
  return Buffer.concat([Buffer.from([typeByte, ...len]), body]);
}
const publish = (topic: string, payload: Buffer) => packet(0x32, Buffer.concat([Buffer.from([0, topic.length]), Buffer.from(topic), Buffer.from([0, 1]), payload]));
const packets = [
  packet(0x40, Buffer.from([0, 7])), // PUBACK
  packet(0xd0, Buffer.alloc(0)), // PINGRESP: remaining length 0
  publish('a/b', Buffer.alloc(100, 1)), // 1-byte length
  publish('fleetcast/bundle/x/chunk/3', Buffer.alloc(20_000, 2)), // 3-byte length
  publish('c', Buffer.alloc(300, 3)), // 2-byte length
];
const stream = Buffer.concat(packets);
/** Buffers compared as hex (vitest compares Buffers element by element, slowly). */
const hex = (bs: Buffer[]) => bs.map((b) => b.toString('hex'));

/** Feed `stream` cut at `cuts` through one reused buffer, as the socket's shared read buffer is. */
function frame(cuts: number[]): Buffer[] {
  const f = new MqttFramer();
  const out: Buffer[] = [];
  const reused = Buffer.alloc(stream.length);
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    stream.copy(reused, 0, from, to);
    f.push(reused.subarray(0, to - from), (p) => out.push(p));
    reused.fill(0xee, 0, to - from); // what the next read would overwrite
    from = to;
  }
  return out;
}

describe('MQTT framer', () => {
  it('Framer_whole_packets: every cut of the stream gives the same whole packets, each in a buffer of its own size', () => {
    expect(hex(frame([]))).toEqual(hex(packets));
    // One byte at a time, and cut points all along the stream.
    expect(hex(frame(Array.from({ length: stream.length - 1 }, (_, i) => i + 1)))).toEqual(hex(packets));
    for (let cut = 1; cut < stream.length; cut += 97) expect(hex(frame([cut]))).toEqual(hex(packets));
    // A large packet owns its buffer (small ones may share node's pool).
    const big = frame([10, 500])[3];
    expect(big.buffer.byteLength).toBe(big.length);
  });

  it('Framer_malformed_length: a remaining length longer than 4 bytes fails the stream with a coded error', () => {
    const bad = Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02]);
    const f = new MqttFramer();
    const out: Buffer[] = [];
    expect(f.push(packets[0], (p) => out.push(p))).toBeNull();
    expect(f.push(bad, (p) => out.push(p))).toMatchObject({ code: 'AGENT_ERR_BROKER_BAD_PACKET' });
    // Nothing more is framed from a stream out of step.
    expect(f.push(packets[1], (p) => out.push(p))).toMatchObject({ code: 'AGENT_ERR_BROKER_BAD_PACKET' });
    expect(hex(out)).toEqual(hex([packets[0]]));
  });

  it('Framer_packet_limit: a packet up to the limit is framed; a longer declared length fails before anything is allocated for it', () => {
    // The limit is on the remaining length, as the embedded broker's (hub/broker.ts): this one's fixed header is 4 bytes.
    const remaining = packets[3].length - 4;
    const out: Buffer[] = [];
    expect(new MqttFramer(remaining).push(packets[3], (p) => out.push(p))).toBeNull();
    expect(hex(out)).toEqual(hex([packets[3]]));
    // Only the fixed header is needed to refuse it: the body never has to arrive.
    const f = new MqttFramer(remaining - 1);
    expect(f.push(packets[3].subarray(0, 4), (p) => out.push(p))?.message).toContain(`remaining length ${remaining}, over the ${remaining - 1}-byte limit`);
    expect(out).toHaveLength(1);
  });
});
