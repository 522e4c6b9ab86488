import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseTopic } from '../../protocol/topics.js';
import { ChunkServer } from '../../hub/transfer.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { manifestFor, randomPayload, silentLogger } from '../helpers/hub-fixtures.js';

afterAll(cleanupTempDirs);

const BUNDLE = 'c'.repeat(64);
const OTHER = 'd'.repeat(64);

/** A chunk server over a real blob file; `publish` is the seam: it records what would go to the broker. */
function setup(opts: { chunks?: number; quietMs?: number; maxWaitMs?: number; maxInflight?: number; corrupt?: number; expectWaitMs?: number; expectMaxWaitMs?: number; republishMs?: number } = {}) {
  const dir = tempDir();
  const chunkSize = 1024;
  const payload = randomPayload(chunkSize * (opts.chunks ?? 10) - 100);
  const manifest = manifestFor(payload, chunkSize);
  const blobPath = join(dir, 'blob.zst');
  const onDisk = Buffer.from(payload);
  if (opts.corrupt !== undefined) onDisk[opts.corrupt * chunkSize + 3] ^= 0xff;
  writeFileSync(blobPath, onDisk);
  const published: { index: number; data: Buffer }[] = [];
  let inflight = 0;
  let maxSeenInflight = 0;
  const acks: (() => void)[] = [];
  const server = new ChunkServer({
    quietMs: opts.quietMs ?? 30,
    maxWaitMs: opts.maxWaitMs ?? 300,
    maxInflight: opts.maxInflight ?? 4,
    expectWaitMs: opts.expectWaitMs ?? 0,
    ...(opts.expectMaxWaitMs !== undefined ? { expectMaxWaitMs: opts.expectMaxWaitMs } : {}),
    republishMs: opts.republishMs ?? 0,
    lookup: (id) => (id === BUNDLE ? { manifest, blobPath } : undefined),
    // Which device may fetch what is hub/transfer-grants.ts's job, tested on the real hub (hub-transfer-grants.test.ts).
    mayFetch: () => true,
    publish: (topic, data) => {
      const t = parseTopic(topic);
      if (t.kind !== 'chunk' || t.bundleId !== BUNDLE) throw new Error(`unexpected topic ${topic}`);
      published.push({ index: t.index, data });
      inflight++;
      maxSeenInflight = Math.max(maxSeenInflight, inflight);
      // The PUBACK comes later, when the test (or a microtask) releases it.
      return new Promise<void>((resolve) => acks.push(() => { inflight--; resolve(); }));
    },
    logger: silentLogger(),
    now: () => Date.now(),
  });
  const ackAll = async () => { while (acks.length) acks.shift()!(); await Promise.resolve(); };
  const req = (chunks: number[], deviceId = 'd1', bundleId = BUNDLE) => server.request({ v: 1, deviceId, bundleId, chunks });
  return { server, payload, manifest, published, acks, ackAll, req, maxInflight: () => maxSeenInflight };
}

/** Release PUBACKs until the server has nothing in flight. */
async function drain(s: ReturnType<typeof setup>): Promise<void> {
  let done = false;
  const idle = s.server.idle().then(() => { done = true; });
  while (!done) { await s.ackAll(); await new Promise((r) => setImmediate(r)); }
  await idle;
}

