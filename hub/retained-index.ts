/**
 * A SUBSCRIBE must be answered with the retained messages its filter matches
 * ([MQTT-3.3.1-6]). aedes' in-memory persistence finds them by testing the
 * filter against every retained topic, and the hub keeps one retained
 * assignment and one retained state report per device: O(fleet) work per
 * SUBSCRIBE. Every agent subscribes to a chunk filter for each install
 * (fc/v1/bundle/<id>/chunk/+), where nothing is ever retained, so a rollout to
 * N devices cost O(N²) topic tests (seconds at 1,000 agents, before any chunk
 * could flow: bench rollout-scale).
 *
 * This index counts retained topics under every leading run of levels. A
 * filter whose literal levels before its first wildcard (all of them, for a
 * filter without one) lead to no retained topic is answered with nothing at
 * once. A filter without wildcards (each device's own assign and control
 * topics, which every device subscribes to on every connect) is answered from
 * a map of retained messages by topic: without it, a fleet of N reconnecting
 * devices cost N scans of 2N retained messages (minutes at 10,000 devices,
 * bench reconnect-storm). Every other filter goes to aedes unchanged. The counts only ever say
 * "nothing can match" when that is true, so what a subscriber receives does
 * not change. Topics are split on "/" as MQTT levels ([MQTT-4.7.1-1]).
 */
import { Readable } from 'node:stream';
import type { Aedes } from 'aedes';

interface RetainedPersistence {
  storeRetained(packet: { topic: string; payload: Buffer | string }): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): Readable;
  createRetainedStream(pattern: string): Readable;
}

export function indexRetained(aedes: Aedes): void {
  const p = (aedes as unknown as { persistence: RetainedPersistence }).persistence;
  const store = p.storeRetained.bind(p);
  const combi = p.createRetainedStreamCombi.bind(p);
  const single = p.createRetainedStream.bind(p);
  /** Every retained message by topic (copied as the persistence copies it), for filters without wildcards. */
  const exact = new Map<string, object>();
  /** Leading levels "a", "a/b", "a/b/c" of every retained topic → how many topics start so. */
  const under = new Map<string, number>();
  const bump = (topic: string, by: 1 | -1) => {
    let at = topic.indexOf('/');
    for (;;) {
      const key = at < 0 ? topic : topic.slice(0, at);
      const n = (under.get(key) ?? 0) + by;
      if (n > 0) under.set(key, n); else under.delete(key);
      if (at < 0) return;
      at = topic.indexOf('/', at + 1);
    }
  };
  const isExact = (filter: string): boolean => !filter.split('/').some((l) => l === '+' || l === '#');
  /** False only when no retained topic can match `filter`. */
  const mayMatch = (filter: string): boolean => {
    const levels = filter.split('/');
    const wild = levels.findIndex((l) => l === '+' || l === '#');
    if (wild === 0) return true;
    return under.has((wild < 0 ? levels : levels.slice(0, wild)).join('/'));
  };

  p.storeRetained = async (packet) => {
    await store(packet);
    // The same rule as the persistence: an empty payload clears the topic's retained message.
    if (packet.payload.length === 0) {
      if (exact.delete(packet.topic)) bump(packet.topic, -1);
    } else {
      if (!exact.has(packet.topic)) bump(packet.topic, 1);
      exact.set(packet.topic, Object.assign({}, packet));
    }
  };
  /** The filters' retained messages in filter order, as the persistence gives them: a filter without wildcards is looked up, not scanned. */
  const answer = async function* (patterns: string[]): AsyncGenerator<object> {
    for (const pattern of patterns) {
      if (isExact(pattern)) { const m = exact.get(pattern); if (m) yield m; } else for await (const m of single(pattern)) yield m as object;
    }
  };
  p.createRetainedStreamCombi = (patterns) => {
    const live = patterns.filter(mayMatch);
    if (live.length === 0) return Readable.from([]);
    return live.some(isExact) ? Readable.from(answer(live)) : combi(live);
  };
  p.createRetainedStream = (pattern) => {
    if (!mayMatch(pattern)) return Readable.from([]);
    if (!isExact(pattern)) return single(pattern);
    const m = exact.get(pattern);
    return Readable.from(m ? [m] : []);
  };
}
