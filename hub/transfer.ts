/**
 * The chunk server (docs/architecture.md "Transfer"). Agents fetching a bundle
 * subscribe to its chunk topics, wait for the SUBACK, then ask for the chunks
 * they lack. Requests are collected per bundle; once none have arrived for
 * `quietMs` (or `maxWaitMs` after the first pending one) the union is published
 * once, on `fc/v1/bundle/<id>/chunk/<i>` at QoS 1: the broker's fan-out makes one
 * publish serve every agent fetching that bundle.
 *
 * Right after a deploy the hub knows who will ask: `expect()` names the devices
 * just assigned the bundle, and the first flush waits until every one of them
 * has asked, and goes out as soon as the last one has (a small fleet does not
 * wait for a quiet gap it has no use for), instead of flushing at the first
 * quiet gap: while they keep asking
 * (none silent for `expectWaitMs`), up to `expectMaxWaitMs` after the deploy.
 * Assignments reach a large fleet over seconds (10,000 signed, published,
 * verified); a flush sent before the last of them subscribed must be sent
 * again, and the broker sends it again to every device still subscribed, which
 * at 10,000 is every device still receiving the first one.
 *
 * A bundle's flushes start at least `republishMs` apart, and after the end of
 * the previous flush's publishes (the broker acknowledges a publish once it has
 * handed it to its subscribers' connections, which may still be sending it):
 * requests that arrive while a flush is still being published wait for one
 * flush after it, not one per second. Devices of a large
 * fleet subscribe and ask at scattered times; a flush per quiet gap re-sent
 * every chunk to every device already subscribed, over and over. Requests that
 * arrive within the spacing are never dropped, only held for the next flush:
 * the hub cannot tell from a request whether its device subscribed before or
 * after the last publish (QoS 1 does not replay to a late subscriber), so it
 * serves each request, late by at most `republishMs` (kept below the agent's
 * chunk timeout, so a held request does not trigger a retry). A bundle's
 * publishes are then at most chunks × (span / republishMs + 2) over a span of
 * requests, whatever the number of devices.
 *
 * Chunks are read from the blob by offset and at most `maxInflight` publishes
 * wait for their PUBACK at once, so memory stays near maxInflight × chunkSize
 * whatever the bundle size.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { chunkRange } from '@fleetcast/bundles/verify.js';
import { errorCode } from '@fleetcast/protocol/errors.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import type { ChunkRequest } from '@fleetcast/protocol/messages.js';
import { topics } from '@fleetcast/protocol/topics.js';
import type { ChunkReader } from './blobs/blob-store.js';
import { openFileChunks } from './blobs/blob-files.js';
import { hubError } from './errors.js';

/** Distinct devices logged for refused requests; past this many, refusals are only counted. */
const MAX_REFUSED_LOGGED = 10_000;

/** A bundle's manifest and its bytes: a blob file, or any BlobStore's reader (hub/blobs/). */
export type ChunkSource = { manifest: Manifest; blobPath: string } | { manifest: Manifest; open(): Promise<ChunkReader> };

export interface TransferOptions {
  quietMs: number;
  maxWaitMs: number;
  maxInflight: number;
  /** After expect(), the first flush waits for the expected devices' requests until none has come for this long… */
  expectWaitMs?: number;
  /** …or this long after expect() (default expectWaitMs: a fixed wait). */
  expectMaxWaitMs?: number;
  /** Least time between the end of one flush's publishes and the start of the next of the same bundle (0: no spacing). */
  republishMs?: number;
  /** The stored bundle with this id, or undefined. */
  lookup(bundleId: string): ChunkSource | undefined;
  /** Whether this device may download this bundle (hub/transfer-grants.ts); a refused request queues nothing. */
  mayFetch(deviceId: string, bundleId: string): boolean;
  /** Publish at QoS 1; resolves on the broker's PUBACK. */
  publish(topic: string, payload: Buffer): Promise<void>;
  logger: Logger;
  now?: () => number;
}

