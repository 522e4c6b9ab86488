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
import { chunkRange } from '../bundles/verify.js';
import type { Manifest } from '../protocol/manifest.js';
import { diskStorage } from './disk-storage.js';
import type { AgentStorage, StagingHandle } from './storage.js';

export class StagingFile {
  readonly path: string;
  /** The file was empty or absent: nothing was staged before, there is nothing to re-verify. */
  readonly fresh: boolean;
  readonly #h: StagingHandle;
  readonly #manifest: Manifest;

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

  /** Write verified chunk `index` at its offset. */
  async writeChunk(index: number, bytes: Uint8Array): Promise<void> {
    await this.#h.write(chunkRange(this.#manifest, index).start, bytes);
  }

  /** Chunk `index` as it is stored now (shorter when the file was cut short under us). */
  async readChunk(index: number, into?: Buffer): Promise<Buffer> {
    const { start, end } = chunkRange(this.#manifest, index);
    const buf = into && into.length >= end - start ? into.subarray(0, end - start) : Buffer.allocUnsafe(end - start);
    return buf.subarray(0, await this.#h.read(start, buf));
  }

  async close(): Promise<void> {
    await this.#h.close();
  }
}
