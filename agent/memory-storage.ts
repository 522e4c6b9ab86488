/**
 * The agent's storage kept in memory (storage.ts), for the simulator: 10,000
 * agents in one process cannot each write a data folder, a 1 MB staging file
 * and a model file to disk. It behaves as the disk does where the agent can
 * tell: a file written into a folder that does not exist fails with ENOENT, a
 * write past the capacity fails with ENOSPC (the simulator's full-disk fault),
 * a staging file reads back zeros where nothing was written, and everything
 * is gone when the process ends (a simulated power cut keeps what the
 * simulator chooses to keep: the same MemoryStorage object).
 *
 * Byte-identical content across devices is kept once: a MemoryPool shared by a
 * fleet's storages remembers the first copy of each block written at a given
 * place (path relative to the data folder and offset: staging/<bundleId>/
 * payload.zst@65536), and a later write of equal bytes (memcmp) at the same
 * place keeps a reference to it instead of a copy. Bytes that differ (a
 * tampered chunk) are copied as they are. Stored buffers are never modified
 * in place, so sharing them is safe. A pool may also be told of buffers that
 * nobody modifies (`shared`: the simulator's received-chunk references,
 * simulator/shared-verify.ts): bytes that are one of those, by identity, are
 * kept as they are, with no copy and no comparison.
 */
import { createHash } from 'node:crypto';
import { dirname, normalize } from 'node:path';
import { decompressStream } from '@fleetcast/bundles/compress.js';
import { diskFull, noSpaceError, type AgentStorage, type StagingHandle } from './storage.js';

interface MemFile { length: number; blocks: Map<number, Buffer>; mtimeMs: number }

/** Blocks shared by every storage of a fleet, bounded (oldest dropped first: they only save memory). */
export class MemoryPool {
  readonly #blocks = new Map<string, Buffer>();
  readonly #maxBytes: number;
  #held = 0;
  readonly #shared: ((bytes: Uint8Array) => Buffer | undefined) | undefined;

  /** `shared`: the never-modified buffer whose memory `bytes` are (all of it), if any. */
  constructor(maxBytes = 256 * 1024 * 1024, opts: { shared?: (bytes: Uint8Array) => Buffer | undefined } = {}) {
    this.#maxBytes = maxBytes;
    this.#shared = opts.shared;
  }

