/**
 * The hub's bounded inbound queue (hub/mqtt-link.ts InboundQueue) in front of
 * the real dispatcher: messages are handled one at a time in arrival order;
 * past the byte bound telemetry is shed and counted as HUB_ERR_OVERLOADED
 * while state reports are still queued; shedding stops once the queue drains.
 */
import { describe, expect, it } from 'vitest';
import { createDispatcher, InboundQueue } from '../../hub/mqtt-link.js';
import { encode } from '../../protocol/messages.js';
import { topics } from '../../protocol/topics.js';
import { silentLogger, stateReport } from '../helpers/hub-fixtures.js';

describe('hub inbound queue', () => {
  it('keeps order, sheds telemetry past its bound (counted), never sheds state reports, and recovers', async () => {
    const order: string[] = [];
    let release!: () => void;
    let gate = new Promise<void>((r) => { release = r; });
    const d = createDispatcher({
      state: async (m) => { order.push(`state:${m.deviceId}`); await gate; },
      event: () => {}, 'chunk-req': () => {},
      telemetry: (payload, id) => { order.push(`tel:${id}:${payload.byteLength}`); },
    }, silentLogger());
    const q = new InboundQueue(d, 10_000, silentLogger());
    const tel = (id: string) => q.push(topics.device(id, 'telemetry'), Buffer.alloc(3_000, 1));
    // The first state report blocks the handler; everything after it waits in the queue.
    q.push(topics.device('s0', 'state'), encode(stateReport('s0')));
    tel('t1'); tel('t2'); tel('t3');
    tel('t4'); // would pass 10,000 bytes: shed
    q.push(topics.device('s1', 'state'), encode(stateReport('s1'))); // over the bound too, but state is kept
    tel('t5'); // still over: shed
    expect(d.stats.rejected.HUB_ERR_OVERLOADED).toBe(2);
    release();
    await q.idle();
    expect(order).toEqual(['state:s0', 'tel:t1:3000', 'tel:t2:3000', 'tel:t3:3000', 'state:s1']);
    expect(q.bytes).toBe(0);
    // Drained: telemetry is accepted again.
    gate = Promise.resolve();
    tel('t6');
    await q.idle();
    expect(order.at(-1)).toBe('tel:t6:3000');
    expect(d.stats.rejected.HUB_ERR_OVERLOADED).toBe(2);
    expect(d.stats.handled).toEqual({ state: 2, telemetry: 4 });
  });
});
