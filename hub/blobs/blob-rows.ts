/**
 * Bundle blobs as rows of the PostgreSQL store, one BYTEA row per manifest chunk, so serving a chunk
 * reads one row and every hub sharing the database serves every bundle. A blob is written in one
 * transaction, its bundle_blobs row last: a blob is there whole or not at all.
 */
import { open } from 'node:fs/promises';
import type { Db } from '../db/db.js';
import type { BlobStore, ChunkReader } from './blob-store.js';

export class RowBlobStore implements BlobStore {
  constructor(private readonly db: Db) {}

  async put(bundleId: string, src: string, offset: number, length: number, chunkSize: number): Promise<void> {
    // Read before the transaction: it must not wait on the disk while it blocks the store.
    const bytes = Buffer.alloc(length);
    const fh = await open(src, 'r');
    try {
      let off = 0;
      while (off < length) {
        const { bytesRead } = await fh.read(bytes, off, length - off, offset + off);
        if (bytesRead === 0) throw new Error(`${src} ends before ${offset + length} bytes`);
        off += bytesRead;
      }
    } finally { await fh.close(); }
    const put = this.db.prepare('INSERT INTO bundle_chunks (bundle_id, idx, data) VALUES (?, ?, ?) ON CONFLICT (bundle_id, idx) DO UPDATE SET data = excluded.data');
    const done = this.db.prepare('INSERT INTO bundle_blobs (bundle_id, length, chunk_size) VALUES (?, ?, ?) ON CONFLICT (bundle_id) DO NOTHING');
    this.db.transaction(() => {
      const n = Math.max(1, Math.ceil(length / chunkSize));
      for (let i = 0; i < n; i++) put.run(bundleId, i, bytes.subarray(i * chunkSize, Math.min(length, (i + 1) * chunkSize)));
      done.run(bundleId, length, chunkSize);
    })();
  }

  has(bundleId: string): boolean {
    return this.db.prepare('SELECT 1 FROM bundle_blobs WHERE bundle_id = ?').get(bundleId) !== undefined;
  }

  async open(bundleId: string): Promise<ChunkReader> {
    const get = this.db.prepare('SELECT data FROM bundle_chunks WHERE bundle_id = ? AND idx = ?').pluck();
    return {
      async read(index) { return (get.get(bundleId, index) as Buffer | undefined) ?? Buffer.alloc(0); },
      async close() {},
    };
  }
}
