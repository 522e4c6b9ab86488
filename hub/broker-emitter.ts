/**
 * aedes routes every PUBLISH (and its own $SYS messages: one per CONNECT and
 * per disconnect) through an in-memory mqemitter with a concurrency limit
 * (100 in flight). Once the limit is reached, further messages wait in a
 * queue; when one in flight finishes, mqemitter's `released` takes the next
 * from the queue and calls `_do`, and if that message's listeners all call
 * back at once (no subscriber, or aedes' own $SYS listeners) `released` runs
 * again inside it: one nested `released → _do → fastparallel → released` per
 * queued message. A reconnect storm queues thousands behind a busy subscriber
 * (the hub's own link) and the stack overflows (`RangeError: Maximum call stack
 * size exceeded`, mqemitter 7.1.0; upstream mcollina/mqemitter#204 is still
 * open), thrown out of a socket callback: the whole hub process died.
 *
 * Here `_do` is replaced, on the one instance, by a version that keeps
 * mqemitter's accounting (`current`, `_doing`, match at emit time) but hands
 * the delivery to a loop: a `_do` called while the loop runs only appends to
 * it, so the stack never grows with the queue. The loop delivers at most
 * `perTick` messages, then yields to the event loop (setImmediate) so that
 * sockets, timers and the HTTP API get their turn during a storm; order is kept.
 */
import type { Aedes } from 'aedes';

/** How many messages the broker routes before it lets the event loop run. */
export const EMITS_PER_TICK = 1000;

type Done = (err?: Error) => void;
interface Matcher { match(topic: string): unknown[] }
interface MqInternals {
  _do(message: { topic: string }, cb: Done): unknown;
  _matcher: Matcher;
  _parallel(that: unknown, matches: unknown[], message: unknown, cb: Done): void;
  _doing: boolean;
  current: number;
}

export interface EmitterStats { yields: number; maxBacklog: number }

/**
 * Make aedes' emitter iterative and bounded per tick. Throws when aedes' emitter does not have the
 * internals this relies on (an upgrade would show here, and the broker refuses to start, not crash later).
 */
export function makeEmitterIterative(aedes: Aedes, perTick = EMITS_PER_TICK): EmitterStats {
  const mq = (aedes as unknown as { mq: MqInternals }).mq;
  if (typeof mq?._do !== 'function' || typeof mq._parallel !== 'function' || typeof mq._matcher?.match !== 'function' || typeof mq.current !== 'number') {
    throw new Error('aedes\' mqemitter does not have the _do/_parallel/_matcher/current this broker replaces (aedes or mqemitter upgraded?)');
  }
  const stats: EmitterStats = { yields: 0, maxBacklog: 0 };
  // Flat triples (matches, message, callback), consumed from `head`: no array shift per message.
  let queue: unknown[] = [];
  let head = 0;
  let running = false;
  let scheduled = false;
  const drain = () => {
    running = true;
    try {
      for (let n = 0; head < queue.length; n++) {
        if (n >= perTick) {
          stats.yields++;
          scheduled = true;
          setImmediate(() => { scheduled = false; drain(); });
          return;
        }
        const matches = queue[head] as unknown[];
        const message = queue[head + 1];
        const cb = queue[head + 2] as Done;
        queue[head] = queue[head + 1] = queue[head + 2] = undefined;
        head += 3;
        mq._parallel(mq, matches, message, cb);
      }
      queue = [];
      head = 0;
    } finally {
      running = false;
      // A listener that threw left messages behind: they still go out, on a later tick.
      if (head < queue.length && !scheduled) { scheduled = true; setImmediate(() => { scheduled = false; drain(); }); }
      // A backlog that never quite empties must not keep its delivered slots.
      if (head > 3 * perTick && head * 2 > queue.length) { queue = queue.slice(head); head = 0; }
    }
  };
  mq._do = function (message, cb) {
    // What the original does before delivering: the emitter counts it in flight and matches now.
    this._doing = true;
    const matches = this._matcher.match(message.topic);
    this.current++;
    queue.push(matches, message, cb);
    const backlog = (queue.length - head) / 3;
    if (backlog > stats.maxBacklog) stats.maxBacklog = backlog;
    if (!running && !scheduled) drain();
    return this;
  };
  return stats;
}