describe('chunk server coalescing (fake timers)', () => {
  beforeEach(() => { vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] }); });
  afterEach(() => { vi.useRealTimers(); });

  it('publishes the union of requests that arrive within the quiet period once each', async () => {
    const s = setup({ chunks: 10, quietMs: 30 });
    s.req([0, 1, 2], 'd1');
    vi.advanceTimersByTime(20);
    s.req([2, 3, 9], 'd2');
    vi.advanceTimersByTime(20);
    s.req([1, 9, 4], 'd3');
    expect(s.published).toHaveLength(0);
    vi.advanceTimersByTime(29);
    expect(s.server.stats.flushes).toBe(0);
    vi.advanceTimersByTime(1);
    expect(s.server.stats.flushes).toBe(1);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2, 3, 4, 9]);
    for (const p of s.published) {
      expect(p.data.equals(s.payload.subarray(p.index * 1024, (p.index + 1) * 1024))).toBe(true);
    }
    expect(s.server.stats.published).toBe(6);
  });

  it('after a deploy, waits for every assigned device to ask, then publishes once', async () => {
    const s = setup({ chunks: 4, quietMs: 30, maxWaitMs: 100, expectWaitMs: 2000 });
    s.server.expect(BUNDLE, ['d1', 'd2', 'd3']);
    s.req([0, 1, 2, 3], 'd1');
    vi.advanceTimersByTime(500); // far past quiet and maxWait: d2 and d3 have not asked yet
    s.req([0, 1, 2, 3], 'd2');
    vi.advanceTimersByTime(500);
    expect(s.server.stats.flushes).toBe(0);
    s.req([0, 1, 2, 3], 'd3');
    vi.advanceTimersByTime(30);
    expect(s.server.stats.flushes).toBe(1);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2, 3]);
  });

  it('All_expected_devices_asked_flushes_at_once: once the last assigned device has asked, the first flush does not wait for a quiet gap', async () => {
    const s = setup({ chunks: 4, quietMs: 30, maxWaitMs: 100, expectWaitMs: 2000 });
    s.server.expect(BUNDLE, ['d1', 'd2']);
    s.req([0, 1, 2, 3], 'd1');
    vi.advanceTimersByTime(10);
    s.req([0, 1, 2, 3], 'd2');
    expect(s.server.stats.flushes).toBe(0);
    vi.advanceTimersByTime(0); // no time passes: the flush was due at once
    expect(s.server.stats.flushes).toBe(1);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2, 3]);
    // A request from a device nobody expected still waits for the quiet gap.
    s.req([1], 'd3');
    vi.advanceTimersByTime(29);
    expect(s.server.stats.flushes).toBe(1);
    vi.advanceTimersByTime(1);
    expect(s.server.stats.flushes).toBe(2);
    await drain(s);
  });

  it('stops waiting for assigned devices that never ask after expectWaitMs', async () => {
    const s = setup({ chunks: 3, quietMs: 30, maxWaitMs: 100, expectWaitMs: 2000 });
    s.server.expect(BUNDLE, ['d1', 'offline']);
    s.req([0, 1, 2], 'd1');
    vi.advanceTimersByTime(1999);
    expect(s.server.stats.flushes).toBe(0);
    vi.advanceTimersByTime(1);
    expect(s.server.stats.flushes).toBe(1);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2]);
    // A straggler is served by a flush of its own, at the normal quiet period.
    s.req([1], 'offline');
    vi.advanceTimersByTime(30);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2, 1]);
    expect(s.server.pendingCount()).toBe(0);
  });

  it('Expected_devices_still_asking_hold_the_first_flush: a fleet whose requests span more than expectWaitMs gets one flush', async () => {
    // 10,000 devices are assigned over seconds: each request from an expected device extends the wait.
    const s = setup({ chunks: 3, quietMs: 30, maxWaitMs: 100, expectWaitMs: 2000, expectMaxWaitMs: 30_000, republishMs: 1000 });
    const fleet = Array.from({ length: 10 }, (_, i) => `d${i}`);
    s.server.expect(BUNDLE, fleet);
    for (const d of fleet) { vi.advanceTimersByTime(1500); s.req([0, 1, 2], d); }
    expect(s.server.stats.flushes).toBe(0); // t = 15 s, far past expectWaitMs
    vi.advanceTimersByTime(30);
    expect(s.server.stats.flushes).toBe(1);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2]);
  });

  it('Requests_during_a_flush_wait_for_its_end: requests arriving while a flush is still publishing get one flush after it', async () => {
    // At 10,000 devices a flush takes tens of seconds to deliver; a flush per second meanwhile re-sent it to everyone.
    const s = setup({ chunks: 3, quietMs: 30, maxWaitMs: 100, republishMs: 1000, maxInflight: 4 });
    s.req([0, 1, 2], 'd1');
    vi.advanceTimersByTime(30);
    expect(s.server.stats.flushes).toBe(1);
    // Handed to the broker, not acknowledged yet: the broker is still writing them to every subscriber.
    while (s.published.length < 3) await new Promise((r) => setImmediate(r));
    for (let i = 2; i <= 6; i++) { vi.advanceTimersByTime(1500); s.req([i % 3], `d${i}`); } // PUBACKs still held
    expect(s.server.stats.flushes).toBe(1);
    await drain(s); // the first flush ends
    expect(s.server.stats.flushes).toBe(1);
    vi.advanceTimersByTime(999);
    expect(s.server.stats.flushes).toBe(1);
    vi.advanceTimersByTime(1); // republishMs after its end: one flush for all five requests
    expect(s.server.stats.flushes).toBe(2);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2, 0, 1, 2]);
  });

  it('Requests_read_after_a_stall_still_hold_the_first_flush: the wait ends only once the requests that came meanwhile are read', async () => {
    const s = setup({ chunks: 2, quietMs: 30, maxWaitMs: 100, expectWaitMs: 2000, expectMaxWaitMs: 30_000 });
    s.server.expect(BUNDLE, ['d1', 'd2', 'd3']);
    s.req([0, 1], 'd1');
    // The hub was busy past the end of the wait: d2's request is queued behind the timer that ends it.
    setImmediate(() => s.req([0, 1], 'd2'));
    vi.advanceTimersByTime(2000);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(s.server.stats.flushes).toBe(0); // d2 asked: wait expectWaitMs more for d3
    s.req([0, 1], 'd3');
    vi.advanceTimersByTime(30);
    await new Promise((r) => setImmediate(r));
    expect(s.server.stats.flushes).toBe(1);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1]);
  });

  it('holds the first flush for devices still asking at most expectMaxWaitMs after the deploy', async () => {
    const s = setup({ chunks: 2, quietMs: 30, maxWaitMs: 100, expectWaitMs: 2000, expectMaxWaitMs: 5000 });
    s.server.expect(BUNDLE, Array.from({ length: 20 }, (_, i) => `d${i}`));
    for (let i = 0; i < 4; i++) { vi.advanceTimersByTime(1000); s.req([0, 1], `d${i}`); } // t = 4 s, 16 still to ask
    vi.advanceTimersByTime(999);
    expect(s.server.stats.flushes).toBe(0);
    vi.advanceTimersByTime(1); // t = 5 s: the cap, although d3 asked 1 s ago
    expect(s.server.stats.flushes).toBe(1);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1]);
  });

  it('flushes at maxWait after the first pending request even while requests keep arriving', async () => {
    const s = setup({ chunks: 50, quietMs: 30, maxWaitMs: 100 });
    for (let i = 0; i < 9; i++) { s.req([i]); vi.advanceTimersByTime(10); } // t = 90, never quiet
    expect(s.server.stats.flushes).toBe(0);
    s.req([9]);
    vi.advanceTimersByTime(10); // t = 100
    expect(s.server.stats.flushes).toBe(1);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('serves a later request for an already-published chunk by a later flush, and only what it asked for', async () => {
    const s = setup({ chunks: 10 });
    s.req([0, 1, 2, 3]);
    vi.advanceTimersByTime(30);
    await drain(s);
    s.req([2]);
    vi.advanceTimersByTime(30);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2, 3, 2]);
  });

  it('holds requests in waves until republishMs after the previous flush, then serves them all in one flush', async () => {
    const s = setup({ chunks: 10, republishMs: 1_000 });
    const start = Date.now();
    s.req([0, 1, 2, 3], 'd1');
    vi.advanceTimersByTime(30); // t = 30: the first flush starts
    await drain(s);
    // Later waves, each well past the quiet period: without the spacing, each was a flush of its own.
    for (const [at, dev, chunks] of [[100, 'd2', [0, 1, 2, 3]], [400, 'd3', [0, 1, 2, 3]], [700, 'd4', [0, 1]]] as const) {
      vi.advanceTimersByTime(start + at - Date.now());
      s.req([...chunks], dev);
    }
    vi.advanceTimersByTime(start + 1_020 - Date.now()); // just before 1 s after the first flush started
    expect(s.server.stats.flushes).toBe(1);
    vi.advanceTimersByTime(20);
    expect(s.server.stats.flushes).toBe(2);
    await drain(s);
    // Every request answered (none dropped), by one re-publish of the union.
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
  });

  it('does not queue again a chunk that a flush in progress has not sent yet', async () => {
    const s = setup({ chunks: 10, maxInflight: 1 });
    s.req([0, 1, 2, 3]);
    vi.advanceTimersByTime(30);
    // Let the flush send chunk 0 and wait for its PUBACK.
    while (s.published.length === 0) await new Promise((r) => setImmediate(r));
    s.req([0, 3]); // 0 already went out (must go again), 3 is still to come (no need)
    expect(s.server.stats.coalesced).toBe(1);
    await drain(s);
    vi.advanceTimersByTime(30);
    await drain(s);
    expect(s.published.map((p) => p.index)).toEqual([0, 1, 2, 3, 0]);
  });
});

