/**
 * The agent's storage interface (agent/storage.ts), the same cases run against
 * the disk (what a device uses) and memory (what the simulator uses): the agent
 * code above it must not be able to tell them apart where it matters.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diskStorage, observeSyncs, syncDirHandle } from '../../agent/disk-storage.js';
import { MemoryPool, MemoryStorage } from '../../agent/memory-storage.js';
import { StateStore } from '../../agent/state-store.js';
import type { AgentStorage } from '../../agent/storage.js';
import { compressBuffer } from '../../bundles/compress.js';
import { errorCode } from '../../protocol/errors.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff));

interface Kind { name: string; make(): { fs: AgentStorage; root: string } }
const kinds: Kind[] = [
  { name: 'disk', make: () => ({ fs: diskStorage, root: tempDir('fleetcast-storage-') }) },
  { name: 'memory', make: () => { const root = '/sim/dev-1'; return { fs: new MemoryStorage({ root }), root }; } },
];

describe.each(kinds)('agent storage on $name', ({ make }) => {
  it('reads back what an atomic write replaced, null for an absent file, and refuses a write into a missing folder', async () => {
    const { fs, root } = make();
    await fs.makeDir(join(root, 'trust', 'roots'));
    const p = join(root, 'state.json');
    expect(await fs.readText(p)).toBeNull();
    expect(await fs.stat(p)).toBeNull();
    await fs.writeAtomic(p, 'one');
    await fs.writeAtomic(p, Buffer.from('two!'));
    expect(await fs.readText(p)).toBe('two!');
    expect((await fs.read(p))?.equals(Buffer.from('two!'))).toBe(true);
    expect((await fs.stat(p))?.size).toBe(4);
    await expect(fs.writeAtomic(join(root, 'nowhere', 'x.json'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fs.list(root)).sort()).toEqual(['state.json', 'trust']);
    expect(await fs.list(join(root, 'trust'))).toEqual(['roots']);
    expect(await fs.list(join(root, 'absent'))).toEqual([]);
  });

  it('syncs a folder that exists and refuses one that does not', async () => {
    const { fs, root } = make();
    await fs.makeDir(join(root, 'models', 'b1.partial'));
    await fs.syncFolder(join(root, 'models', 'b1.partial'));
    await expect(fs.syncFolder(join(root, 'models', 'gone'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('renames a folder with its files and removes a folder with everything in it', async () => {
    const { fs, root } = make();
    const partial = join(root, 'models', 'b1.partial');
    await fs.makeDir(partial);
    await fs.put(join(partial, 'model.onnx'), bytes(1000, 1));
    await fs.writeAtomic(join(partial, 'manifest.json'), '{}');
    await fs.rename(partial, join(root, 'models', 'b1'));
    expect((await fs.list(join(root, 'models'))).sort()).toEqual(['b1']);
    expect((await fs.hash(join(root, 'models', 'b1', 'model.onnx'))).sha256).toBe(sha(bytes(1000, 1)));
    await expect(fs.rename(join(root, 'models', 'gone'), join(root, 'models', 'b2'))).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.remove(join(root, 'models', 'b1'));
    await fs.remove(join(root, 'models', 'b1')); // absent is fine
    expect(await fs.list(join(root, 'models'))).toEqual([]);
    expect(await fs.stat(join(root, 'models', 'b1', 'model.onnx'))).toBeNull();
  });

  it('stages chunks at their offsets in any order, reads holes as zeros, and keeps them when reopened', async () => {
    const { fs, root } = make();
    await fs.makeDir(join(root, 'staging', 'b1'));
    const p = join(root, 'staging', 'b1', 'payload.zst');
    const h = await fs.openStaging(p, 3000);
    expect(h.fresh).toBe(true);
    await h.write(2000, bytes(1000, 3));
    await h.write(0, bytes(1000, 1));
    const buf = Buffer.alloc(1000);
    expect(await h.read(1000, buf)).toBe(1000);
    expect(buf.equals(Buffer.alloc(1000))).toBe(true);
    expect(await h.read(2500, buf)).toBe(500); // the end of the file
    expect(buf.subarray(0, 500).equals(bytes(1000, 3).subarray(500))).toBe(true);
    await h.close();
    // A resumed fetch: not fresh, earlier chunks still there; a shorter signed length cuts the rest.
    const again = await fs.openStaging(p, 2500);
    expect(again.fresh).toBe(false);
    expect(await again.read(0, buf)).toBe(1000);
    expect(buf.equals(bytes(1000, 1))).toBe(true);
    await again.write(1000, bytes(1000, 2));
    expect(await again.read(2000, buf)).toBe(500);
    expect(buf.subarray(0, 500).equals(bytes(1000, 3).subarray(0, 500))).toBe(true);
    await again.close();
    expect((await fs.stat(p))?.size).toBe(2500);
  });

  it('a staging file removed while open takes writes that go nowhere, as an unlinked file does', async () => {
    const { fs, root } = make();
    await fs.makeDir(join(root, 'staging', 'b1'));
    const p = join(root, 'staging', 'b1', 'payload.zst');
    const h = await fs.openStaging(p, 2000);
    await h.write(0, bytes(1000, 1));
    await fs.remove(join(root, 'staging', 'b1'));
    await h.write(1000, bytes(1000, 2));
    await h.close();
    expect(await fs.stat(p)).toBeNull();
    expect(await fs.list(join(root, 'staging'))).toEqual([]);
  });

  it('decompresses a staged payload into a model file with its raw length and sha256, bounded by maxRawBytes', async () => {
    const { fs, root } = make();
    const raw = bytes(50_000, 5);
    const z = await compressBuffer(raw);
    await fs.makeDir(join(root, 'staging', 'b1'));
    await fs.makeDir(join(root, 'models', 'b1'));
    const payload = join(root, 'staging', 'b1', 'payload.zst');
    const h = await fs.openStaging(payload, z.length);
    await h.write(0, z);
    await h.close();
    const dst = join(root, 'models', 'b1', 'model.onnx');
    let out = 0;
    const r = await fs.decompress(payload, dst, { maxRawBytes: raw.length, onOutput: (n) => { out += n; } });
    expect(r).toEqual({ length: raw.length, sha256: sha(raw) });
    expect(out).toBe(raw.length);
    await fs.seal(dst);
    expect(await fs.hash(dst)).toEqual({ length: raw.length, sha256: sha(raw) });
    const src = await fs.modelSource(dst);
    expect(typeof src === 'string' ? src : sha(src)).toBe(typeof src === 'string' ? dst : sha(raw));
    const small = join(root, 'models', 'b1', 'small.onnx');
    await expect(fs.decompress(payload, small, { maxRawBytes: raw.length - 1 })).rejects.toThrow();
    expect(await fs.stat(small)).toBeNull();
  });

  it('the state store persists and reopens through it', async () => {
    const { fs, root } = make();
    const s = await StateStore.open(root, Date.now, fs);
    await Promise.all(Array.from({ length: 5 }, () => s.update((d) => { d.counter++; })));
    const again = await StateStore.open(root, Date.now, fs);
    expect(again.state.counter).toBe(5);
    expect(again.state.saves).toBe(5);
    expect(await fs.freeBytes(root)).toBeGreaterThan(0);
  });
});

describe('agent storage in memory', () => {
  it('a full device: the state write is AGENT_ERR_DISK_SPACE and a staging write ENOSPC, as on a full disk', async () => {
    const fs = new MemoryStorage({ root: '/sim/dev-1', capacityBytes: 2000 });
    await fs.makeDir('/sim/dev-1/staging');
    await fs.writeAtomic('/sim/dev-1/state.json', bytes(1500, 1));
    expect(await fs.freeBytes()).toBe(500);
    await fs.writeAtomic('/sim/dev-1/state.json', bytes(1900, 1)); // replacing frees the old copy
    const e = await fs.writeAtomic('/sim/dev-1/other.json', bytes(200, 1)).catch((x: unknown) => x);
    expect(errorCode(e)).toBe('AGENT_ERR_DISK_SPACE');
    const h = await fs.openStaging('/sim/dev-1/staging/p', 1000);
    await expect(h.write(0, bytes(1000, 2))).rejects.toMatchObject({ code: 'ENOSPC' });
    fs.capacityBytes = 10_000;
    await h.write(0, bytes(1000, 2));
    expect(fs.usedBytes).toBe(2900);
  });

  it('devices sharing a pool keep byte-identical chunks once, and tampered bytes as they are', async () => {
    const pool = new MemoryPool();
    const devs = [1, 2, 3].map((i) => new MemoryStorage({ root: `/sim/dev-${i}`, pool }));
    const chunk = bytes(4096, 9);
    const tampered = Buffer.from(chunk);
    tampered[100] ^= 1;
    for (const [i, fs] of devs.entries()) {
      await fs.makeDir(`/sim/dev-${i + 1}/staging/b1`);
      const h = await fs.openStaging(`/sim/dev-${i + 1}/staging/b1/payload.zst`, 4096);
      // The caller's buffer is reused after the write (as a socket's may be): the storage must not keep it.
      const mine = Buffer.from(i === 2 ? tampered : chunk);
      await h.write(0, mine);
      mine.fill(0);
    }
    // One reference copy in the pool; the tampered device's copy is its own.
    expect(pool.bytes).toBe(4096);
    expect((await devs[0].read('/sim/dev-1/staging/b1/payload.zst'))?.equals(chunk)).toBe(true);
    expect((await devs[1].read('/sim/dev-2/staging/b1/payload.zst'))?.equals(chunk)).toBe(true);
    expect((await devs[2].read('/sim/dev-3/staging/b1/payload.zst'))?.equals(tampered)).toBe(true);
    // Each device still counts the bytes as its own, as its disk would.
    expect(devs.map((d) => d.usedBytes)).toEqual([4096, 4096, 4096]);
  });
});

describe('disk fsyncs, observed (the rollout benchmark counts them)', () => {
  it('an atomic write syncs the file, then its folder; a sealed file and a synced folder once each', async () => {
    const root = tempDir('fleetcast-syncs-');
    const seen: string[] = [];
    observeSyncs((kind, path) => seen.push(`${kind} ${path.slice(root.length)}`));
    try {
      await diskStorage.writeAtomic(join(root, 'state.json'), '{}');
      await diskStorage.put(join(root, 'model.onnx'), bytes(100, 2));
      await diskStorage.seal(join(root, 'model.onnx'));
      await diskStorage.syncFolder(root);
    } finally {
      observeSyncs(null);
    }
    await diskStorage.writeAtomic(join(root, 'state.json'), '{}');
    expect(seen).toEqual(['file /state.json', 'dir ', 'file /model.onnx', 'dir ']);
  });
});

describe('a folder fsync that fails', () => {
  const failing = (code: string) => ({ sync: () => Promise.reject(Object.assign(new Error(`${code}: fsync`), { code })) });

  it('Dir_sync_io_error_is_reported', async () => {
    // EIO: the disk may not hold the rename just made; a state reported saved could be lost at a power cut.
    await expect(syncDirHandle(failing('EIO'), '/data')).rejects.toMatchObject({ code: 'EIO' });
    await expect(syncDirHandle(failing('EROFS'), '/data')).rejects.toMatchObject({ code: 'EROFS' });
  });

  it('Dir_sync_unsupported_is_as_durable_as_the_filesystem_allows', async () => {
    for (const code of ['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']) await expect(syncDirHandle(failing(code), '/data')).resolves.toBeUndefined();
  });
});
