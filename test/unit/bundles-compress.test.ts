import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compressBuffer, compressFile, compressStream, decompressBuffer, decompressFile, decompressStream, MAX_OPEN_STREAMS, zstdEngine, zstdStreamsOpen } from '../../bundles/compress.js';
import { ZstdFrameWalker } from '../../bundles/zstd-frames.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { needProgram } from '../helpers/programs.js';

/** The reference zstd CLI (Debian package zstd), for interoperability and hand-made frames. */
const ZSTD = needProgram('zstd', 'zstd');

afterAll(cleanupTempDirs);

const MiB = 1024 * 1024;
const code = (c: string) => expect.objectContaining({ code: c });
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Model-like bytes: incompressible stretches (weights) and runs (zero padding). */
function modelLike(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  const rnd = randomBytes(64 * 1024);
  for (let off = 0, i = seed; off < size; off += rnd.length, i++) if (i % 3 !== 0) { rnd[i % rnd.length] ^= 0xff; rnd.copy(b, off); }
  return b;
}

/** A file of `mib` MiB written 1 MiB at a time (never held whole in memory). */
function writeBigFile(path: string, mib: number): void {
  const fd = openSync(path, 'w');
  const block = modelLike(MiB);
  for (let i = 0; i < mib; i++) { block[i] ^= 1; writeSync(fd, i % 4 === 0 ? Buffer.alloc(MiB, i) : block); }
  closeSync(fd);
}

describe(`zstd (engine: ${zstdEngine()})`, () => {
  it.skipIf(!ZSTD)('round-trips buffers of many sizes, and interoperates with the zstd CLI both ways', async () => {
    const dir = tempDir();
    for (const size of [0, 1, 1000, 200_000, 3 * MiB + 17]) {
      const raw = modelLike(size, size);
      const z = await compressBuffer(raw);
      expect((await decompressBuffer(z, size)).equals(raw)).toBe(true);
      // Our frames decode with the reference implementation…
      writeFileSync(join(dir, 'ours.zst'), z);
      expect(sha(execFileSync(ZSTD!, ['-d', '-c', join(dir, 'ours.zst')], { maxBuffer: 64 * MiB }))).toBe(sha(raw));
      // …and its frames (with a declared content size and a checksum) decode with ours.
      writeFileSync(join(dir, 'raw.bin'), raw);
      execFileSync(ZSTD!, ['-q', '-f', '-19', '--check', join(dir, 'raw.bin'), '-o', join(dir, 'theirs.zst')]);
      expect((await decompressBuffer(readFileSync(join(dir, 'theirs.zst')), size)).equals(raw)).toBe(true);
    }
  });

  it('round-trips a 100 MB file through the streaming API in bounded memory', async () => {
    const dir = tempDir();
    const src = join(dir, 'big.onnx');
    writeBigFile(src, 100);
    const base = process.memoryUsage().rss;
    let peak = base;
    const sample = () => { peak = Math.max(peak, process.memoryUsage().rss); };
    const out = openSync(join(dir, 'big.zst'), 'w');
    const c = await compressStream((async function* () {
      for await (const b of createReadStream(src, { highWaterMark: MiB })) { sample(); yield b as Buffer; }
    })(), (b) => { writeSync(out, b); }, { level: 3 });
    closeSync(out);
    expect(c.rawLength).toBe(100 * MiB);
    expect(c.length).toBeLessThan(c.rawLength);
    const d = await decompressFile(join(dir, 'big.zst'), join(dir, 'big.out'), { maxRawBytes: 100 * MiB });
    sample();
    expect(d).toEqual({ length: 100 * MiB, sha256: c.rawSha256 });
    expect(execFileSync('sha256sum', [join(dir, 'big.out')]).toString().slice(0, 64)).toBe(c.rawSha256);
    // Reading either file whole would add at least 100 MB; streaming stays well under that.
    expect(peak - base).toBeLessThan(90 * MiB);
  });

  it('bounds how many streams are open at once, queues the rest, and leaks none (also after failures)', async () => {
    const raws = Array.from({ length: 12 }, (_, i) => modelLike(300_000 + i, i));
    const zs = await Promise.all(raws.map((r) => compressBuffer(r)));
    let most = 0;
    const watch = (b: Uint8Array) => { most = Math.max(most, zstdStreamsOpen()); return b; };
    const outs = await Promise.all(zs.map((z) => decompressStream([z], { maxRawBytes: 400_000, sink: watch })));
    outs.forEach((o, i) => expect(o.sha256).toBe(sha(raws[i])));
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(MAX_OPEN_STREAMS);
    const failing = await Promise.allSettled(zs.map((z, i) => decompressBuffer(i % 2 ? z.subarray(0, 1000) : z, i % 3 ? 1000 : 10)));
    expect(failing.every((r) => r.status === 'rejected')).toBe(true);
    expect(zstdStreamsOpen()).toBe(0);
  });

  it('compressFile reports lengths and hashes that match the files', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'm.bin'), modelLike(2 * MiB));
    const r = await compressFile(join(dir, 'm.bin'), join(dir, 'm.zst'));
    const z = readFileSync(join(dir, 'm.zst'));
    expect(r).toEqual({ length: z.length, sha256: sha(z), rawLength: 2 * MiB, rawSha256: sha(readFileSync(join(dir, 'm.bin'))) });
    await expect(compressFile(join(dir, 'nope.bin'), join(dir, 'nope.zst'))).rejects.toThrow(code('BUNDLE_ERR_IO'));
    expect(existsSync(join(dir, 'nope.zst'))).toBe(false);
    await expect(compressBuffer(Buffer.from('x'), { level: 0 })).rejects.toThrow(code('BUNDLE_ERR_BAD_OPTION'));
  });
});

