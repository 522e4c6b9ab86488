/**
 * The hub's bounded inbound queue (hub/mqtt-link.ts InboundQueue) in front of
 * the real dispatcher: messages are handled one at a time in arrival order;
 * past the byte bound telemetry is shed and counted as HUB_ERR_OVERLOADED
 * while state reports are still queued; one device cannot hold more than
 * 1/16 of the bound; shedding stops once the queue drains; a dispatch that
 * throws does not stop the queue or skew its byte count.
 */
import { describe, expect, it } from 'vitest';
import { createDispatcher, InboundQueue } from '../../hub/mqtt-link.js';
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
});