export interface TransferStats {
  requests: number;
  /** Chunk publishes handed to the broker. */
  published: number;
  /** Chunk requests that the next flush did not need because a flush in progress had yet to send them. */
  coalesced: number;
  outOfRange: number;
  unknownBundle: number;
  /** Chunk requests for a bundle the device is not assigned (HUB_ERR_BUNDLE_NOT_ASSIGNED); nothing was queued for them. */
  notAssigned: number;
  flushes: number;
  failures: number;
}

interface BundleQueue {
  pending: Set<number>;
  firstPendingAt: number;
  timer: NodeJS.Timeout | undefined;
  /** Indices handed to a flush but not yet written to the broker connection. */
  unsent: Set<number>;
  /** The chain of flushes for this bundle: one at a time, in order; and how many are still publishing. */
  flushing: Promise<void>;
  busy: number;
  /** Devices assigned this bundle that have not asked yet, until when to wait for them, and the latest that may become. */
  expected: Set<string>;
  expectUntil: number;
  expectCap: number;
}

export class ChunkServer {
  readonly stats: TransferStats = { requests: 0, published: 0, coalesced: 0, outOfRange: 0, unknownBundle: 0, notAssigned: 0, flushes: 0, failures: 0 };
  private readonly queues = new Map<string, BundleQueue>();
  private readonly opts: TransferOptions;
  private readonly now: () => number;
  private closed = false;
  /** Devices already logged for a refused request: one line per device, not one per request (a device may retry forever). */
  private readonly refusedLogged = new Set<string>();
  /** When each bundle's latest flush started, then when its publishes ended; entries older than republishMs are dropped, so this holds only bundles flushed moments ago. */
  private readonly lastFlush = new Map<string, number>();

