/**
 * Decompress a payload while its bytes are still arriving: the caller feeds
 * compressed bytes in order as it gets them (an agent: each chunk as soon as it
 * matched its signed hash) and the output is written to `dst` as it comes. The
 * same bounded decompressor as everywhere (compress.ts: stops past
 * `maxRawBytes`, refuses frames declaring more, refuses a stream that does not
 * end on a frame boundary).
 *
 * Each piece is decompressed when it is fed, between the other work of the
 * event loop: while a transfer waits on the network the loop is idle, and the
 * decompression is done by the time the last chunk arrives. On Node 20 the zstd
 * engine is wasm, on this thread, in slices of at most 64 KiB of input (a chunk
 * of 256 KiB holds the loop ~3 ms, where decompressing the staged file after
 * the fetch held it for ~12 ms per 1 MiB read and added ~60 ms after the last
 * chunk of a 5 MB model); from Node 22.15 node:zlib's zstd runs on libuv's pool.
 * A worker thread was measured too: its start (Node, modules, the wasm
 * instance: 100-140 ms of CPU) cost more than it saved for a 5 MB model on two
 * cores, and a one-core device has no other core to give it.
 *
 * Bounded memory: `write` returns false (and takes nothing) once more than
 * `maxInFlight` fed bytes wait to be decompressed; the caller then gives the
 * feed up (abort) and decompresses from its file later, as without one.
 */
import { writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { openBoundedDecompressor, type BoundedDecompressor, type DecompressResult } from './compress.js';
import { bundleError, ioError } from './errors.js';

export const DEFAULT_MAX_IN_FLIGHT = 32 * 1024 * 1024;

/** Output bytes handed to the disk and not yet written, past which decompression waits for them (or, inside one decode, writes synchronously). */
const MAX_PENDING_OUTPUT = 8 * 1024 * 1024;

export interface DecompressFeed {
  /**
   * Feed the next compressed bytes (copied); false when over the in-flight bound or stopped: nothing was
   * taken. Once the decompression has failed (corrupt, over the limit) the rest is dropped: end() reports it.
   */
  write(bytes: Uint8Array): boolean;
  /** No more input: resolves with the output's length and sha256 once `dst` is written, or rejects with the coded error. */
  end(): Promise<DecompressResult>;
  /** Stop; `dst` is left as it stands (the caller removes it). Resolves once nothing more is written. */
  abort(): Promise<void>;
}

export function openDecompressFeed(dst: string, opts: { maxRawBytes: number; maxInFlight?: number }): DecompressFeed {
  const maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  let inFlight = 0;
  let failure: unknown = null;
  let ended = false;
  let fh: FileHandle | undefined;
  let d: BoundedDecompressor | undefined;
  // The file is written as the output comes, at increasing offsets; not synced (whoever trusts it seals it).
  let at = 0;
  let pendingBytes = 0;
  const pending = new Set<Promise<void>>();
  const sink = (b: Uint8Array) => {
    // Past the bound the output is written now, on this thread, from the engine's own buffer: the sink is
    // called inside one uninterruptible decode of a fed piece, and a small chunk of a very compressible model
    // (large zero tensors) expands to as much as the whole model there, which held as copies would be in memory at once.
    if (pendingBytes + b.length > MAX_PENDING_OUTPUT) {
      const pos = at;
      at += b.length;
      try {
        for (let off = 0; off < b.length;) off += writeSync(fh!.fd, b, off, b.length - off, pos + off);
      } catch (e) { failure ??= ioError('cannot write', dst, e); }
      return;
    }
    // A copy: the wasm engine hands out a view of its heap, reused by the next call.
    const copy = Buffer.from(b);
    const pos = at;
    at += copy.length;
    pendingBytes += copy.length;
    const w: Promise<void> = (async () => {
      for (let off = 0; off < copy.length;) off += (await fh!.write(copy, off, copy.length - off, pos + off)).bytesWritten;
    })().catch((e: unknown) => { failure ??= ioError('cannot write', dst, e); }).finally(() => { pendingBytes -= copy.length; pending.delete(w); });
    pending.add(w);
  };
  const fail = (e: unknown) => { failure ??= e; d?.destroy(); d = undefined; };
  let chain: Promise<void> = (async () => {
    fh = await open(dst, 'w', 0o600).catch((e: unknown) => { throw ioError('cannot create', dst, e); });
    d = await openBoundedDecompressor({ maxRawBytes: opts.maxRawBytes, sink });
  })().catch(fail);
  const settleWrites = () => Promise.allSettled([...pending]);
  const close = async () => { await settleWrites(); const f = fh; fh = undefined; await f?.close().catch(() => {}); };
  return {
    write(bytes) {
      if (ended || inFlight + bytes.length > maxInFlight) return false;
      if (failure) return true;
      inFlight += bytes.length;
      const copy = Buffer.from(bytes);
      chain = chain.then(async () => {
        inFlight -= copy.length;
        if (failure || !d) return;
        await d.write(copy);
        if (pendingBytes > MAX_PENDING_OUTPUT) await settleWrites();
      }).catch(fail);
      return true;
    },
    async end() {
      ended = true;
      await chain;
      try {
        // A failed write of the output leaves the decompressor open: it holds one of the process's few zstd
        // stream slots (zstd-engine.ts) until destroyed, and with them all taken every later decompression waits.
        if (failure || !d) { d?.destroy(); d = undefined; throw failure ?? bundleError('BUNDLE_ERR_DECOMPRESS', 'the decompression was stopped'); }
        const r = await d.end().catch((e: unknown) => { d = undefined; throw e; });
        d = undefined;
        await settleWrites();
        if (failure) throw failure;
        return r;
      } finally {
        await close();
      }
    },
    async abort() {
      ended = true;
      failure ??= bundleError('BUNDLE_ERR_DECOMPRESS', 'the decompression was stopped');
      await chain;
      d?.destroy();
      d = undefined;
      await close();
    },
  };
}
