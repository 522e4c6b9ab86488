/**
 * The hub's bounded inbound queue (hub/mqtt-link.ts InboundQueue) in front of
 * the real dispatcher: messages are handled one at a time in arrival order;
 * past the byte bound telemetry is shed and counted as HUB_ERR_OVERLOADED
 * while state reports are still queued; one device cannot hold more than
 * 1/16 of the bound; shedding stops once the queue drains; a dispatch that
 * throws does not stop the queue or skew its byte count. Every device channel
 * is bounded per device: a device flooding state, events, chunk or proof
 * requests has its state coalesced (the latest kept) and the rest shed, while
 * another device's messages still get through.
 */
import { describe, expect, it } from 'vitest';
import { createDispatcher, InboundQueue } from '../../hub/mqtt-link.js';
import { DEVICE_CHANNEL_LIMITS } from '../../protocol/channel-limits.js';
import { encode } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { silentLogger, stateReport } from '../helpers/hub-fixtures.js';

function gated() {
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const order: string[] = [];
  const d = createDispatcher({
    state: async (m) => { order.push(`state:${m.deviceId}`); await gate; },
    event: () => {}, 'chunk-req': () => {},
    telemetry: (payload, id) => { order.push(`tel:${id}:${payload.byteLength}`); },
  }, silentLogger());
  return { d, order, release };
}

