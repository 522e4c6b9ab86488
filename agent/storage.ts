/**
 * Everything the agent keeps, behind one small interface: the state file, the
 * trust and control files, the staging file of a fetch and the installed model
 * folders. A device uses the disk (disk-storage.ts: atomic writes with fsync,
 * pwrite(2) staging, hard-won power-cut behaviour the crash suites check); the
 * simulator runs thousands of agents in one process on memory
 * (memory-storage.ts), where what is byte-identical across devices is kept once.
 *
 * Paths are the same in both (dataDir/state.json, dataDir/models/<id>/…), so the
 * agent code and its layout do not depend on which one it runs on.
 */
import type { DecompressFeed } from '@fleetcast/bundles/decompress-feed.js';
import { isFleetcastError } from '@fleetcast/protocol/errors.js';
import { agentError } from './errors.js';

/** One open staging file: verified chunks written at their offsets, read back on resume. */
export interface StagingHandle {
  /** The file was empty or absent: nothing was staged before, there is nothing to re-verify. */
  readonly fresh: boolean;
  /** Write `bytes` at `offset` (the bytes are the caller's: an implementation that keeps them copies them). */
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** Write adjacent buffers from `offset` on, in order, as one request where the medium has one (disk: pwritev(2)). */
  writeRun(offset: number, buffers: readonly Uint8Array[]): Promise<void>;
  /** Read into `into` from `offset`; returns how many bytes were there (fewer at the end of the file). */
  read(offset: number, into: Buffer): Promise<number>;
  close(): Promise<void>;
}

/** A folder kept open, so that its entries are made durable without opening it for every write (disk: one descriptor). */
export interface KeptFolder {
  /** Make the folder's entries (renames, creations) durable. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface AgentStorage {
  readonly kind: 'disk' | 'memory';
  /** Create a private (0700) folder and its parents. */
  makeDir(dir: string): Promise<void>;
  /** A file's bytes, or null when it does not exist (any other failure throws). */
  read(path: string): Promise<Buffer | null>;
  /** A file's text, or null when it does not exist (any other failure throws). */
  readText(path: string): Promise<string | null>;
  /**
   * Replace a file so that readers and a power cut see the old or the new content, never a mix.
   * `folder`: the file's folder kept open (keepFolder), synced through it after the rename.
   */
  writeAtomic(path: string, data: string | Uint8Array, folder?: KeptFolder): Promise<void>;
  /** Where the medium has folders to sync (disk): open `dir` once for the syncs of the atomic writes into it. */
  keepFolder?(dir: string): Promise<KeptFolder>;
  /** Names in a folder ([] when it does not exist). */
  list(dir: string): Promise<string[]>;
  /** Remove a file or a folder with everything in it; absent is fine. */
  remove(path: string): Promise<void>;
  /** Rename a file or folder, durably (the parent folder is synced). */
  rename(from: string, to: string): Promise<void>;
  stat(path: string): Promise<{ size: number; mtimeMs: number } | null>;
  /** Open (or create) a staging file without truncating what an earlier run staged, and set its length. */
  openStaging(path: string, length: number): Promise<StagingHandle>;
  /**
   * Decompress a staged payload into a model file (bounded by maxRawBytes), returning the raw
   * length and sha256. On failure there is no `dst`.
   */
  decompress(payload: string, dst: string, opts: { maxRawBytes: number; onOutput?: (bytes: number) => void }): Promise<{ length: number; sha256: string }>;
  /**
   * Where the medium has one (disk): a decompression into `dst` fed with the compressed bytes as they
   * arrive (bundles/decompress-feed.ts), bounded by maxRawBytes like `decompress`.
   * `dst` is written as it goes and is not durable until sealed.
   */
  streamDecompress?(dst: string, opts: { maxRawBytes: number }): DecompressFeed;
  /** Store a whole file as given. `shared`: the bytes are immutable and may be kept by reference. */
  put(path: string, bytes: Uint8Array, opts?: { shared?: boolean }): Promise<void>;
  /** Make a just-written file private (0600) and durable. */
  seal(path: string): Promise<void>;
  /** Make a folder's entries (files created or renamed in it) durable. */
  syncFolder(dir: string): Promise<void>;
  /** sha256 and length of a file's bytes. */
  hash(path: string): Promise<{ sha256: string; length: number }>;
  /** What the model runtime loads: a path on disk, the bytes in memory. */
  modelSource(path: string): Promise<string | Uint8Array>;
  /** Bytes that may still be written under `dir`. */
  freeBytes(dir: string): Promise<number>;
  /** Temporary files that interrupted atomic writes left in dataDir; returns how many were removed. */
  removeStaleTemps(dataDir: string): Promise<number>;
}

/** A write that does not fit, as the disk reports it (the agent maps ENOSPC to AGENT_ERR_DISK_SPACE). */
export function noSpaceError(what: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOSPC: no space left on device, ${what}`), { code: 'ENOSPC', errno: -28, syscall: 'write' });
}

/**
 * A no-space or over-quota failure as AGENT_ERR_DISK_SPACE; undefined for any other error. The errno is the
 * error's own, or the one a coded error carries in its details (bundles' BUNDLE_ERR_IO from a decompression).
 */
export function diskFull(e: unknown): Error | undefined {
  const code = isFleetcastError(e) ? e.details.errno : (e as NodeJS.ErrnoException)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return undefined;
  const err = agentError('AGENT_ERR_DISK_SPACE', (e as Error).message, { cause: code });
  err.cause = e;
  return err;
}
