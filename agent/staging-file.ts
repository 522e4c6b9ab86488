/**
 * The one staging file of a fetch: staging/<bundleId>/payload.zst, sized to
 * the signed compressedLength at open, each verified chunk written at its own
 * offset (pwrite(2) on one descriptor) as it arrives. No file per chunk, no
 * assembly pass: when the last chunk lands the payload is complete in place.
 *
 * Which chunks are present is not recorded anywhere else: after a restart the
 * file itself is re-read and every chunk range is checked against its signed
 * hash, so a torn write, a range the kernel never flushed before a power cut
 * (it reads back as zeros or stale bytes) or a file cut short is simply a
 * chunk to fetch again, and a range that verifies is never fetched again.
 * That is also why nothing here calls fsync: no state claims these bytes are
 * durable. The first durable copy is the decompressed model, fsynced before
 * the rename that installs it (installer #unpack).
 *
 * Writes are batched: one write at a time per file, and the chunks handed over
 * while it runs go out together, each run of adjacent chunks as one pwritev(2).
 * A chunk per write cost one thread-pool submission each, made on the event
 * loop that receives the chunks and serves predictions; under load the loop
 * waited on the pool's lock for each (3,600 of them in the 200-agent rollout
 * bench). Concurrent writes to one file gained nothing: the kernel serialises
 * buffered writes to one inode.
 */
import { chunkRange } from '@fleetcast/bundles/verify.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { diskStorage } from './disk-storage.js';
import type { AgentStorage, StagingHandle } from './storage.js';

interface QueuedWrite { start: number; bytes: Uint8Array; resolve: () => void; reject: (e: unknown) => void }

/** Buffers per pwritev, well under IOV_MAX (1024 on Linux). */
const MAX_IOV = 64;

export class StagingFile {
  readonly path: string;
  /** The file was empty or absent: nothing was staged before, there is nothing to re-verify. */
  readonly fresh: boolean;
  readonly #h: StagingHandle;
  readonly #manifest: Manifest;
  #queued: QueuedWrite[] = [];
  #flushing: Promise<void> | null = null;

  private constructor(path: string, h: StagingHandle, manifest: Manifest) {
    this.path = path;
    this.#h = h;
    this.#manifest = manifest;
    this.fresh = h.fresh;
  }

  /** Open (or create) without truncating what an earlier run staged, then set the signed length (disk: disk-storage.ts). */
  static async open(path: string, manifest: Manifest, storage: AgentStorage = diskStorage): Promise<StagingFile> {
    return new StagingFile(path, await storage.openStaging(path, manifest.payload.compressedLength), manifest);
  }

  /** Write verified chunk `index` at its offset; resolves once its bytes are handed to the storage (on disk: the kernel). */
  writeChunk(index: number, bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queued.push({ start: chunkRange(this.#manifest, index).start, bytes, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  /** Until the queue is empty: take everything queued, write each run of adjacent chunks with one pwritev. */
  async #flush(): Promise<void> {
    // First let writeChunk store this promise; the loop clears it in the same step that finds the
    // queue empty, so a chunk queued after that starts a new flush and none is left behind.
    await null;
    try {
      while (this.#queued.length) {
        const batch = this.#queued;
        this.#queued = [];
        for (const run of runsOf(batch)) await this.#writeRun(run);
      }
    } finally {
      this.#flushing = null;
    }
  }

  /**
   * Submit every queued chunk to the kernel now, not after the write in flight (distinct
   * ranges, so they may run at once). For the crash suite's mid-transfer freeze: the loop
   * stops right after, and what was handed over lands in libuv's pool meanwhile.
   */
  handOverQueued(): void {
    const batch = this.#queued;
    this.#queued = [];
    for (const run of runsOf(batch)) void this.#writeRun(run);
  }

  /** Never rejects: each chunk's own promise gets the outcome. */
  async #writeRun(run: QueuedWrite[]): Promise<void> {
    try {
      await this.#writeAt(run[0].start, run.map((w) => w.bytes));
      for (const w of run) w.resolve();
    } catch (e) {
      for (const w of run) w.reject(e);
    }
  }

  async #writeAt(position: number, buffers: Uint8Array[]): Promise<void> {
    await this.#h.writeRun(position, buffers);
  }

  /** Chunk `index` as it is stored now (shorter when the file was cut short under us). */
  async readChunk(index: number, into?: Buffer): Promise<Buffer> {
    const { start, end } = chunkRange(this.#manifest, index);
    const buf = into && into.length >= end - start ? into.subarray(0, end - start) : Buffer.allocUnsafe(end - start);
    return buf.subarray(0, await this.#h.read(start, buf));
  }

  /** Waits for queued writes first (their callers already have their outcome). */
  async close(): Promise<void> {
    await this.#flushing;
    await this.#h.close();
  }
}

/** Queued writes in offset order, cut into runs of adjacent chunks (at most MAX_IOV each). */
function runsOf(batch: QueuedWrite[]): QueuedWrite[][] {
  const sorted = [...batch].sort((a, b) => a.start - b.start);
  const runs: QueuedWrite[][] = [];
  for (const w of sorted) {
    const run = runs.at(-1);
    const prev = run?.at(-1);
    if (run && prev && run.length < MAX_IOV && w.start === prev.start + prev.bytes.length) run.push(w);
    else runs.push([w]);
  }
  return runs;
}
