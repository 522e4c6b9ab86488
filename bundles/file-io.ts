/**
 * Bounded-memory file access for bundles: read a byte range as a stream of
 * buffers, and write output synchronously as it is produced (the zstd engines
 * hand output to a synchronous sink, so nothing piles up in memory).
 * Every failure is a BUNDLE_ERR_IO naming the path.
 */
import { closeSync, createReadStream, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { ioError } from './errors.js';

export const READ_BUFFER = 1024 * 1024;

/** Read `length` bytes from `start` (default: to the end), in buffers of up to `highWaterMark`. */
export async function* fileChunks(path: string, opts: { start?: number; length?: number; highWaterMark?: number } = {}): AsyncGenerator<Buffer> {
  const start = opts.start ?? 0;
  if (opts.length === 0) return;
  const s = createReadStream(path, {
    start,
    ...(opts.length !== undefined ? { end: start + opts.length - 1 } : {}),
    highWaterMark: opts.highWaterMark ?? READ_BUFFER,
  });
  try {
    for await (const b of s) yield b as Buffer;
  } catch (e) {
    throw ioError('cannot read', path, e);
  } finally {
    s.destroy();
  }
}

export interface FileSink {
  readonly path: string;
  write(bytes: Uint8Array): void;
  /** Flush to disk and close. */
  close(): void;
  /** Close and remove the file (after a failure). */
  discard(): void;
}

export function openFileSink(path: string): FileSink {
  let fd: number | undefined;
  try { fd = openSync(path, 'w', 0o644); } catch (e) { throw ioError('cannot create', path, e); }
  const closeFd = () => { if (fd !== undefined) { const f = fd; fd = undefined; closeSync(f); } };
  return {
    path,
    write(bytes) {
      if (fd === undefined) throw ioError('cannot write', path, new Error('already closed'));
      try {
        for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
      } catch (e) {
        throw ioError('cannot write', path, e);
      }
    },
    close() {
      try {
        if (fd !== undefined) fsyncSync(fd);
        closeFd();
      } catch (e) {
        throw ioError('cannot write', path, e);
      }
    },
    discard() {
      try { closeFd(); } catch { /* the file is removed anyway */ }
      rmSync(path, { force: true });
    },
  };
}

/** A temporary name next to `path` (same directory, so a rename is atomic on POSIX). */
export function tempPathFor(path: string, tag = 'tmp'): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Atomically replace `dst` with `tmp` (POSIX rename(2)); removes `tmp` if that fails. */
export function commitTemp(tmp: string, dst: string): void {
  try {
    renameSync(tmp, dst);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw ioError('cannot write', dst, e);
  }
}
