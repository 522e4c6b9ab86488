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
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { chunkRange } from '../bundles/verify.js';
import type { Manifest } from '../protocol/manifest.js';

interface QueuedWrite { start: number; bytes: Uint8Array; resolve: () => void; reject: (e: unknown) => void }

/** Buffers per pwritev, well under IOV_MAX (1024 on Linux). */
const MAX_IOV = 64;

export class StagingFile {
  readonly path: string;
  /** The file was empty or absent: nothing was staged before, there is nothing to re-verify. */
  readonly fresh: boolean;
  readonly #fh: FileHandle;
  readonly #manifest: Manifest;
  #queued: QueuedWrite[] = [];
  #flushing: Promise<void> | null = null;

  private constructor(path: string, fh: FileHandle, manifest: Manifest, fresh: boolean) {
    this.path = path;
    this.#fh = fh;
    this.#manifest = manifest;
    this.fresh = fresh;
  }

  /** Open (or create) without truncating what an earlier run staged, then set the signed length. */
  static async open(path: string, manifest: Manifest): Promise<StagingFile> {
    // O_CREAT without O_TRUNC: a resumed fetch keeps its chunks. Not O_APPEND: Linux
    // ignores the position of pwrite(2) on files opened with it.
    const fh = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    let size: number;
    try {
      size = (await fh.stat()).size;
      // Longer (another run's leftovers) is cut; shorter grows as a hole, which reads as zeros.
      if (size !== manifest.payload.compressedLength) await fh.truncate(manifest.payload.compressedLength);
    } catch (e) {
      await fh.close();
      throw e;
    }
    return new StagingFile(path, fh, manifest, size === 0);
  }

  /** Write verified chunk `index` at its offset; resolves once its bytes are handed to the kernel. */
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
    let rest = buffers;
    while (rest.length) {
      const { bytesWritten } = await this.#fh.writev(rest, position);
      if (bytesWritten === 0) throw Object.assign(new Error(`pwritev wrote nothing at offset ${position} of ${this.path}`), { code: 'EIO' });
      position += bytesWritten;
      rest = skipBytes(rest, bytesWritten);
    }
  }

  /** Chunk `index` as it is on disk now (shorter when the file was cut short under us). */
  async readChunk(index: number, into?: Buffer): Promise<Buffer> {
    const { start, end } = chunkRange(this.#manifest, index);
    const buf = into && into.length >= end - start ? into.subarray(0, end - start) : Buffer.allocUnsafe(end - start);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.#fh.read(buf, got, buf.length - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  }

  /** Waits for queued writes first (their callers already have their outcome). */
  async close(): Promise<void> {
    await this.#flushing;
    await this.#fh.close();
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

/** The buffers after their first `n` bytes (a short pwritev continues where it stopped). */
function skipBytes(buffers: Uint8Array[], n: number): Uint8Array[] {
  let i = 0;
  while (i < buffers.length && n >= buffers[i].length) n -= buffers[i++].length;
  const rest = buffers.slice(i);
  if (n > 0) rest[0] = rest[0].subarray(n);
  return rest;
}