describe('decompression limits (zip-bomb safety)', () => {
  // 50 MB of zeros: fed to the compressor 1 MiB at a time (the same buffer), so
  // neither side of the test ever holds 50 MB.
  async function zerosBomb(): Promise<Buffer> {
    const zeros = Buffer.alloc(MiB);
    const parts: Buffer[] = [];
    await compressStream((function* () { for (let i = 0; i < 50; i++) yield zeros; })(), (b) => parts.push(Buffer.from(b)));
    return Buffer.concat(parts);
  }

  it('a small zstd of 50 MB of zeros with maxRawBytes 1 MB: BUNDLE_ERR_RAW_SIZE, and at most 1 MB ever reaches the caller', async () => {
    const bomb = await zerosBomb();
    expect(bomb.length).toBeLessThan(64 * 1024);
    let delivered = 0;
    // It stops while input remains, not after decoding all 50 MB.
    await expect(decompressStream([bomb], { maxRawBytes: MiB, sink: (b) => { delivered += b.length; } })).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_RAW_SIZE', message: expect.stringContaining('before the input ended') }));
    expect(delivered).toBeLessThanOrEqual(MiB);
    await expect(decompressBuffer(bomb, MiB)).rejects.toThrow(code('BUNDLE_ERR_RAW_SIZE'));
    // The same bytes are fine with a limit that fits them.
    expect((await decompressStream([bomb], { maxRawBytes: 50 * MiB })).length).toBe(50 * MiB);
  });

  it.skipIf(!ZSTD)('a frame that declares more than the limit is refused before any of it is decoded', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'z.bin'), Buffer.alloc(8 * MiB));
    execFileSync(ZSTD!, ['-q', '-f', join(dir, 'z.bin'), '-o', join(dir, 'z.zst')]);
    let delivered = 0;
    await expect(decompressStream([readFileSync(join(dir, 'z.zst'))], { maxRawBytes: MiB, sink: (b) => { delivered += b.length; } })).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_RAW_SIZE', message: expect.stringContaining('declare') }));
    expect(delivered).toBe(0);
  });

  it('decompressFile removes its output when the limit is passed', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bomb.zst'), await zerosBomb());
    await expect(decompressFile(join(dir, 'bomb.zst'), join(dir, 'out.bin'), { maxRawBytes: MiB })).rejects.toThrow(code('BUNDLE_ERR_RAW_SIZE'));
    expect(existsSync(join(dir, 'out.bin'))).toBe(false);
  });
});

/** Set the first block's type to 3 (reserved, RFC 8878 3.1.1.2.2). */
function withReservedBlockType(z: Buffer): Buffer {
  const b = Buffer.from(z);
  const d = b[4];
  const single = (d & 0x20) !== 0;
  const headerEnd = 5 + (single ? 0 : 1) + [0, 1, 2, 4][d & 3] + [single ? 1 : 0, 2, 4, 8][d >> 6];
  b[headerEnd] |= 0x06;
  return b;
}

