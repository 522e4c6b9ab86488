/**
 * A minimal POSIX ustar writer and reader (POSIX.1-1988 "ustar Interchange
 * Format", as in pax(1)): regular files only, names up to 100 bytes. Members
 * are streamed from disk when written, and the reader parses headers only, so
 * a 100 MB bundle is listed and located without being read into memory.
 */
import { open } from 'node:fs/promises';
import { bundleError, ioError } from './errors.js';
import { fileChunks } from './file-io.js';

export const BLOCK = 512;
/** 11 octal digits: the largest size a plain ustar header can hold (8 GiB - 1). */
const MAX_SIZE = 0o77777777777;

export interface TarEntry {
  name: string;
  size: number;
  /** Type flag: '0' for a regular file. */
  type: string;
  headerOffset: number;
  dataOffset: number;
}

export type TarMember = { name: string; data: Uint8Array } | { name: string; path: string; size: number };

export function paddingFor(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function writeOctal(h: Buffer, value: number, offset: number, width: number): void {
  // width-1 octal digits then NUL (POSIX ustar numeric fields).
  h.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'ascii');
}

/** One 512-byte ustar header for a regular file. */
export function tarHeader(name: string, size: number, opts: { mtime?: number; mode?: number } = {}): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length === 0 || nameBytes.length > 100) throw bundleError('BUNDLE_ERR_BAD_OPTION', `tar member name must be 1 to 100 bytes: ${JSON.stringify(name)}`);
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_SIZE) throw bundleError('BUNDLE_ERR_BAD_OPTION', `tar member ${name} is ${size} bytes; ustar holds at most ${MAX_SIZE}`);
  const h = Buffer.alloc(BLOCK);
  nameBytes.copy(h, 0);
  writeOctal(h, opts.mode ?? 0o644, 100, 8);
  writeOctal(h, 0, 108, 8); // uid
  writeOctal(h, 0, 116, 8); // gid
  writeOctal(h, size, 124, 12);
  writeOctal(h, Math.max(0, Math.floor(opts.mtime ?? 0)), 136, 12);
  h.write('0', 156, 'ascii'); // typeflag: regular file
  h.write('ustar\0', 257, 'ascii'); // magic
  h.write('00', 263, 'ascii'); // version
  h.write('fleetcast', 265, 'ascii'); // uname
  h.write('fleetcast', 297, 'ascii'); // gname
  // The checksum is computed with its own field set to spaces (POSIX ustar "chksum").
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

function readOctal(h: Buffer, offset: number, width: number, what: string): number {
  const text = h.toString('ascii', offset, offset + width).replace(/[\0 ]+$/g, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `tar header ${what} is not an octal number`);
  return parseInt(text, 8);
}

function cString(h: Buffer, offset: number, width: number): string {
  const end = h.indexOf(0, offset);
  return h.toString('utf8', offset, end === -1 || end > offset + width ? offset + width : end);
}

/**
 * Parse the header block at `at`; null for an all-zero block (end of archive).
 * Throws BUNDLE_ERR_NOT_A_BUNDLE when the block is not a valid ustar header.
 */
export function parseTarHeader(h: Buffer, at: number): TarEntry | null {
  if (h.length !== BLOCK) throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `the tar header at byte ${at} is cut short`);
  if (h.every((b) => b === 0)) return null;
  const magic = h.toString('ascii', 257, 263);
  // POSIX writes "ustar\0"; GNU tar writes "ustar " (with version " \0"): both use this layout.
  if (magic !== 'ustar\0' && magic !== 'ustar ') throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `no ustar header at byte ${at}`);
  const stored = readOctal(h, 148, 8, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  if (sum !== stored) throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `tar header checksum mismatch at byte ${at}`);
  if (h[124] & 0x80) throw bundleError('BUNDLE_ERR_NOT_A_BUNDLE', `tar member at byte ${at} uses a base-256 size (over 8 GiB)`);
  const size = readOctal(h, 124, 12, 'size');
  const prefix = magic === 'ustar\0' ? cString(h, 345, 155) : '';
  const base = cString(h, 0, 100);
  const type = h[156] === 0 ? '0' : String.fromCharCode(h[156]);
  return { name: prefix ? `${prefix}/${base}` : base, size, type, headerOffset: at, dataOffset: at + BLOCK };
}

/** The bytes of a whole archive, in memory (for small bundles and tests). */
export function tarBuffer(members: { name: string; data: Uint8Array }[], opts: { mtime?: number } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    parts.push(tarHeader(m.name, m.data.length, opts), Buffer.from(m.data), Buffer.alloc(paddingFor(m.data.length)));
  }
  parts.push(Buffer.alloc(2 * BLOCK)); // end of archive: two zero blocks
  return Buffer.concat(parts);
}

/** List the entries of an archive held in memory. */
export function listTarBuffer(buf: Buffer): TarEntry[] {
  const out: TarEntry[] = [];
  for (let at = 0; at + BLOCK <= buf.length;) {
    const e = parseTarHeader(buf.subarray(at, at + BLOCK), at);
    if (!e) break;
    out.push(e);
    at = e.dataOffset + e.size + paddingFor(e.size);
  }
  return out;
}

/** List the entries of an archive file by reading its headers only. */
export async function listTarFile(path: string): Promise<TarEntry[]> {
  let fh;
  try { fh = await open(path, 'r'); } catch (e) { throw ioError('cannot open', path, e); }
  try {
    const size = (await fh.stat()).size;
    const out: TarEntry[] = [];
    const h = Buffer.alloc(BLOCK);
    for (let at = 0; at + BLOCK <= size;) {
      await fh.read(h, 0, BLOCK, at);
      const e = parseTarHeader(h, at);
      if (!e) break;
      out.push(e);
      at = e.dataOffset + e.size + paddingFor(e.size);
    }
    return out;
  } finally {
    await fh.close();
  }
}

/**
 * Write an archive to `dst`, streaming members given by path (their size must
 * not change meanwhile), and fsync it so a following rename is durable.
 */
export async function writeTarFile(dst: string, members: TarMember[], opts: { mtime?: number } = {}): Promise<void> {
  let fh;
  try { fh = await open(dst, 'w', 0o644); } catch (e) { throw ioError('cannot create', dst, e); }
  const put = async (b: Uint8Array) => {
    try { for (let off = 0; off < b.length;) off += (await fh.write(b, off, b.length - off)).bytesWritten; } catch (e) { throw ioError('cannot write', dst, e); }
  };
  try {
    for (const m of members) {
      const size = 'data' in m ? m.data.length : m.size;
      await put(tarHeader(m.name, size, opts));
      if ('data' in m) {
        await put(m.data);
      } else {
        let n = 0;
        for await (const b of fileChunks(m.path)) {
          n += b.length;
          if (n > size) break;
          await put(b);
        }
        if (n !== size) throw bundleError('BUNDLE_ERR_IO', `${m.path} changed size while being archived (${n} bytes or more, expected ${size})`);
      }
      await put(Buffer.alloc(paddingFor(size)));
    }
    await put(Buffer.alloc(2 * BLOCK));
    // fsync is refused (EINVAL) by devices and pipes, which have nothing to make durable.
    try { await fh.sync(); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw ioError('cannot write', dst, e); }
  } finally {
    await fh.close();
  }
}
