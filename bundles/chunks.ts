/**
 * Transfer chunks: the compressed payload cut into `chunkSize` pieces, each
 * with its own sha256 in the signed manifest, so an agent can check every
 * chunk as it arrives over MQTT and ask again for exactly the bad ones.
 */
import { createHash, type Hash } from 'node:crypto';

/** Splits a byte stream into fixed-size chunks and hashes each one as it completes. */
export class ChunkHasher {
  readonly hashes: string[] = [];
  #h: Hash = createHash('sha256');
  #fill = 0;

  /** `onChunk` sees each chunk's index and hex sha256 as soon as the chunk is complete. */
  constructor(readonly chunkSize: number, private readonly onChunk?: (index: number, sha256: string) => void) {}

  update(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length;) {
      const n = Math.min(this.chunkSize - this.#fill, bytes.length - i);
      this.#h.update(bytes.subarray(i, i + n));
      this.#fill += n;
      i += n;
      if (this.#fill === this.chunkSize) this.#close();
    }
  }

  /** Close the last, shorter chunk (if any) and return every chunk hash. */
  finish(): string[] {
    if (this.#fill > 0) this.#close();
    return this.hashes;
  }

  #close(): void {
    const hex = this.#h.digest('hex');
    this.hashes.push(hex);
    this.#h = createHash('sha256');
    this.#fill = 0;
    this.onChunk?.(this.hashes.length - 1, hex);
  }
}

export function expectedChunkCount(compressedLength: number, chunkSize: number): number {
  return Math.ceil(compressedLength / chunkSize);
}
