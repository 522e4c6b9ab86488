/**
 * The agent's storage on a real device's disk (storage.ts). Writes are made so
 * a power cut at any instant leaves either the old or the new file: write a temp
 * file, fsync it, rename it over the old one (atomic on POSIX), fsync the
 * folder so the rename itself is durable. The crash suites kill the real agent
 * in every install state and rely on exactly these syncs.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { decompressFile } from '@fleetcast/bundles/compress.js';
import { openDecompressFeed } from '@fleetcast/bundles/decompress-feed.js';
import { makePrivateDir } from '@fleetcast/signing/private-files.js';
import { diskFull, type AgentStorage, type KeptFolder, type StagingHandle } from './storage.js';

export { diskFull } from './storage.js';

const TEMP_MARK = '.tmp-';

/** What an fsync made durable: a whole file's bytes, or a folder's entries (renames, creations). */
export type SyncKind = 'file' | 'dir';
/** Told of every fsync this storage makes, with how long it took (the rollout benchmark's breakdown). */
export type SyncObserver = (kind: SyncKind, path: string, ms: number) => void;
let syncObserver: SyncObserver | null = null;

/** Observe every fsync from now on (null stops); one observer at a time. */
export function observeSyncs(o: SyncObserver | null): void { syncObserver = o; }

async function syncHandle(fh: Pick<FileHandle, 'sync'>, kind: SyncKind, path: string): Promise<void> {
  const o = syncObserver;
  if (!o) return fh.sync();
  const t = performance.now();
  await fh.sync();
  o(kind, path, performance.now() - t);
}

/**
 * Write `data` to `path` so that readers see the old or the new content, never a mix.
 * A failed write removes its temporary file (a full disk must not fill up further
 * with half-written copies) and a full disk is reported as AGENT_ERR_DISK_SPACE.
 */
export async function atomicWrite(path: string, data: string | Uint8Array, folder?: KeptFolder): Promise<void> {
  const tmp = `${path}${TEMP_MARK}${process.pid}`;
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await syncHandle(fh, 'file', path);
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw diskFull(e) ?? e;
  }
  if (folder) await folder.sync();
  else await fsyncDir(join(path, '..'));
}

/**
 * Temporary files that atomic writes of an earlier run left behind (killed, or
 * failed before their clean-up): in dataDir, trust/, trust/roots/ and each model
 * folder. Returns how many were removed.
 */
export async function removeStaleTemps(dataDir: string): Promise<number> {
  let removed = 0;
  const sweep = async (dir: string, depth: number): Promise<void> => {
    let entries;
    try { entries = await readdir(dir, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isFile() && /\.tmp-[0-9]+$/.test(e.name)) { await rm(p, { force: true }); removed++; }
      // Staging keeps its partial payloads on purpose (resumable fetches); it is not swept.
      else if (e.isDirectory() && depth > 0 && e.name !== 'staging') await sweep(p, depth - 1);
    }
  };
  await sweep(dataDir, 2);
  return removed;
}

export async function sha256File(path: string): Promise<{ sha256: string; length: number }> {
  const h = createHash('sha256');
  let length = 0;
  for await (const b of createReadStream(path)) { h.update(b as Buffer); length += (b as Buffer).length; }
  return { sha256: h.digest('hex'), length };
}

/** fsync a directory so renames and creations inside it survive a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await syncDirHandle(fh, dir);
  } finally {
    await fh.close();
  }
}

/**
 * What a filesystem answers when it cannot fsync a directory at all (some network and FUSE filesystems): the rename is
 * then as durable as that filesystem allows. Any other failure (EIO above all) means the disk may not hold what was
 * just written, and is the caller's to hear: swallowing it would report a state as saved that a power cut can lose.
 */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/** @internal exported for the test that feeds it a failing handle. */
export async function syncDirHandle(fh: Pick<FileHandle, 'sync'>, dir: string): Promise<void> {
  try {
    await syncHandle(fh, 'dir', dir);
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
  }
}