describe('hub inbound queue', () => {
  it('keeps order, sheds telemetry past its bound (counted), never sheds state reports, and recovers', async () => {
    const { d, order, release } = gated();
    const q = new InboundQueue(d, 16_000, silentLogger());
    // The first state report blocks the handler; everything after it waits in the queue.
    const s0 = encode(stateReport('s0'));
    q.push(topics.device('s0', 'state'), s0);
    const fit = Math.floor((16_000 - s0.length) / 900);
    for (let i = 0; i < 20; i++) q.push(topics.device(`t${i}`, 'telemetry'), Buffer.alloc(900, 1));
    q.push(topics.device('s1', 'state'), encode(stateReport('s1'))); // over the bound, but state is kept
    q.push(topics.device('t99', 'telemetry'), Buffer.alloc(900, 1)); // still over: shed
    expect(d.stats.rejected.HUB_ERR_OVERLOADED).toBe(20 - fit + 1);
    release();
    await q.idle();
    expect(order).toEqual(['state:s0', ...Array.from({ length: fit }, (_, i) => `tel:t${i}:900`), 'state:s1']);
    expect(q.bytes).toBe(0);
    // Drained: telemetry is accepted again.
    q.push(topics.device('t99', 'telemetry'), Buffer.alloc(900, 1));
    await q.idle();
    expect(order.at(-1)).toBe('tel:t99:900');
    expect(d.stats.handled).toEqual({ state: 2, telemetry: fit + 1 });
  });

  it('sheds the telemetry of a device holding more than 1/16 of the bound, not that of the others', async () => {
    const { d, order, release } = gated();
    const q = new InboundQueue(d, 16_000, silentLogger());
    q.push(topics.device('s0', 'state'), encode(stateReport('s0')));
    for (let i = 0; i < 5; i++) q.push(topics.device('loud', 'telemetry'), Buffer.alloc(400, 1)); // 2 fit in 1,000 bytes
    q.push(topics.device('quiet', 'telemetry'), Buffer.alloc(400, 1));
    expect(d.stats.rejected.HUB_ERR_OVERLOADED).toBe(3);
    release();
    await q.idle();
    expect(order).toEqual(['state:s0', 'tel:loud:400', 'tel:loud:400', 'tel:quiet:400']);
    q.push(topics.device('loud', 'telemetry'), Buffer.alloc(400, 1)); // drained: taken again
    await q.idle();
    expect(order.at(-1)).toBe('tel:loud:400');
    // A report larger than a device's share is still let in when that device has nothing waiting.
    q.push(topics.device('big', 'telemetry'), Buffer.alloc(3_000, 1));
    await q.idle();
    expect(order.at(-1)).toBe('tel:big:3000');
  });

  it('keeps going, and keeps its byte count right, when a dispatch throws', async () => {
    const seen: string[] = [];
    const stats = { handled: {}, rejected: {} };
    const flaky = { stats, dispatch: async (topic: string) => { if (topic.includes('bad')) throw new Error('boom'); seen.push(topic); } };
    const q = new InboundQueue(flaky, 10_000, silentLogger());
    q.push(topics.device('bad', 'telemetry'), Buffer.alloc(20));
    q.push(topics.device('good', 'state'), Buffer.alloc(30));
    await q.idle();
    expect(seen).toEqual([topics.device('good', 'state')]);
    expect(q.bytes).toBe(0);
  });

  it('Flooding_device_bounded_on_every_channel: state coalesced to the latest, events and chunk/proof requests shed past its share, the others served', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const order: string[] = [];
    const d = createDispatcher({
      state: async (m) => { order.push(`state:${m.deviceId}:${m.seq}`); if (m.deviceId === 'first') await gate; },
      event: (m) => { order.push(`event:${m.deviceId}:${m.seq}`); },
      'chunk-req': (m) => { order.push(`chunk-req:${m.deviceId}`); },
      'proof-req': (m) => { order.push(`proof-req:${m.deviceId}`); },
      telemetry: () => {},
    }, silentLogger());
    const bound = 1024 * 1024;
    const q = new InboundQueue(d, bound, silentLogger());
    // The first report holds the handler: everything after it waits, as when the hub falls behind.
    q.push(topics.device('first', 'state'), encode(stateReport('first')));
    const event = (id: string, seq: number) => encode({ v: 1, deviceId: id, seq, at: 1, kind: 'fetch-failed', code: 'AGENT_ERR_X', detail: 'x'.repeat(1000) });
    const chunkReq = encode({ v: 1, deviceId: 'loud', bundleId: 'a'.repeat(64), chunks: Array.from({ length: 5000 }, (_, i) => i) });
    let peak = 0;
    for (let i = 1; i <= 3000; i++) {
      q.push(topics.device('loud', 'state'), encode(stateReport('loud', { seq: i, capabilities: { pad: 'p'.repeat(30_000) } })));
      q.push(topics.device('loud', 'event'), event('loud', i));
      q.push(topics.device('loud', 'chunk-req'), chunkReq);
      q.push(topics.device('loud', 'proof-req'), encode({ v: 1, deviceId: 'loud', from: 1, to: 2 }));
      peak = Math.max(peak, q.bytes);
    }
    q.push(topics.device('quiet', 'event'), event('quiet', 1));
    q.push(topics.device('quiet', 'state'), encode(stateReport('quiet', { seq: 7 })));
    // What waits is bounded by the loud device's share plus one state report per device, not by how much it sent.
    expect(peak).toBeLessThanOrEqual(bound / 16 + DEVICE_CHANNEL_LIMITS['chunk-req'].maxBytes + 3 * DEVICE_CHANNEL_LIMITS.state.maxBytes);
    expect(d.stats.rejected.HUB_ERR_OVERLOADED).toBeGreaterThan(3000);
    release();
    await q.idle();
    // The loud device's state: only its latest, once; the quiet device's event and state both handled.
    expect(order.filter((o) => o.startsWith('state:loud'))).toEqual(['state:loud:3000']);
    expect(order).toContain('event:quiet:1');
    expect(order).toContain('state:quiet:7');
    // Its own order holds: its events before its (later) latest state.
    expect(order.indexOf('event:loud:1')).toBeLessThan(order.indexOf('state:loud:3000'));
    expect(q.bytes).toBe(0);
    // A message over its channel's limit is refused on arrival, never queued.
    q.push(topics.device('quiet', 'state'), Buffer.alloc(DEVICE_CHANNEL_LIMITS.state.maxBytes + 1, 0x20));
    expect(q.bytes).toBe(0);
    expect(d.stats.rejected.PROTO_ERR_MESSAGE_TOO_LARGE).toBe(1);
  });

  it('State_flood_leaves_no_trail: 100,000 state reports from one device while the hub is blocked hold a bounded number of entries', async () => {
    const { d, order, release } = gated();
    const q = new InboundQueue(d, 1024 * 1024, silentLogger());
    q.push(topics.device('s0', 'state'), encode(stateReport('s0')));
    let most = 0;
    for (let i = 1; i <= 100_000; i++) {
      q.push(topics.device('loud', 'state'), encode(stateReport('loud', { seq: i })));
      most = Math.max(most, q.entries);
    }
    expect(most).toBeLessThanOrEqual(2 * 1024 + 2);
    release();
    await q.idle();
    expect(order).toEqual(['state:s0', 'state:loud']);
    expect(q.entries).toBe(0);
  });
});
