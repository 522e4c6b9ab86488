/**
 * The fetch's whole-payload sha256 (agent/fetcher.ts): chunks in index order are
 * hashed as they arrive; chunks after a gap are read back from the staging file
 * once the gap is filled. Both give the payload's own sha256, and the read-back
 * (the only path that needs a read buffer) still checks each chunk it reads.
 * The broker is a unit seam here; storage is the simulator's in-memory one.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { BrokerClient } from '../../agent/broker-client.js';
import { ChunkFetch } from '../../agent/fetcher.js';
import { MemoryStorage } from '../../agent/memory-storage.js';
import { StateStore } from '../../agent/state-store.js';
import { manifestFor, randomPayload } from '../helpers/hub-fixtures.js';

const CHUNK = 1024;
const payload = randomPayload(5 * CHUNK + 300);
const manifest = manifestFor(payload, CHUNK);
const BUNDLE = 'b'.repeat(64);
const chunk = (i: number) => Buffer.from(payload.subarray(i * CHUNK, (i + 1) * CHUNK));

/** A connected broker that records chunk requests; the test delivers the chunks itself. */
function broker(onRequest: () => void): BrokerClient {
  return {
    connected: true,
    async subscribe() {}, async unsubscribe() {},
    async publish() { onRequest(); },
    onMessage() {}, onConnect() {}, onDisconnect() {}, async end() {},
  };
}

/** In-memory storage whose staging files record which chunks are read back. */
function recordingReads(): { storage: MemoryStorage; reads: number[] } {
  const storage = new MemoryStorage({ root: '/dev-a' });
  const reads: number[] = [];
  const open = storage.openStaging.bind(storage);
  storage.openStaging = async (path, length) => {
    const h = await open(path, length);
    return { ...h, read: async (offset, into) => { reads.push(offset / CHUNK); return h.read(offset, into); } };
  };
  return { storage, reads };
}

/** Fetch with chunks delivered in `order` once the request is out; resolves with the fetch's digest. */
async function fetchInOrder(order: number[], storage: MemoryStorage): Promise<string> {
  const store = await StateStore.open('/dev-a', Date.now, storage);
  let f!: ChunkFetch;
  const client = broker(() => { queueMicrotask(() => { for (const i of order) f.onChunk(i, chunk(i)); }); });
  f = new ChunkFetch(manifest, BUNDLE, {
    client, deviceId: 'dev-a', store,
    settings: { chunkTimeoutMs: 60_000, maxFetchAttempts: 3, maxBackoffMs: 60_000, backoffJitter: 0 },
  });
  return (await f.run()).sha256;
}

describe('chunk fetch digest', () => {
  const want = createHash('sha256').update(payload).digest('hex');

  it('Chunk_fetch_digest_in_order: chunks in index order give the payload sha256 without reading the staging file back', async () => {
    const { storage, reads } = recordingReads();
    expect(await fetchInOrder([0, 1, 2, 3, 4, 5], storage)).toBe(want);
    expect(reads).toEqual([]);
  });

  it('Chunk_fetch_digest_out_of_order: chunks after a gap are read back once and give the payload sha256', async () => {
    const { storage, reads } = recordingReads();
    expect(await fetchInOrder([0, 3, 5, 1, 4, 2], storage)).toBe(want);
    // 0, 1 and 2 each came when the hash had reached them; 3, 4 and 5 came before the gap closed and are read back.
    expect(reads).toEqual([3, 4, 5]);
  });
});
