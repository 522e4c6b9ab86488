/**
 * Chunk fetch over MQTT (docs/architecture.md "Transfer"): subscribe to the
 * bundle's chunk filter, wait for the SUBACK (so no chunk published in answer
 * can be missed), then publish a ChunkRequest naming exactly the chunks still
 * missing. Every chunk is hash-checked against the signed manifest on arrival
 * and written to staging; staged chunks that still verify are never fetched
 * again (after a reconnect or a restart). With no progress for a while the
 * agent asks again for what it lacks, backing off exponentially with jitter so
 * a fleet does not retry in step, and gives up after maxFetchAttempts.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { verifyChunk } from '../bundles/verify.js';
import { chunkCount, type Manifest } from '../protocol/manifest.js';
import { encode, PROTOCOL_VERSION, type ChunkRequest } from '../protocol/messages.js';
import { topics } from '../protocol/topics.js';
import type { BrokerClient } from './broker-client.js';
import { agentError } from './errors.js';
import type { StateStore } from './state-store.js';

export interface FetchSettings {
  chunkTimeoutMs: number; maxFetchAttempts: number; maxBackoffMs: number; backoffJitter: number;
  /** Slow retrieval (issue #6): abandon a fetch receiving less than this, per second over rateWindowMs while connected. */
  minBytesPerSec?: number; rateWindowMs?: number;
}

export interface FetchContext {
  client: BrokerClient;
  deviceId: string;
  store: StateStore;
  settings: FetchSettings;
  random?: () => number;
  onProgress?: (have: number, total: number) => void;
  /** Every chunk request sent (tests and telemetry). */
  onRequest?: (chunks: readonly number[]) => void;
  signal?: AbortSignal;
}

/** Thrown when a newer assignment (or stop) cancels the fetch; not an install failure. */
export class AbortedError extends Error {
  constructor() { super('aborted'); this.name = 'AbortedError'; }
}

/** Largest request list the protocol allows (chunkRequestSchema max). */
const MAX_REQUEST = 100_000;

export class ChunkFetch {
  readonly bundleId: string;
  readonly total: number;
  readonly #manifest: Manifest;
  readonly #ctx: FetchContext;
  readonly #have = new Set<number>();
  readonly #writes = new Set<Promise<void>>();
  #misses = 0;
  #badChunks = 0;
  #timer: NodeJS.Timeout | null = null;
  #settle: { resolve: () => void; reject: (e: unknown) => void } | null = null;
  #done = false;
  #subscribed = false;
  #writeError: unknown = null;
  #windowBytes = 0;
  #rateTimer: NodeJS.Timeout | null = null;

  constructor(manifest: Manifest, bundleId: string, ctx: FetchContext) {
    this.#manifest = manifest;
    this.bundleId = bundleId;
    this.#ctx = ctx;
    this.total = chunkCount(manifest);
  }

