import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listTarBuffer, listTarFile, parseTarHeader, tarBuffer, tarHeader, writeTarFile } from '../../bundles/tar.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const code = (c: string) => expect.objectContaining({ code: c });

describe('ustar', () => {
  it('round-trips members written from memory and from disk, and the system tar lists and extracts them', async () => {
    const dir = tempDir();
    const manifest = Buffer.from(JSON.stringify({ hello: 'world' }));
    const payload = randomBytes(700_001); // not a multiple of 512: exercises padding
    writeFileSync(join(dir, 'payload.bin'), payload);
    const out = join(dir, 'b.tar');
    await writeTarFile(out, [{ name: 'manifest.json', data: manifest }, { name: 'model.onnx.zst', path: join(dir, 'payload.bin'), size: payload.length }], { mtime: 1_700_000_000 });

    const entries = await listTarFile(out);
    expect(entries.map((e) => [e.name, e.size, e.type])).toEqual([['manifest.json', manifest.length, '0'], ['model.onnx.zst', payload.length, '0']]);
    const buf = readFileSync(out);
    expect(buf.length % 512).toBe(0);
    expect(listTarBuffer(buf)).toEqual(entries);
    expect(buf.subarray(entries[1].dataOffset, entries[1].dataOffset + entries[1].size).equals(payload)).toBe(true);
    // The same bytes whether written streaming or in memory.
    expect(tarBuffer([{ name: 'manifest.json', data: manifest }, { name: 'model.onnx.zst', data: payload }], { mtime: 1_700_000_000 }).equals(buf)).toBe(true);

    expect(execFileSync('tar', ['tf', out]).toString()).toBe('manifest.json\nmodel.onnx.zst\n');
    const x = join(dir, 'x');
    execFileSync('mkdir', [x]);
    execFileSync('tar', ['xf', out, '-C', x]);
    expect(readFileSync(join(x, 'model.onnx.zst')).equals(payload)).toBe(true);
    expect(readFileSync(join(x, 'manifest.json')).equals(manifest)).toBe(true);
  });

  it('reads archives made by the system tar (GNU and POSIX formats)', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.txt'), 'alpha');
    writeFileSync(join(dir, 'b.bin'), randomBytes(1234));
    for (const format of ['gnu', 'posix', 'ustar']) {
      const t = join(dir, `${format}.tar`);
      execFileSync('tar', ['cf', t, `--format=${format}`, '-C', dir, 'a.txt', 'b.bin']);
      const names = listTarBuffer(readFileSync(t)).filter((e) => e.type === '0').map((e) => [e.name, e.size]);
      expect(names, format).toEqual([['a.txt', 5], ['b.bin', 1234]]);
    }
  });

  it('refuses a damaged header with BUNDLE_ERR_NOT_A_BUNDLE and bad names or sizes with BUNDLE_ERR_BAD_OPTION', () => {
    const h = tarHeader('manifest.json', 10);
    expect(parseTarHeader(h, 0)).toMatchObject({ name: 'manifest.json', size: 10, dataOffset: 512 });
    const flipped = Buffer.from(h);
    flipped[3] ^= 1; // name byte: checksum no longer matches
    expect(() => parseTarHeader(flipped, 0)).toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    const noMagic = Buffer.from(h);
    noMagic.write('xxxxx', 257);
    expect(() => parseTarHeader(noMagic, 0)).toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    expect(() => parseTarHeader(h.subarray(0, 100), 0)).toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    expect(parseTarHeader(Buffer.alloc(512), 0)).toBeNull();
    expect(() => listTarBuffer(randomBytes(2048))).toThrow(code('BUNDLE_ERR_NOT_A_BUNDLE'));
    expect(() => tarHeader('x'.repeat(101), 1)).toThrow(code('BUNDLE_ERR_BAD_OPTION'));
    expect(() => tarHeader('big', 2 ** 33)).toThrow(code('BUNDLE_ERR_BAD_OPTION'));
  });

  it('writeTarFile names the missing source file', async () => {
    const dir = tempDir();
    await expect(writeTarFile(join(dir, 'o.tar'), [{ name: 'm', path: join(dir, 'nope'), size: 3 }])).rejects.toThrow(expect.objectContaining({ code: 'BUNDLE_ERR_IO', message: expect.stringContaining('nope') }));
  });
});
