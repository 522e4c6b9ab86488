/**
 * The embedded broker's emitter under a storm (hub/broker-emitter.ts), on a
 * real aedes instance's own mqemitter. The shape of a reconnect storm: a
 * subscriber that is slow to take its messages (the hub's link, busy) holds
 * the 100 in-flight slots, thousands of messages queue behind it ($SYS
 * new/clients for every CONNECT, publishes nobody subscribes to), then the
 * subscriber catches up. Unpatched, mqemitter drains that queue by recursion
 * and throws RangeError out of the release.
 */
import { Aedes } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { makeEmitterIterative } from '../../hub/broker-emitter.js';
import { isBrokerFault } from '../../hub/broker.js';

interface Mq { emit(m: { topic: string; payload: Buffer }, cb?: (e?: Error) => void): void; on(t: string, fn: (m: unknown, done: () => void) => void): void }

const brokers: Aedes[] = [];
afterEach(async () => { for (const b of brokers.splice(0)) await new Promise<void>((r) => b.close(() => r())); });

async function broker(): Promise<{ aedes: Aedes; mq: Mq }> {
  const aedes = await Aedes.createBroker();
  brokers.push(aedes);
  return { aedes, mq: (aedes as unknown as { mq: Mq }).mq };
}

/** Fill the in-flight slots with held messages, queue `queued` more that nobody listens to, then release the held ones. */
function storm(mq: Mq, queued: number): { delivered: () => number; release: () => void } {
  const held: (() => void)[] = [];
  mq.on('slow/+', (_m, done) => { held.push(done); });
  let delivered = 0;
  for (let i = 0; i < 100; i++) mq.emit({ topic: `slow/${i}`, payload: Buffer.alloc(0) }, () => { delivered++; });
  for (let i = 0; i < queued; i++) mq.emit({ topic: `fc/v1/dev/d${i}/state`, payload: Buffer.alloc(0) }, () => { delivered++; });
  return { delivered: () => delivered, release: () => { for (const done of held.splice(0)) done(); } };
}

describe('embedded broker emitter under a reconnect storm', () => {
  it('a queue of 20,000 messages behind a slow subscriber overflows the stack of the unpatched emitter, and the hub classifies that error as a broker fault', async () => {
    // The failure this module exists for, shown on the library as shipped: if this stops
    // throwing, mqemitter was fixed upstream and the patch may be retired.
    const { mq } = await broker();
    const s = storm(mq, 20_000);
    let thrown: unknown;
    try { s.release(); } catch (e) { thrown = e; }
    expect(thrown).toBeInstanceOf(RangeError);
    // The hub tells this apart from its own faults by the stack (hub/broker.ts): it is the broker's, so it is contained.
    expect(isBrokerFault(thrown)).toBe(true);
    expect(isBrokerFault(new Error('a fault in the hub itself'))).toBe(false);
  });

  it('drains a queue of 20,000 messages behind a slow subscriber without deep recursion, in order, a bounded number per tick', async () => {
    const { aedes, mq } = await broker();
    const stats = makeEmitterIterative(aedes, 1000);
    const order: number[] = [];
    mq.on('fc/v1/dev/+/state', (m, done) => { order.push(Number((m as { topic: string }).topic.split('/')[3].slice(1))); done(); });
    const s = storm(mq, 20_000);
    expect(() => s.release()).not.toThrow();
    // Every message is delivered (some on later ticks), and each callback is called exactly once.
    const end = Date.now() + 60_000;
    while (s.delivered() < 20_100 && Date.now() < end) await new Promise((r) => setImmediate(r));
    expect(s.delivered()).toBe(20_100);
    expect(order).toEqual(Array.from({ length: 20_000 }, (_, i) => i));
    // The drain gave the event loop a turn at least once per 1,000 messages.
    expect(stats.yields).toBeGreaterThanOrEqual(19);
    expect(stats.maxBacklog).toBeGreaterThan(0);
  });
});