  constructor(opts: TransferOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => Date.now());
  }

  /**
   * Queue a device's request. Valid indices are queued even when others are
   * out of range; the bad part is then reported by a coded throw, which the
   * dispatcher counts and logs.
   */
  request(req: ChunkRequest): void {
    if (this.closed) return;
    this.stats.requests++;
    const src = this.opts.lookup(req.bundleId);
    if (!src) {
      this.stats.unknownBundle++;
      throw hubError('HUB_ERR_UNKNOWN_BUNDLE', `device ${req.deviceId} asked for chunks of ${req.bundleId}`);
    }
    // The device hears nothing back either way, so checking after the lookup reveals nothing to it.
    if (!this.opts.mayFetch(req.deviceId, req.bundleId)) {
      this.stats.notAssigned++;
      if (!this.refusedLogged.has(req.deviceId) && this.refusedLogged.size < MAX_REFUSED_LOGGED) {
        this.refusedLogged.add(req.deviceId);
        const e = hubError('HUB_ERR_BUNDLE_NOT_ASSIGNED', `device ${req.deviceId} asked for chunks of ${req.bundleId}`);
        this.opts.logger.warn({ code: e.code, deviceId: req.deviceId, bundleId: req.bundleId }, `${e.message} (logged once per device; counted in transfer.notAssigned)`);
      }
      return;
    }
    const count = src.manifest.payload.chunkHashes.length;
    const q = this.queue(req.bundleId);
    // An expected device asking shows the fleet is still coming: wait expectWaitMs more for the rest (up to the cap).
    const wasExpected = q.expected.delete(req.deviceId);
    if (wasExpected && q.expected.size > 0) q.expectUntil = Math.min(q.expectCap, Math.max(q.expectUntil, this.now() + (this.opts.expectWaitMs ?? 0)));
    let bad = 0;
    let added = 0;
    for (const i of req.chunks) {
      if (i >= count) { bad++; continue; }
      // Still waiting to be written by a flush in progress: the requester subscribed
      // before asking, so that publish will reach it.
      if (q.unsent.has(i)) { this.stats.coalesced++; continue; }
      if (!q.pending.has(i)) { q.pending.add(i); added++; }
    }
    // The last of the devices just assigned has asked: nobody else is known to be coming, so the
    // first flush goes out now rather than after a quiet gap (spacing from an earlier flush still holds).
    if (wasExpected && q.expected.size === 0 && q.pending.size > 0) this.schedule(req.bundleId, q, true);
    else if (added > 0 || (q.pending.size > 0 && q.expected.size === 0)) this.schedule(req.bundleId, q);
    if (bad > 0) {
      this.stats.outOfRange += bad;
      throw hubError('HUB_ERR_CHUNK_OUT_OF_RANGE', `device ${req.deviceId} asked for ${bad} index(es) ≥ ${count} of bundle ${req.bundleId.slice(0, 16)}…`);
    }
  }

  /** The devices just assigned `bundleId`: hold its next flush until they have all asked (or expectWaitMs). */
  expect(bundleId: string, deviceIds: readonly string[]): void {
    const wait = this.opts.expectWaitMs ?? 0;
    if (this.closed || wait <= 0 || deviceIds.length === 0) return;
    const q = this.queue(bundleId);
    for (const d of deviceIds) q.expected.add(d);
    q.expectUntil = Math.max(q.expectUntil, this.now() + wait);
    q.expectCap = Math.max(q.expectCap, this.now() + Math.max(wait, this.opts.expectMaxWaitMs ?? wait));
    // Devices that already hold the bundle never ask: the wait ends by itself.
    if (q.timer === undefined) { q.firstPendingAt = this.now(); q.timer = setTimeout(() => this.flush(bundleId, q), wait); }
  }

  /** Flush every pending request now and wait until all publishes are acknowledged (shutdown, tests). */
  async flushNow(): Promise<void> {
    for (const [id, q] of this.queues) if (q.pending.size > 0) this.flush(id, q, true);
    await this.idle();
  }

  /** Resolves when no flush is running (pending requests whose timer has not fired are not waited for). */
  async idle(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.flushing));
  }

  /** Number of chunk indices waiting for their timer, over all bundles. */
  pendingCount(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.pending.size;
    return n;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const q of this.queues.values()) { clearTimeout(q.timer); q.pending.clear(); }
    await this.idle();
  }

  private queue(bundleId: string): BundleQueue {
    let q = this.queues.get(bundleId);
    if (!q) {
      q = { pending: new Set(), firstPendingAt: 0, timer: undefined, unsent: new Set(), flushing: Promise.resolve(), busy: 0, expected: new Set(), expectUntil: 0, expectCap: 0 };
      this.queues.set(bundleId, q);
    }
    return q;
  }

  /**
   * Quiet period after the latest request, capped at maxWait after the first pending one;
   * while expected devices have not asked yet, until they all have or expectUntil passes;
   * `allAsked`: every expected device has asked, no quiet gap.
   */
  private schedule(bundleId: string, q: BundleQueue, allAsked = false): void {
    const now = this.now();
    if (q.timer === undefined) q.firstPendingAt = now;
    clearTimeout(q.timer);
    const waiting = q.expected.size > 0 && now < q.expectUntil;
    if (q.expected.size > 0 && !waiting) q.expected.clear();
    const delay = waiting
      ? q.expectUntil - now
      : Math.max(0, allAsked ? 0 : Math.min(this.opts.quietMs, q.firstPendingAt + this.opts.maxWaitMs - now), this.spacing(bundleId, now));
    q.timer = setTimeout(() => this.flush(bundleId, q), delay);
  }

  /** How long until `bundleId` may be flushed again (0: now). */
  private spacing(bundleId: string, now: number): number {
    const last = this.lastFlush.get(bundleId);
    return last === undefined ? 0 : Math.max(0, last + (this.opts.republishMs ?? 0) - now);
  }

  private flush(bundleId: string, q: BundleQueue, force = false, afterIo = false): void {
    clearTimeout(q.timer);
    q.timer = undefined;
    const now = this.now();
    if (!force && q.expected.size > 0 && now < q.expectUntil) {
      // Expected devices asked since this timer was set, which moved the end of the wait.
      q.timer = setTimeout(() => this.flush(bundleId, q), q.expectUntil - now);
      return;
    }
    if (!force && !afterIo && q.expected.size > 0 && now < q.expectCap) {
      // After a busy stretch the timer runs before the requests that came meanwhile are read:
      // read them first (they move expectUntil), then decide.
      setImmediate(() => { if (!this.closed) this.flush(bundleId, q, false, true); });
      return;
    }
    const republishMs = this.opts.republishMs ?? 0;
    // A flush still publishing is still being delivered: the end of it schedules the next one.
    if (!force && republishMs > 0 && q.busy > 0 && q.pending.size > 0) return;
    const wait = force ? 0 : this.spacing(bundleId, now);
    if (wait > 0 && q.pending.size > 0) {
      // Too soon after the previous flush: hold everything pending (and whatever arrives meanwhile) for one flush.
      q.timer = setTimeout(() => this.flush(bundleId, q), wait);
      return;
    }
    // Whoever has not asked by now is a straggler; it is served by a later flush.
    q.expected.clear();
    if (q.pending.size === 0) {
      if (q.busy === 0 && q.unsent.size === 0) this.dropQueue(bundleId, q);
      return;
    }
    const batch = [...q.pending].sort((a, b) => a - b);
    q.pending = new Set();
    for (const i of batch) q.unsent.add(i);
    this.stats.flushes++;
    q.busy++;
    if (republishMs > 0) {
      for (const [id, t] of this.lastFlush) if (t + republishMs <= now) this.lastFlush.delete(id);
      this.lastFlush.set(bundleId, now);
    }
    q.flushing = q.flushing.then(() => this.publishBatch(bundleId, q, batch)).catch((e: unknown) => {
      this.stats.failures++;
      this.opts.logger.error({ code: errorCode(e), bundleId, err: e }, 'chunk flush failed; agents will ask again');
    }).finally(() => {
      for (const i of batch) q.unsent.delete(i);
      q.busy--;
      if (republishMs > 0 && !this.closed) {
        // Spaced from the end of the publishes: requests that came while they were delivered wait for one flush.
        this.lastFlush.set(bundleId, this.now());
        if (q.busy === 0 && q.pending.size > 0 && q.timer === undefined) q.timer = setTimeout(() => this.flush(bundleId, q), republishMs);
      }
      if (q.busy === 0 && q.pending.size === 0 && q.unsent.size === 0 && q.timer === undefined && q.expected.size === 0) this.dropQueue(bundleId, q);
    });
  }

  /** Forget `q`, only if it is still the bundle's queue (a newer one may have replaced it meanwhile). */
  private dropQueue(bundleId: string, q: BundleQueue): void {
    if (this.queues.get(bundleId) === q) this.queues.delete(bundleId);
  }

  private async publishBatch(bundleId: string, q: BundleQueue, batch: number[]): Promise<void> {
    const src = this.opts.lookup(bundleId);
    if (!src) throw hubError('HUB_ERR_UNKNOWN_BUNDLE', bundleId);
    const fh = 'blobPath' in src ? await openFileChunks(src.blobPath) : await src.open();
    const inflight = new Set<Promise<void>>();
    try {
      for (const i of batch) {
        if (this.closed) break;
        while (inflight.size >= this.opts.maxInflight) await Promise.race(inflight);
        const data = await this.readChunk(fh, src.manifest, i);
        q.unsent.delete(i);
        const p: Promise<void> = this.opts.publish(topics.chunk(bundleId, i), data).then(
          () => { this.stats.published++; },
          (e: unknown) => { this.stats.failures++; this.opts.logger.warn({ code: 'HUB_ERR_BROKER_UNREACHABLE', bundleId, chunk: i, err: e }, 'chunk publish failed'); },
        ).finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await Promise.all(inflight);
    } finally {
      await fh.close();
    }
  }

  private async readChunk(fh: ChunkReader, m: Manifest, i: number): Promise<Buffer> {
    const { start, end } = chunkRange(m, i);
    const buf = await fh.read(i, start, end);
    // The blob was verified on upload; changed bytes on disk or in the database must not reach devices as "chunk i".
    if (buf.length !== end - start || createHash('sha256').update(buf).digest('hex') !== m.payload.chunkHashes[i]) {
      throw hubError('HUB_ERR_STORE', `blob of bundle ${m.name}@${m.version} does not match chunk ${i}'s hash; re-publish the bundle`);
    }
    return buf;
  }
}
