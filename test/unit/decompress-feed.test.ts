/**
 * bundles/decompress-feed.ts: the agent decompresses a payload while its chunks
 * arrive, each fed as it comes. The same limits hold as for any other
 * decompression (a bomb stops at maxRawBytes, corrupt or truncated input is
 * refused with its code), the output is exactly what decompressing the whole
 * buffer gives, and the caller's memory stays bounded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compressBuffer, compressStream, MAX_OPEN_STREAMS, zstdStreamsOpen } from '../../bundles/compress.js';
import { openDecompressFeed } from '../../bundles/decompress-feed.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Model-like bytes: incompressible stretches and runs of zeros. */
function modelLike(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let off = 0; off < size; off += 128 * 1024) randomBytes(64 * 1024).copy(b, off);
  return b;
}

/** Feed `z` in `chunk`-byte pieces, as an agent hands over verified chunks. */
function feed(t: ReturnType<typeof openDecompressFeed>, z: Buffer, chunk: number): void {
  for (let off = 0; off < z.length; off += chunk) expect(t.write(z.subarray(off, off + chunk))).toBe(true);
}

describe('decompression fed as chunks arrive', () => {
  it('writes exactly the raw bytes, with their length and sha256, from chunks handed over in order', async () => {
    const raw = modelLike(3 * MiB);
    const z = await compressBuffer(raw);
    const dst = join(tempDir(), 'model.onnx');
    const t = openDecompressFeed(dst, { maxRawBytes: raw.length });
    // A reused buffer, as a fetch reading chunks back from its staging file hands over: each write is copied.
    const buf = Buffer.alloc(64 * 1024);
    for (let off = 0; off < z.length; off += buf.length) {
      const n = z.copy(buf, 0, off, off + buf.length);
      expect(t.write(buf.subarray(0, n))).toBe(true);
      buf.fill(0xee);
    }
    expect(await t.end()).toEqual({ length: raw.length, sha256: sha(raw) });
    expect(zstdStreamsOpen()).toBe(0);
    expect(readFileSync(dst).equals(raw)).toBe(true);
    expect(statSync(dst).mode & 0o777).toBe(0o600);
  });

  it('Streamed_decompression_bomb_stops_at_the_limit: 50 MB of zeros against a 1 MB limit is BUNDLE_ERR_RAW_SIZE, and at most the limit reaches the file', async () => {
    const zeros = Buffer.alloc(MiB);
    const parts: Buffer[] = [];
    await compressStream((function* () { for (let i = 0; i < 50; i++) yield zeros; })(), (b) => parts.push(Buffer.from(b)));
    const bomb = Buffer.concat(parts);
    const dst = join(tempDir(), 'model.onnx');
    const t = openDecompressFeed(dst, { maxRawBytes: MiB });
    for (let off = 0; off < bomb.length; off += 4096) t.write(bomb.subarray(off, off + 4096));
    await expect(t.end()).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_RAW_SIZE' }));
    expect(statSync(dst).size).toBeLessThanOrEqual(MiB);
    expect(zstdStreamsOpen()).toBe(0);
  });

  it('corrupt and truncated input is BUNDLE_ERR_DECOMPRESS', async () => {
    const raw = modelLike(MiB);
    const z = await compressBuffer(raw);
    // (A changed byte inside a block may still decode: the raw sha256 the agent checks afterwards catches that.)
    for (const [what, bytes] of Object.entries({ garbage: randomBytes(5000), truncated: z.subarray(0, z.length >> 1), 'trailing junk': Buffer.concat([z, Buffer.from('not a frame')]) })) {
      const t = openDecompressFeed(join(tempDir(), 'model.onnx'), { maxRawBytes: 10 * MiB });
      feed(t, bytes, 32 * 1024);
      await expect(t.end(), what).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_DECOMPRESS' }));
    }
    // Every failed stream gave its slot back (MAX_OPEN_STREAMS per process).
    expect(zstdStreamsOpen()).toBe(0);
  });

  it('takes no more than maxInFlight bytes ahead of the worker: write says false and takes nothing', async () => {
    const z = await compressBuffer(modelLike(2 * MiB));
    const t = openDecompressFeed(join(tempDir(), 'model.onnx'), { maxRawBytes: 4 * MiB, maxInFlight: 256 * 1024 });
    // Synchronously, nothing has been decompressed yet: the bound is reached after 256 KiB.
    let taken = 0;
    for (let off = 0; off < z.length; off += 64 * 1024) if (t.write(z.subarray(off, off + 64 * 1024))) taken += 64 * 1024; else break;
    expect(taken).toBe(256 * 1024);
    await t.abort();
    await expect(t.end()).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_DECOMPRESS' }));
    expect(zstdStreamsOpen()).toBe(0);
  });

  it('Disk_full_feed_gives_its_zstd_stream_back: a model write that finds the disk full is BUNDLE_ERR_IO (errno ENOSPC) and the stream slot is released', async () => {
    // More output than the feed lets wait for the disk (8 MiB): the failed writes are seen while it still decompresses.
    const raw = modelLike(12 * MiB);
    const z = await compressBuffer(raw);
    // More failed runs than there are slots: a slot kept by each would leave every later decompression waiting forever.
    for (let i = 0; i < MAX_OPEN_STREAMS + 1; i++) {
      // /dev/full: the kernel's own ENOSPC on every write.
      const t = openDecompressFeed('/dev/full', { maxRawBytes: raw.length });
      feed(t, z, 256 * 1024);
      await expect(t.end()).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_IO', details: expect.objectContaining({ errno: 'ENOSPC' }) }));
      expect(zstdStreamsOpen()).toBe(0);
    }
  }, 60_000);

  it('Compressible_chunk_keeps_output_waiting_for_the_disk_bounded: one small chunk that expands to 32 MiB (a model of zeros) holds at most ~8 MiB of output in memory', async () => {
    const raw = Buffer.alloc(32 * MiB);
    const z = await compressBuffer(raw);
    expect(z.length).toBeLessThan(64 * 1024);
    // Bytes handed to the disk asynchronously and not yet written: the copies the feed holds in memory.
    const probe = await open(join(tempDir(), 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<{ bytesWritten: number }> };
    await probe.close();
    const original = proto.write;
    let held = 0;
    let peak = 0;
    proto.write = function (this: unknown, ...a: unknown[]) {
      const n = (a[2] as number | undefined) ?? (a[0] as Uint8Array).length;
      held += n;
      peak = Math.max(peak, held);
      return original.apply(this, a).finally(() => { held -= n; });
    };
    try {
      const dst = join(tempDir(), 'model.onnx');
      const t = openDecompressFeed(dst, { maxRawBytes: raw.length });
      expect(t.write(z)).toBe(true);
      expect(await t.end()).toEqual({ length: raw.length, sha256: sha(raw) });
      expect(statSync(dst).size).toBe(raw.length);
    } finally {
      proto.write = original;
    }
    expect(peak).toBeLessThanOrEqual(8 * MiB + 256 * 1024);
    expect(zstdStreamsOpen()).toBe(0);
  }, 60_000);
});