/**
 * A folder opened once for the syncs of every atomic write into it (the state file's, the trust checkpoint's): two
 * file operations fewer per write, each a trip through libuv's threadpool while predictions are being served.
 * Its owner closes it; the folder must stay the same one (dataDir and trust/ are never replaced while the agent runs).
 */
async function keepFolder(dir: string): Promise<KeptFolder> {
  const fh = await open(dir, 'r');
  return { sync: () => syncDirHandle(fh, dir), close: () => fh.close() };
}

/**
 * The staging file on disk: one descriptor, pwrite(2) at each chunk's offset. Nothing
 * here calls fsync: no state claims these bytes are durable (staging-file.ts says why).
 */
async function openDiskStaging(path: string, length: number): Promise<StagingHandle> {
  // O_CREAT without O_TRUNC: a resumed fetch keeps its chunks. Not O_APPEND: Linux
  // ignores the position of pwrite(2) on files opened with it.
  const fh: FileHandle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  let size: number;
  try {
    size = (await fh.stat()).size;
    // Longer (another run's leftovers) is cut; shorter grows as a hole, which reads as zeros.
    if (size !== length) await fh.truncate(length);
  } catch (e) {
    await fh.close();
    throw e;
  }
  return {
    fresh: size === 0,
    async write(offset, bytes) {
      for (let off = 0; off < bytes.length;) {
        const { bytesWritten } = await fh.write(bytes, off, bytes.length - off, offset + off);
        off += bytesWritten;
      }
    },
    async writeRun(offset, buffers) {
      let rest = [...buffers];
      while (rest.length) {
        const { bytesWritten } = await fh.writev(rest, offset);
        if (bytesWritten === 0) throw Object.assign(new Error(`pwritev wrote nothing at offset ${offset} of ${path}`), { code: 'EIO' });
        offset += bytesWritten;
        rest = skipBytes(rest, bytesWritten);
      }
    },
    async read(offset, into) {
      let got = 0;
      while (got < into.length) {
        const { bytesRead } = await fh.read(into, got, into.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got;
    },
    close: () => fh.close(),
  };
}

export const diskStorage: AgentStorage = {
  kind: 'disk',
  async makeDir(dir) { makePrivateDir(dir); },
  async read(path) {
    try { return await readFile(path); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  },
  async readText(path) { return (await diskStorage.read(path))?.toString('utf8') ?? null; },
  writeAtomic: atomicWrite,
  keepFolder,
  list: (dir) => readdir(dir).catch(() => [] as string[]),
  remove: (path) => rm(path, { recursive: true, force: true }),
  async rename(from, to) {
    await rename(from, to);
    await fsyncDir(dirname(to));
  },
  async stat(path) {
    const s = await stat(path).catch(() => null);
    return s ? { size: s.size, mtimeMs: s.mtimeMs } : null;
  },
  openStaging: openDiskStaging,
  decompress: (payload, dst, opts) => decompressFile(payload, dst, opts),
  streamDecompress: (dst, opts) => openDecompressFeed(dst, opts),
  async put(path, bytes) {
    const fh = await open(path, 'w', 0o600);
    try { await fh.writeFile(bytes); } finally { await fh.close(); }
  },
  async seal(path) {
    const fh = await open(path, 'r+');
    // The decompressor (or a shared unpacker) created the file with the umask's mode: the model is private (0600).
    try { await fh.chmod(0o600); await syncHandle(fh, 'file', path); } finally { await fh.close(); }
  },
  syncFolder: fsyncDir,
  hash: sha256File,
  async modelSource(path) { return path; },
  async freeBytes(dir) {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  },
  removeStaleTemps,
};

/** The buffers after their first `n` bytes (a short pwritev continues where it stopped). */
function skipBytes(buffers: Uint8Array[], n: number): Uint8Array[] {
  let i = 0;
  while (i < buffers.length && n >= buffers[i].length) n -= buffers[i++].length;
  const rest = buffers.slice(i);
  if (n > 0) rest[0] = rest[0].subarray(n);
  return rest;
}
