/**
 * Streaming zstd for model payloads, in bounded memory whatever the model size:
 * input is read in 1 MiB buffers, output is hashed and written as produced.
 * Decompression is zip-bomb safe: it stops as soon as the output passes
 * `maxRawBytes` (or a frame declares more than that), and a stream that does
 * not end on a frame boundary is refused as truncated (see zstd-frames.ts).
 */
import { createHash } from 'node:crypto';
import { isFleetcastError } from '@fleetcast/protocol/errors.js';
import { bundleError } from './errors.js';
import { fileChunks, openFileSink } from './file-io.js';
import { ZstdFrameWalker } from './zstd-frames.js';
import { openCompressor, openDecompressor, type Sink } from './zstd-engine.js';

export { zstdEngine, zstdStreamsOpen, MAX_OPEN_STREAMS, WASM_MAX_LEVEL } from './zstd-engine.js';

export interface CompressResult { length: number; sha256: string; rawLength: number; rawSha256: string }
export interface DecompressResult { length: number; sha256: string }

type Source = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

function checkLevel(level: number | undefined): number {
  const l = level ?? 3;
  if (!Number.isInteger(l) || l < 1 || l > 19) throw bundleError('BUNDLE_ERR_BAD_OPTION', `zstd level must be an integer from 1 to 19, got ${level}`);
  return l;
}

/** Compress a stream of bytes; `sink` receives the compressed bytes in order. */
export async function compressStream(source: Source, sink: Sink, opts: { level?: number } = {}): Promise<CompressResult> {
  const level = checkLevel(opts.level);
  const raw = createHash('sha256');
  const out = createHash('sha256');
  let rawLength = 0;
  let length = 0;
  const z = await openCompressor((b) => { length += b.length; out.update(b); sink(b); }, { level });
  try {
    for await (const chunk of source) {
      rawLength += chunk.length;
      raw.update(chunk);
      await z.write(chunk);
    }
    await z.end();
  } catch (e) {
    z.destroy();
    throw e;
  }
  return { length, sha256: out.digest('hex'), rawLength, rawSha256: raw.digest('hex') };
}

function rawSizeError(maxRawBytes: number, detail: string) {
  return bundleError('BUNDLE_ERR_RAW_SIZE', `${detail}; the limit is ${maxRawBytes} bytes`, { maxRawBytes });
}

/**
 * A push-style bounded decompressor: `write` compressed bytes in order, then
 * `end`. The sink receives at most `maxRawBytes` of output. Throws
 * BUNDLE_ERR_RAW_SIZE past the limit, BUNDLE_ERR_DECOMPRESS for corrupt or
 * truncated input; after a throw the decompressor is released.
 */
export interface BoundedDecompressor {
  write(chunk: Uint8Array): Promise<void>;
  end(): Promise<DecompressResult>;
  destroy(): void;
}

export async function openBoundedDecompressor(opts: { maxRawBytes: number; sink?: Sink }): Promise<BoundedDecompressor> {
  const max = opts.maxRawBytes;
  if (!(max >= 0)) throw bundleError('BUNDLE_ERR_BAD_OPTION', `maxRawBytes must be a number ≥ 0, got ${max}`);
  const hash = createHash('sha256');
  const walker = new ZstdFrameWalker();
  let length = 0;
  let over = false;
  const z = await openDecompressor((b) => {
    length += b.length;
    if (length > max) { over = true; return; }
    hash.update(b);
    opts.sink?.(b);
  }, () => max - length);
  const guard = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      z.destroy();
      if (isFleetcastError(e)) throw e;
      throw bundleError('BUNDLE_ERR_DECOMPRESS', (e as Error)?.message ?? String(e));
    }
  };
  return {
    write: (chunk) => guard(async () => {
      // The walker sees the bytes first: layout errors and declared sizes are caught before decoding.
      walker.push(chunk);
      if (walker.declaredContentSize > max) throw rawSizeError(max, `the zstd frames declare ${walker.declaredContentSize} bytes of content`);
      await z.write(chunk);
      if (over) throw rawSizeError(max, `the output passed ${max} bytes before the input ended`);
    }),
    end: () => guard(async () => {
      walker.finish();
      await z.end();
      if (over) throw rawSizeError(max, `the output passed ${max} bytes`);
      return { length, sha256: hash.digest('hex') };
    }),
    destroy: () => z.destroy(),
  };
}

/** Decompress a stream of zstd bytes (see openBoundedDecompressor for the limits). */
export async function decompressStream(source: Source, opts: { maxRawBytes: number; sink?: Sink }): Promise<DecompressResult> {
  const d = await openBoundedDecompressor(opts);
  try {
    for await (const chunk of source) await d.write(chunk);
  } catch (e) {
    d.destroy();
    throw e;
  }
  return d.end();
}

export async function compressFile(src: string, dst: string, opts: { level?: number } = {}): Promise<CompressResult> {
  const out = openFileSink(dst);
  try {
    const r = await compressStream(fileChunks(src), (b) => out.write(b), opts);
    out.close();
    return r;
  } catch (e) {
    out.discard();
    throw e;
  }
}

export async function compressBuffer(buf: Uint8Array, opts: { level?: number } = {}): Promise<Buffer> {
  const parts: Buffer[] = [];
  await compressStream([buf], (b) => parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength)), opts);
  return Buffer.concat(parts);
}

/**
 * Decompress `src` (optionally a byte range of it) into `dst`. The output goes
 * to a temp file renamed into place on success, so on failure there is no `dst`
 * (or the previous one, untouched) and no partial file.
 */
export async function decompressFile(src: string, dst: string, opts: { maxRawBytes: number; offset?: number; length?: number; onOutput?: (bytes: number) => void }): Promise<DecompressResult> {
  const out = openFileSink(dst);
  try {
    const r = await decompressStream(fileChunks(src, { start: opts.offset, length: opts.length }), { maxRawBytes: opts.maxRawBytes, sink: (b) => { out.write(b); opts.onOutput?.(b.length); } });
    out.close();
    return r;
  } catch (e) {
    out.discard();
    throw e;
  }
}

export async function decompressBuffer(buf: Uint8Array, maxRawBytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await decompressStream([buf], { maxRawBytes, sink: (b) => parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength)) });
  return Buffer.concat(parts);
}