  get bytes(): number { return this.#held; }

  /** The pool's copy when it holds equal bytes at `key`, else a private copy (kept as the reference if there is none). */
  intern(key: string, bytes: Uint8Array): Buffer {
    const shared = this.#shared?.(bytes);
    if (shared) return shared;
    const ref = this.#blocks.get(key);
    if (ref && ref.length === bytes.length && ref.equals(bytes)) return ref;
    const copy = Buffer.from(bytes);
    if (!ref && copy.length <= this.#maxBytes) {
      this.#blocks.set(key, copy);
      this.#held += copy.length;
      for (const [k, old] of this.#blocks) {
        if (this.#held <= this.#maxBytes) break;
        this.#blocks.delete(k);
        this.#held -= old.length;
      }
    }
    return copy;
  }
}

/** sha256 of immutable whole-file buffers, computed once however many devices hold them. */
const digests = new WeakMap<Buffer, string>();

const enoent = (path: string, syscall: string) => Object.assign(new Error(`ENOENT: no such file or directory, ${syscall} '${path}'`), { code: 'ENOENT', syscall, path });

export interface MemoryStorageOptions {
  /** The data folder: pool keys are paths relative to it. */
  root: string;
  pool?: MemoryPool;
  /** Bytes this device may store (default: unbounded). */
  capacityBytes?: number;
  now?: () => number;
}

export class MemoryStorage implements AgentStorage {
  readonly kind = 'memory' as const;
  /** Settable at any time: lowering it below what is stored makes the next write fail (a full disk). */
  capacityBytes: number;
  readonly #root: string;
  readonly #pool: MemoryPool | undefined;
  readonly #now: () => number;
  readonly #files = new Map<string, MemFile>();
  readonly #dirs = new Set<string>();
  #used = 0;

  constructor(o: MemoryStorageOptions) {
    this.#root = normalize(o.root).replace(/\/+$/, '');
    this.#pool = o.pool;
    this.capacityBytes = o.capacityBytes ?? Number.MAX_SAFE_INTEGER;
    this.#now = o.now ?? Date.now;
  }

  /** Bytes stored by this device (shared blocks counted as its own, as its disk would). */
  get usedBytes(): number { return this.#used; }

  async makeDir(dir: string): Promise<void> {
    for (let d = key(dir); !this.#dirs.has(d); d = dirname(d)) {
      this.#dirs.add(d);
      if (d === dirname(d)) break;
    }
  }

  async read(path: string): Promise<Buffer | null> {
    const f = this.#files.get(key(path));
    return f ? materialize(f) : null;
  }

  async readText(path: string): Promise<string | null> {
    return (await this.read(path))?.toString('utf8') ?? null;
  }

  async writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
    try {
      // A model's manifest.json is the same on every device that installed it: kept once through the pool.
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      this.#replace(path, this.#pool ? this.#pool.intern(`${this.#relative(key(path))}@0`, bytes) : Buffer.from(bytes), 'open');
    } catch (e) {
      throw diskFull(e) ?? e; // as the disk's atomic write reports it
    }
  }

  async list(dir: string): Promise<string[]> {
    const prefix = `${key(dir)}/`;
    const names = new Set<string>();
    for (const p of [...this.#files.keys(), ...this.#dirs]) {
      if (p.startsWith(prefix)) names.add(p.slice(prefix.length).split('/')[0]);
    }
    return [...names];
  }

  async remove(path: string): Promise<void> {
    const k = key(path);
    const prefix = `${k}/`;
    for (const [p, f] of this.#files) if (p === k || p.startsWith(prefix)) { this.#used -= stored(f); this.#files.delete(p); }
    for (const d of this.#dirs) if (d === k || d.startsWith(prefix)) this.#dirs.delete(d);
  }

  async rename(from: string, to: string): Promise<void> {
    const a = key(from);
    const b = key(to);
    if (!this.#files.has(a) && !this.#dirs.has(a)) throw enoent(from, 'rename');
    if (!this.#dirs.has(dirname(b))) throw enoent(to, 'rename');
    if (this.#files.has(b)) await this.remove(b);
    const move = (p: string) => (p === a ? b : `${b}${p.slice(a.length)}`);
    for (const [p, f] of [...this.#files]) if (p === a || p.startsWith(`${a}/`)) { this.#files.delete(p); this.#files.set(move(p), f); }
    for (const d of [...this.#dirs]) if (d === a || d.startsWith(`${a}/`)) { this.#dirs.delete(d); this.#dirs.add(move(d)); }
  }

  async stat(path: string): Promise<{ size: number; mtimeMs: number } | null> {
    const f = this.#files.get(key(path));
    return f ? { size: f.length, mtimeMs: f.mtimeMs } : null;
  }

  async openStaging(path: string, length: number): Promise<StagingHandle> {
    const k = key(path);
    let f = this.#files.get(k);
    if (!f) {
      if (!this.#dirs.has(dirname(k))) throw enoent(path, 'open');
      f = { length: 0, blocks: new Map(), mtimeMs: this.#now() };
      this.#files.set(k, f);
    }
    const file = f;
    const fresh = file.length === 0;
    // Longer (another run's leftovers) is cut; shorter reads as zeros where nothing was written.
    this.#cut(file, length, -1);
    file.length = length;
    const rel = this.#relative(k);
    const handle: StagingHandle = {
      fresh,
      write: async (offset, bytes) => {
        // Removed while open: on disk the descriptor still writes, into a file nobody can reach any more.
        if (this.#files.get(k) !== file) return;
        this.#cut(file, offset, bytes.length);
        this.#reserve(bytes.length, path);
        file.blocks.set(offset, this.#pool ? this.#pool.intern(`${rel}@${offset}`, bytes) : Buffer.from(bytes));
        this.#used += bytes.length;
        file.length = Math.max(file.length, offset + bytes.length);
        file.mtimeMs = this.#now();
      },
      // Block by block at their own offsets, as chunks: the pool shares a chunk's bytes by where they sit.
      writeRun: async (offset, buffers) => { for (const b of buffers) { await handle.write(offset, b); offset += b.length; } },
      read: async (offset, into) => {
        const n = Math.max(0, Math.min(into.length, file.length - offset));
        into.fill(0, 0, n);
        for (const [at, b] of file.blocks) {
          const from = Math.max(at, offset);
          const to = Math.min(at + b.length, offset + n);
          if (from < to) b.copy(into, from - offset, from - at, to - at);
        }
        return n;
      },
      close: async () => {},
    };
    return handle;
  }

  async decompress(payload: string, dst: string, opts: { maxRawBytes: number; onOutput?: (bytes: number) => void }): Promise<{ length: number; sha256: string }> {
    const f = this.#files.get(key(payload));
    if (!f) throw enoent(payload, 'open');
    const parts: Buffer[] = [];
    const r = await decompressStream([materialize(f)], { maxRawBytes: opts.maxRawBytes, sink: (b) => { parts.push(Buffer.from(b)); opts.onOutput?.(b.length); } });
    await this.put(dst, Buffer.concat(parts));
    return r;
  }

  async put(path: string, bytes: Uint8Array, opts: { shared?: boolean } = {}): Promise<void> {
    const k = key(path);
    const b = opts.shared ? asBuffer(bytes) : this.#pool ? this.#pool.intern(`${this.#relative(k)}@0`, bytes) : Buffer.from(bytes);
    this.#replace(path, b, 'open');
  }

  async seal(path: string): Promise<void> {
    if (!this.#files.has(key(path))) throw enoent(path, 'open');
  }

  async syncFolder(dir: string): Promise<void> {
    if (!this.#dirs.has(key(dir))) throw enoent(dir, 'open');
  }

  async hash(path: string): Promise<{ sha256: string; length: number }> {
    const f = this.#files.get(key(path));
    if (!f) throw enoent(path, 'open');
    const b = materialize(f);
    let sha256 = digests.get(b);
    if (sha256 === undefined) {
      sha256 = createHash('sha256').update(b).digest('hex');
      // Only a buffer the file holds as it is (never modified) may be remembered.
      if (f.blocks.get(0) === b) digests.set(b, sha256);
    }
    return { sha256, length: b.length };
  }

  async modelSource(path: string): Promise<Uint8Array> {
    const f = this.#files.get(key(path));
    if (!f) throw enoent(path, 'open');
    return materialize(f);
  }

  async freeBytes(): Promise<number> { return Math.max(0, this.capacityBytes - this.#used); }

  async removeStaleTemps(): Promise<number> { return 0; }

  /** A whole file replaced at once (nothing else can observe a half-written one here). */
  #replace(path: string, bytes: Buffer, syscall: string): void {
    const k = key(path);
    if (!this.#dirs.has(dirname(k))) throw enoent(path, syscall);
    const old = this.#files.get(k);
    this.#reserve(bytes.length - (old ? stored(old) : 0), path);
    if (old) this.#used -= stored(old);
    this.#files.set(k, { length: bytes.length, blocks: new Map([[0, bytes]]), mtimeMs: this.#now() });
    this.#used += bytes.length;
  }

  #reserve(bytes: number, path: string): void {
    if (bytes > 0 && this.#used + bytes > this.capacityBytes) throw noSpaceError(`write '${path}'`);
  }

  /** Drop what lies in [from, from + length) (length < 0: everything from `from` on), keeping the rest of cut blocks. */
  #cut(f: MemFile, from: number, length: number): void {
    const to = length < 0 ? Infinity : from + length;
    if (length === 0) return;
    for (const [at, b] of [...f.blocks]) {
      const end = at + b.length;
      if (end <= from || at >= to) continue;
      f.blocks.delete(at);
      this.#used -= b.length;
      if (at < from) { f.blocks.set(at, b.subarray(0, from - at)); this.#used += from - at; }
      if (end > to) { f.blocks.set(to, b.subarray(to - at)); this.#used += end - to; }
    }
  }

  #relative(k: string): string {
    return k.startsWith(`${this.#root}/`) ? k.slice(this.#root.length + 1) : k;
  }
}

function key(path: string): string {
  const k = normalize(path);
  return k.length > 1 ? k.replace(/\/+$/, '') : k;
}

function stored(f: MemFile): number {
  let n = 0;
  for (const b of f.blocks.values()) n += b.length;
  return n;
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** The file's bytes in one buffer: its own block when it is one whole block, else a zero-filled assembly. */
function materialize(f: MemFile): Buffer {
  const only = f.blocks.get(0);
  if (f.blocks.size === 1 && only && only.length === f.length) return only;
  const out = Buffer.alloc(f.length);
  for (const [at, b] of f.blocks) if (at < f.length) b.copy(out, at, 0, Math.min(b.length, f.length - at));
  return out;
}
