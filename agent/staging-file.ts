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
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { chunkRange } from '@fleetcast/bundles/verify.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';

export class StagingFile {
  readonly path: string;
  /** The file was empty or absent: nothing was staged before, there is nothing to re-verify. */
  readonly fresh: boolean;
  readonly #fh: FileHandle;
  readonly #manifest: Manifest;

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

  /** Write verified chunk `index` at its offset. */
  async writeChunk(index: number, bytes: Uint8Array): Promise<void> {
    const { start } = chunkRange(this.#manifest, index);
    for (let off = 0; off < bytes.length;) {
      const { bytesWritten } = await this.#fh.write(bytes, off, bytes.length - off, start + off);
      off += bytesWritten;
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

  async close(): Promise<void> {
    await this.#fh.close();
  }
}