describe('chunk server (real timers)', () => {
  it('keeps at most maxInflight publishes waiting for their PUBACK', async () => {
    const s = setup({ chunks: 40, maxInflight: 3, quietMs: 1 });
    s.req(Array.from({ length: 40 }, (_, i) => i));
    const flushed = s.server.flushNow();
    // Acknowledge one publish at a time, and only once the cap is full: an unbounded
    // server would have more than 3 waiting at some point.
    for (let released = 0; released < 40; released++) {
      await waitFor(() => s.acks.length === Math.min(3, 40 - released), 'publishes up to the in-flight cap');
      s.acks.shift()!();
    }
    await flushed;
    expect(s.published).toHaveLength(40);
    expect(s.maxInflight()).toBe(3);
  });

  it('counts out-of-range indices and unknown bundles with coded errors and still serves the valid part', async () => {
    const s = setup({ chunks: 5, quietMs: 1 });
    expect(() => s.req([1, 5, 99])).toThrow(expect.objectContaining({ code: 'HUB_ERR_CHUNK_OUT_OF_RANGE' }));
    expect(() => s.req([0], 'd1', OTHER)).toThrow(expect.objectContaining({ code: 'HUB_ERR_UNKNOWN_BUNDLE' }));
    const flushed = s.server.flushNow();
    await drain(s);
    await flushed;
    expect(s.published.map((p) => p.index)).toEqual([1]);
    expect(s.server.stats).toMatchObject({ outOfRange: 2, unknownBundle: 1 });
  });

  it('never publishes a chunk whose bytes on disk no longer match the manifest', async () => {
    const s = setup({ chunks: 4, quietMs: 1, corrupt: 2 });
    s.req([0, 1, 2, 3]);
    const flushed = s.server.flushNow();
    await drain(s);
    await flushed;
    expect(s.published.map((p) => p.index)).toEqual([0, 1]);
    expect(s.server.stats.failures).toBe(1);
  });
});