describe('output files', () => {
  it('are replaced atomically: a failed decompression leaves an existing file as it was and no temp files', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'good.zst'), await compressBuffer(Buffer.from('new model')));
    writeFileSync(join(dir, 'bad.zst'), Buffer.from('not zstd at all'));
    writeFileSync(join(dir, 'model.onnx'), 'old model');
    await expect(decompressFile(join(dir, 'bad.zst'), join(dir, 'model.onnx'), { maxRawBytes: MiB })).rejects.toThrow(code('BUNDLE_ERR_DECOMPRESS'));
    expect(readFileSync(join(dir, 'model.onnx'), 'utf8')).toBe('old model');
    await decompressFile(join(dir, 'good.zst'), join(dir, 'model.onnx'), { maxRawBytes: MiB });
    expect(readFileSync(join(dir, 'model.onnx'), 'utf8')).toBe('new model');
    expect(readdirSync(dir).sort()).toEqual(['bad.zst', 'good.zst', 'model.onnx']);
  });

  it('never removes or replaces what is not a regular file (a folder, a symlink)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'bad.zst'), Buffer.from('not zstd at all'));
    mkdirSync(join(dir, 'folder'));
    await expect(decompressFile(join(dir, 'bad.zst'), join(dir, 'folder'), { maxRawBytes: MiB })).rejects.toThrow(code('BUNDLE_ERR_IO'));
    expect(lstatSync(join(dir, 'folder')).isDirectory()).toBe(true);
    writeFileSync(join(dir, 'target'), 'keep');
    symlinkSync(join(dir, 'target'), join(dir, 'link'));
    await expect(decompressFile(join(dir, 'bad.zst'), join(dir, 'link'), { maxRawBytes: MiB })).rejects.toThrow(code('BUNDLE_ERR_DECOMPRESS'));
    expect(lstatSync(join(dir, 'link')).isSymbolicLink()).toBe(true);
    expect(existsSync(join(dir, 'target'))).toBe(true);
  });
});

describe('corrupt and truncated input', () => {
  it('is BUNDLE_ERR_DECOMPRESS: garbage, a bad magic, a damaged block header, truncation, trailing junk, empty input', async () => {
    const raw = modelLike(600_000);
    const z = await compressBuffer(raw);
    const cases: Record<string, Buffer> = {
      garbage: randomBytes(5000),
      magic: Buffer.concat([Buffer.from([0, 0, 0, 0]), z.subarray(4)]),
      'reserved block type': withReservedBlockType(z),
      'truncated by 1': z.subarray(0, z.length - 1),
      'truncated mid-frame': z.subarray(0, Math.floor(z.length / 2)),
      'header only': z.subarray(0, 6),
      'trailing junk': Buffer.concat([z, Buffer.from('not a frame')]),
      empty: Buffer.alloc(0),
    };
    for (const [what, bytes] of Object.entries(cases)) {
      await expect(decompressBuffer(bytes, 10 * MiB), what).rejects.toThrow(code('BUNDLE_ERR_DECOMPRESS'));
    }
    // Still works afterwards (a failed wasm instance is dropped, not reused).
    expect((await decompressBuffer(z, raw.length)).equals(raw)).toBe(true);
  });

  it.skipIf(!ZSTD || zstdEngine() !== 'zstd-codec')('a frame whose window needs more than the 16 MiB wasm heap: BUNDLE_ERR_DECOMPRESS, and the next stream works', async () => {
    const raw = modelLike(3 * MiB);
    // From stdin the size is unknown, so --long=27 keeps a 128 MiB window in the frame header.
    const z = execFileSync(ZSTD!, ['-q', '--long=27', '-c'], { input: raw, maxBuffer: 16 * MiB });
    await expect(decompressBuffer(z, 4 * MiB)).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_DECOMPRESS', message: expect.stringContaining('16 MiB') }));
    expect(zstdStreamsOpen()).toBe(0);
    expect((await decompressBuffer(await compressBuffer(raw), 4 * MiB)).equals(raw)).toBe(true);
  });

  it('decompressFile removes its output on a corrupt input', async () => {
    const dir = tempDir();
    const z = await compressBuffer(modelLike(300_000));
    writeFileSync(join(dir, 'cut.zst'), z.subarray(0, z.length - 100));
    await expect(decompressFile(join(dir, 'cut.zst'), join(dir, 'cut.out'), { maxRawBytes: MiB })).rejects.toThrow(code('BUNDLE_ERR_DECOMPRESS'));
    expect(existsSync(join(dir, 'cut.out'))).toBe(false);
  });

  it('the frame walker accepts concatenated and skippable frames fed one byte at a time', async () => {
    const a = await compressBuffer(Buffer.from('first frame '));
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18]), Buffer.from([3, 0, 0, 0]), Buffer.from('abc')]);
    const b = await compressBuffer(Buffer.from('second frame'));
    const all = Buffer.concat([a, skippable, b]);
    const w = new ZstdFrameWalker();
    for (const byte of all) w.push(Buffer.from([byte]));
    expect(() => w.finish()).not.toThrow();
    expect((await decompressBuffer(all, 100)).toString()).toBe('first frame second frame');
  });
});
