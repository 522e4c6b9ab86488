/**
 * Where bundle bytes live (the compressed payload exactly as the manifest hashes it), behind one
 * interface: files in the data folder for the embedded default (blob-files.ts), rows of the PostgreSQL
 * store for hubs that share one (blob-rows.ts), so that every hub can serve every bundle's chunks.
 */

/** Reads chunks of one stored blob (a chunk's bytes are checked against the manifest by the caller). */
export interface ChunkReader {
  /** Chunk `index`, which spans [start, end) of the blob. */
  read(index: number, start: number, end: number): Promise<Buffer>;
  close(): Promise<void>;
}

export interface BlobStore {
  /**
   * Copy `length` bytes at `offset` of the file `src` to the bundle's blob, whole or not at all: a crash
   * leaves the old state or the new one, never a torn blob. `chunkSize` is the manifest's.
   */
  put(bundleId: string, src: string, offset: number, length: number, chunkSize: number): Promise<void>;
  has(bundleId: string): boolean;
  open(bundleId: string): Promise<ChunkReader>;
}
