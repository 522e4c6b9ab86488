/**
 * Bounded-memory file access for bundles: read a byte range as a stream of
 * buffers, and write output synchronously as it is produced (the zstd engines
 * hand output to a synchronous sink, so nothing piles up in memory).
 * Every failure is a BUNDLE_ERR_IO naming the path.
 */
import { closeSync, createReadStream, fsyncSync, lstatSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { bundleError, ioError, type BundleErrorCode } from './errors.js';

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
  /** Flush to disk, close, and put the file in place. */
  close(): void;
  /** Close and remove what this sink created (after a failure); never removes anything else. */
  discard(): void;
}

/** Whether `path` is absent (true), a regular file (true), or something else: a device, fifo, folder or symlink (false). */
export function regularOrAbsent(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw ioError('cannot inspect', path, e);
  }
}

/**
 * Write a file through a temp file next to it, renamed into place on close
 * (POSIX rename(2) is atomic), so a failure leaves no partial output and the
 * previous file, if any, untouched. A path that is not a regular file (say
 * /dev/null or a fifo) is written in place and never removed or replaced.
 */
export function openFileSink(path: string): FileSink {
  const inPlace = !regularOrAbsent(path);
  const target = inPlace ? path : tempPathFor(path, 'part');
  let fd: number | undefined;
  try { fd = openSync(target, inPlace ? 'w' : 'wx', 0o644); } catch (e) { throw ioError('cannot create', path, e); }
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
        if (fd !== undefined && !inPlace) fsyncSync(fd);
        closeFd();
      } catch (e) {
        if (!inPlace) rmSync(target, { force: true });
        throw ioError('cannot write', path, e);
      }
      if (!inPlace) commitTemp(target, path);
    },
    discard() {
      try { closeFd(); } catch { /* removed below anyway */ }
      if (!inPlace) rmSync(target, { force: true });
    },
  };
}

/** A temporary name next to `path` (same directory, so a rename is atomic on POSIX). */
export function tempPathFor(path: string, tag = 'tmp'): string {
  return join(dirname(path), `.${basename(path)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Atomically replace `dst` with `tmp` (POSIX rename(2)); removes `tmp` if that
 * fails. Refuses to replace anything but a regular file: renaming over
 * /dev/null as root would replace the device itself.
 */
export function commitTemp(tmp: string, dst: string): void {
  if (!regularOrAbsent(dst)) {
    rmSync(tmp, { force: true });
    throw bundleError('BUNDLE_ERR_IO', `${dst} exists and is not a regular file; refusing to replace it`, { path: dst });
  }
  try {
    renameSync(tmp, dst);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw ioError('cannot write', dst, e);
  }
}

/** A small JSON file the operator hands to `bundle build` (schema, golden, example): BUNDLE_ERR_IO if unreadable, `badJson` if not JSON. */
export function readJsonFile(path: string, what: string, badJson: BundleErrorCode): unknown {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw ioError(`cannot read ${what}`, path, e); }
  try { return JSON.parse(text) as unknown; } catch (e) { throw bundleError(badJson, `${path} is not JSON: ${(e as Error).message}`); }
}
