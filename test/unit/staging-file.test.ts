/**
 * The staging file's batched writes (agent/staging-file.ts): chunks handed over
 * while a write runs go out together, adjacent ones as one pwritev, and every
 * chunk still lands at its own offset, in any arrival order.
 */
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { StagingFile } from '../../agent/staging-file.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { manifestFor, randomPayload } from '../helpers/hub-fixtures.js';

afterAll(() => cleanupTempDirs());
afterEach(() => { vi.restoreAllMocks(); });

/** The FileHandle class's prototype, whose write calls the test counts. */
async function fileHandleProto(): Promise<{ write: (...a: unknown[]) => unknown; writev: (...a: unknown[]) => unknown }> {
  const fh = await open(join(tempDir(), 'probe'), 'w');
  await fh.close();
  return Object.getPrototypeOf(fh);
}

describe('staging file writes', () => {
  it('18 chunks handed over at once go to the disk in one batched write, each at its offset', async () => {
    const proto = await fileHandleProto();
    const writes = vi.spyOn(proto, 'write');
    const writevs = vi.spyOn(proto, 'writev');
    const payload = randomPayload(18 * 1024 - 100);
    const m = manifestFor(payload, 1024);
    const f = await StagingFile.open(join(tempDir(), 'payload.zst'), m);
    await Promise.all(Array.from({ length: 18 }, (_, i) => f.writeChunk(i, payload.subarray(i * 1024, (i + 1) * 1024))));
    await f.close();
    expect(readFileSync(f.path).equals(payload)).toBe(true);
    // One submission to the thread pool instead of one per chunk.
    expect(writes.mock.calls.length + writevs.mock.calls.length).toBe(1);
  });

  it('chunks out of order and with gaps land at their offsets; a gap stays a hole until its chunk comes', async () => {
    const payload = randomPayload(10 * 512);
    const m = manifestFor(payload, 512);
    const f = await StagingFile.open(join(tempDir(), 'payload.zst'), m);
    const chunk = (i: number) => payload.subarray(i * 512, (i + 1) * 512);
    const first = [7, 2, 3, 9, 0, 5].map((i) => f.writeChunk(i, chunk(i)));
    await Promise.all(first);
    const onDisk = readFileSync(f.path);
    for (const i of [0, 2, 3, 5, 7, 9]) expect(onDisk.subarray(i * 512, (i + 1) * 512).equals(chunk(i))).toBe(true);
    expect(onDisk.subarray(512, 1024).every((b) => b === 0)).toBe(true);
    // Handed over after the first batch finished: a new batch starts, nothing is left queued.
    await Promise.all([1, 4, 6, 8].map((i) => f.writeChunk(i, chunk(i))));
    await f.close();
    expect(readFileSync(f.path).equals(payload)).toBe(true);
  });

  it('a failed batch rejects exactly the chunks it carried', async () => {
    const proto = await fileHandleProto();
    const payload = randomPayload(4 * 256);
    const m = manifestFor(payload, 256);
    const f = await StagingFile.open(join(tempDir(), 'payload.zst'), m);
    const real = proto.writev;
    let calls = 0;
    vi.spyOn(proto, 'writev').mockImplementation(function (this: unknown, ...a: unknown[]) {
      // The second submission (chunks 2 and 3, one run; chunk 0 is a run of its own) fails as on a full disk.
      if (++calls === 2) return Promise.reject(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
      return real.apply(this, a);
    });
    const p0 = f.writeChunk(0, payload.subarray(0, 256));
    const later = [2, 3].map((i) => f.writeChunk(i, payload.subarray(i * 256, (i + 1) * 256)).then(() => 'ok', (e: NodeJS.ErrnoException) => e.code));
    await expect(p0).resolves.toBeUndefined();
    expect(await Promise.all(later)).toEqual(['ENOSPC', 'ENOSPC']);
    await f.writeChunk(1, payload.subarray(256, 512));
    await f.close();
    expect(readFileSync(f.path).subarray(0, 512).equals(payload.subarray(0, 512))).toBe(true);
  });
});