  get have(): number { return this.#have.size; }

  /** Fetch every missing chunk into staging; resolves with the assembled payload path. */
  async run(): Promise<string> {
    const { store, signal } = this.#ctx;
    await mkdir(store.stagingDir(this.bundleId), { recursive: true });
    await this.#scanStaged();
    this.#ctx.onProgress?.(this.#have.size, this.total);
    if (this.#have.size < this.total) {
      const finished = new Promise<void>((resolve, reject) => { this.#settle = { resolve, reject }; });
      const onAbort = () => this.#finish(new AbortedError());
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      else if (this.#ctx.client.connected) void this.#startRound();
      this.#watchRate();
      try {
        await finished;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        this.#clearTimer();
        if (this.#rateTimer) clearInterval(this.#rateTimer);
        if (this.#subscribed) this.#ctx.client.unsubscribe(topics.chunkFilter(this.bundleId)).catch(() => {});
        // Even when cancelled, let chunk writes land: they are what a later resume reuses.
        await Promise.allSettled([...this.#writes]);
      }
      if (this.#writeError) throw this.#writeError;
    }
    return this.#assemble();
  }

  /** A chunk arrived on the bundle's chunk topic (any agent's request may have caused it). */
  onChunk(index: number, bytes: Buffer): void {
    if (this.#done || index >= this.total || this.#have.has(index)) return;
    if (!verifyChunk(this.#manifest, index, bytes)) { this.#badChunks++; return; }
    this.#have.add(index);
    this.#windowBytes += bytes.length;
    const w = writeFile(this.#ctx.store.chunkFile(this.bundleId, index), bytes).catch((e: NodeJS.ErrnoException) => {
      this.#have.delete(index);
      this.#writeError ??= e.code === 'ENOSPC' ? agentError('AGENT_ERR_DISK_SPACE', e.message) : agentError('AGENT_ERR_INTERNAL', `writing chunk ${index}: ${e.message}`);
      this.#finish(this.#writeError);
    });
    this.#writes.add(w);
    void w.finally(() => this.#writes.delete(w));
    this.#misses = 0;
    this.#ctx.onProgress?.(this.#have.size, this.total);
    if (this.#have.size === this.total) this.#finish(null);
    else this.#arm(this.#ctx.settings.chunkTimeoutMs);
  }

  /** After a reconnect: subscriptions are gone (clean session), so subscribe and ask again. */
  onReconnect(): void {
    if (this.#done || !this.#settle) return;
    this.#subscribed = false;
    void this.#startRound();
  }

  async #startRound(): Promise<void> {
    const filter = topics.chunkFilter(this.bundleId);
    try {
      await this.#ctx.client.subscribe(filter);
      this.#subscribed = true;
    } catch {
      // Disconnected while subscribing: onReconnect starts a new round.
      if (!this.#ctx.client.connected) return;
      this.#arm(this.#backoff());
      return;
    }
    this.#request();
  }

  #request(): void {
    if (this.#done) return;
    const missing: number[] = [];
    for (let i = 0; i < this.total && missing.length < MAX_REQUEST; i++) if (!this.#have.has(i)) missing.push(i);
    if (missing.length === 0) return;
    const req: ChunkRequest = { v: PROTOCOL_VERSION, deviceId: this.#ctx.deviceId, bundleId: this.bundleId, chunks: missing };
    this.#ctx.onRequest?.(missing);
    // A lost request is indistinguishable from lost chunks; the no-progress timer covers both.
    this.#ctx.client.publish(topics.device(this.#ctx.deviceId, 'chunk-req'), encode(req)).catch(() => {});
    this.#arm(this.#misses === 0 ? this.#ctx.settings.chunkTimeoutMs : this.#backoff());
  }

  /** min(max, timeout·2^misses) with ±jitter, so a fleet's retries spread out. */
  #backoff(): number {
    const { chunkTimeoutMs, maxBackoffMs, backoffJitter } = this.#ctx.settings;
    const base = Math.min(maxBackoffMs, chunkTimeoutMs * 2 ** this.#misses);
    const r = this.#ctx.random?.() ?? Math.random();
    return Math.max(1, Math.round(base * (1 + backoffJitter * (2 * r - 1))));
  }

  /**
   * An attacker (or a broken link) that trickles bytes just fast enough to dodge the
   * no-progress timeout would hold the install open forever (TUF "slow retrieval"):
   * below the minimum rate over a window, the fetch is abandoned and reported. Time
   * offline does not count against it.
   */
  #watchRate(): void {
    const { minBytesPerSec = 0, rateWindowMs = 60_000 } = this.#ctx.settings;
    if (minBytesPerSec <= 0 || this.#done) return;
    this.#windowBytes = 0;
    this.#rateTimer = setInterval(() => {
      const got = this.#windowBytes;
      this.#windowBytes = 0;
      if (!this.#ctx.client.connected || this.#done) return;
      const rate = (got * 1000) / rateWindowMs;
      if (rate < minBytesPerSec) this.#finish(agentError('AGENT_ERR_FETCH_SLOW', `${Math.round(rate)} bytes/s over the last ${rateWindowMs} ms, minimum ${minBytesPerSec}; ${this.total - this.#have.size} of ${this.total} chunks missing`));
    }, rateWindowMs);
    this.#rateTimer.unref();
  }

  #arm(ms: number): void {
    this.#clearTimer();
    this.#timer = setTimeout(() => this.#onTimeout(), ms);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #onTimeout(): void {
    this.#timer = null;
    if (this.#done) return;
    // Time offline is not a failed attempt: the reconnect handler asks again.
    if (!this.#ctx.client.connected) return;
    this.#misses++;
    if (this.#misses >= this.#ctx.settings.maxFetchAttempts) {
      const missing = this.total - this.#have.size;
      this.#finish(this.#badChunks > 0
        ? agentError('AGENT_ERR_CHUNK_HASH', `${this.#badChunks} chunks failed their hash; ${missing} of ${this.total} still missing`)
        : agentError('AGENT_ERR_FETCH_TIMEOUT', `${missing} of ${this.total} chunks missing after ${this.#misses} requests`));
      return;
    }
    if (!this.#subscribed) void this.#startRound();
    else this.#request();
  }

  #finish(err: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    if (err) this.#settle?.reject(err);
    else this.#settle?.resolve();
  }

  /** Chunks already staged and still hash-valid count as fetched (resume after restart). */
  async #scanStaged(): Promise<void> {
    const dir = this.#ctx.store.stagingDir(this.bundleId);
    for (const name of await readdir(dir)) {
      const m = /^chunk-(0|[1-9][0-9]*)$/.exec(name);
      if (!m) continue;
      const i = Number(m[1]);
      if (i >= this.total) continue;
      const bytes = await readFile(this.#ctx.store.chunkFile(this.bundleId, i)).catch(() => null);
      if (bytes && verifyChunk(this.#manifest, i, bytes)) this.#have.add(i);
    }
  }

  /**
   * Concatenate the chunks, in order, into staging/<id>/payload.zst. No fsync: after a
   * power cut the chunks are still there and the payload is assembled (and hashed) again.
   */
  async #assemble(): Promise<string> {
    const { store } = this.#ctx;
    const out = store.payloadFile(this.bundleId);
    const ws = createWriteStream(out);
    const self = this;
    await pipeline(async function* () {
      for (let i = 0; i < self.total; i++) {
        for await (const b of createReadStream(store.chunkFile(self.bundleId, i))) yield b as Buffer;
      }
    }, ws);
    return out;
  }
}
