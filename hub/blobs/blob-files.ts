/**
 * Bundle blobs as files: dataDir/blobs/<bundleId>.zst, written through a temp file in dataDir/tmp
 * (same filesystem, so the rename is atomic), fsynced, renamed, and the folder fsynced.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, fsyncSync, openSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PRIVATE_FILE_MODE } from '@fleetcast/signing/private-files.js';
import { hubError } from '../errors.js';
import type { BlobStore, ChunkReader } from './blob-store.js';

export class FileBlobStore implements BlobStore {
  constructor(readonly blobDir: string, readonly tmpDir: string) {}

  path(bundleId: string): string {
    return join(this.blobDir, `${bundleId}.zst`);
  }

  /** A fresh path under the temp folder (same filesystem as the blobs, so rename is atomic). */
  tempPath(prefix: string): string {
    return join(this.tmpDir, `${prefix}-${randomBytes(8).toString('hex')}`);
  }

  async put(bundleId: string, src: string, offset: number, length: number): Promise<void> {
    const tmp = this.tempPath(`blob-${bundleId.slice(0, 12)}`);
    try {
      const source = length > 0 ? createReadStream(src, { start: offset, end: offset + length - 1 }) : Readable.from([]);
      await pipeline(source, createWriteStream(tmp, { flags: 'wx', mode: PRIVATE_FILE_MODE }));
      // fsync applies to the file, not the descriptor: a second descriptor flushes what the stream wrote.
      const fh = await open(tmp, 'r+');
      try { await fh.sync(); } finally { await fh.close(); }
      await rename(tmp, this.path(bundleId));
      const d = openSync(this.blobDir, 'r');
      try { fsyncSync(d); } finally { closeSync(d); }
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  has(bundleId: string): boolean {
    return existsSync(this.path(bundleId));
  }

  open(bundleId: string): Promise<ChunkReader> {
    return openFileChunks(this.path(bundleId));
  }
}

/** Chunk reads from a blob file (HUB_ERR_STORE when it cannot be opened). */
export async function openFileChunks(path: string): Promise<ChunkReader> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw hubError('HUB_ERR_STORE', `cannot open blob ${path}: ${(e as NodeJS.ErrnoException).code}`);
  }
  return {
    async read(_index, start, end) {
      const buf = Buffer.allocUnsafe(end - start);
      let off = 0;
      while (off < buf.length) {
        const { bytesRead } = await fh.read(buf, off, buf.length - off, start + off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      return off === buf.length ? buf : buf.subarray(0, off);
    },
    close: () => fh.close(),
  };
}
