/**
 * Chunk fetch over MQTT (docs/architecture.md "Transfer"): subscribe to the
 * bundle's chunk filter, wait for the SUBACK (so no chunk published in answer
 * can be missed), then publish a ChunkRequest naming exactly the chunks still
 * missing. Every chunk is hash-checked against the signed manifest on arrival
 * and written at its offset into the one staging file (staging-file.ts);
 * staged chunks that still verify are never fetched again (after a reconnect
 * or a restart). The whole-payload sha256 is computed from the verified
 * chunks in index order as they arrive (payload-check.ts), so the staged file
 * is not read again unless chunks came out of order. With no progress for a
 * while the agent asks again for what it lacks, backing off exponentially
 * with jitter so a fleet does not retry in step, and gives up after
 * maxFetchAttempts.
 */
import { chunkCount, type Manifest } from '@fleetcast/protocol/manifest.js';
import { encode, PROTOCOL_VERSION, type ChunkRequest } from '@fleetcast/protocol/messages.js';
import { topics } from '@fleetcast/protocol/topics.js';
import type { BrokerClient } from './broker-client.js';
import { agentError } from './errors.js';
import { payloadCheck, type PayloadCheck, type PayloadCheckFactory } from './payload-check.js';
import { StagingFile } from './staging-file.js';
import { testFreeze } from './test-pause.js';
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
  /** How chunks and the whole payload are checked (default payloadCheck; the simulator shares work). */
  check?: PayloadCheckFactory;
}

/** A fetched payload: the staged file, complete, and the sha256 of its bytes in order. */
export interface FetchedPayload { path: string; sha256: string }

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
  readonly #check: PayloadCheck;
  #file: StagingFile | null = null;
  /** Next chunk index the whole-payload hash needs (chunks before it are appended). */
  #cursor = 0;

  constructor(manifest: Manifest, bundleId: string, ctx: FetchContext) {
    this.#manifest = manifest;
    this.bundleId = bundleId;
    this.#ctx = ctx;
    this.total = chunkCount(manifest);
    this.#check = (ctx.check ?? payloadCheck)(manifest);
  }

  get have(): number { return this.#have.size; }

  /** Fetch every missing chunk into the staging file; resolves with its path and the payload's sha256. */
  async run(): Promise<FetchedPayload> {
    const { store, signal } = this.#ctx;
    await store.storage.makeDir(store.stagingDir(this.bundleId));
    const file = (this.#file = await StagingFile.open(store.payloadFile(this.bundleId), this.#manifest, store.storage).catch((e: NodeJS.ErrnoException) => { throw ioFailure(e, 'opening the staging file'); }));
    try {
      if (!file.fresh) await this.#scanStaged(file);
      this.#ctx.onProgress?.(this.#have.size, this.total);
      if (this.#have.size < this.total) await this.#receive(signal);
      return { path: file.path, sha256: await this.#digest(file) };
    } finally {
      this.#file = null;
      await file.close().catch(() => {});
    }
  }

  async #receive(signal: AbortSignal | undefined): Promise<void> {
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

  /** A chunk arrived on the bundle's chunk topic (any agent's request may have caused it). */
  onChunk(index: number, bytes: Buffer): void {
    const file = this.#file;
    if (this.#done || !file || index >= this.total || this.#have.has(index)) return;
    if (!this.#check.chunk(index, bytes)) { this.#badChunks++; return; }
    // Crash suite: freeze with half the chunks handed to the disk and this one and the rest not
    // (writes handed over finish in libuv's pool while the main thread is stopped; the staging
    // file batches its writes, so it hands over what it still holds first).
    if (this.#have.size === Math.ceil(this.total / 2)) testFreeze('fetching:mid-transfer', () => file.handOverQueued());
    this.#have.add(index);
    this.#windowBytes += bytes.length;
    // In order (the usual case: the hub publishes in index order) the whole-payload
    // hash takes the bytes now; chunks after a gap are read back once at the end.
    if (index === this.#cursor) { this.#check.append(index, bytes); this.#cursor++; }
    const w = file.writeChunk(index, bytes).catch((e: NodeJS.ErrnoException) => {
      this.#have.delete(index);
      this.#writeError ??= ioFailure(e, `writing chunk ${index}`);
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

  /**
   * Resume: every chunk range of the staging file that still matches its signed hash
   * counts as fetched; anything else (a torn or never-flushed write, a file cut short)
   * is fetched again. Leading valid chunks feed the whole-payload hash on the way.
   */
  async #scanStaged(file: StagingFile): Promise<void> {
    const buf = Buffer.allocUnsafe(this.#manifest.payload.chunkSize);
    for (let i = 0; i < this.total; i++) {
      const bytes = await file.readChunk(i, buf).catch(() => null);
      if (!bytes || !this.#check.chunk(i, bytes)) continue;
      this.#have.add(i);
      if (i === this.#cursor) { this.#check.append(i, bytes); this.#cursor++; }
    }
  }

  /**
   * Finish the whole-payload hash: chunks that arrived after a gap are read back from
   * the staging file (and checked again, so a disk that lost them is not mistaken for
   * a bundle whose manifest disagrees with itself).
   */
  async #digest(file: StagingFile): Promise<string> {
    // Only when chunks came out of order: in order (the usual case) nothing is read back, and a chunk-sized
    // buffer per install is garbage a fleet of simulated devices collects 10,000 times over.
    const buf = this.#cursor < this.total ? Buffer.allocUnsafe(this.#manifest.payload.chunkSize) : undefined;
    for (; this.#cursor < this.total; this.#cursor++) {
      const i = this.#cursor;
      const bytes = await file.readChunk(i, buf).catch((e: NodeJS.ErrnoException) => { throw ioFailure(e, `reading chunk ${i} back`); });
      if (!this.#check.chunk(i, bytes)) {
        throw agentError('AGENT_ERR_INTERNAL', `chunk ${i} no longer matches its signed hash when read back from ${file.path} (a disk fault?); the fetch resumes on the next assignment delivery`);
      }
      this.#check.append(i, bytes);
    }
    return this.#check.digest();
  }
}

function ioFailure(e: NodeJS.ErrnoException, what: string) {
  return e.code === 'ENOSPC' ? agentError('AGENT_ERR_DISK_SPACE', `${what}: ${e.message}`) : agentError('AGENT_ERR_INTERNAL', `${what}: ${e.message}`);
}
