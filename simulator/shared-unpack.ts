/**
 * Simulated devices share one CPU, so decompressing the same payload once per
 * agent would measure the simulator, not the rollout: a real fleet decompresses
 * in parallel on its own cores. Agents in one process therefore share the
 * decompression of identical payloads. Sharing is keyed by the compressed
 * sha256 of a payload the agent has ALREADY verified (every chunk, the whole
 * payload); each agent still gets its own file, and the installer still checks
 * that file's length and raw sha256 against its own signed manifest.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, link, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Unpacker } from '../agent/installer.js';
import { decompressFile } from '../bundles/compress.js';

async function sha256File(path: string): Promise<{ length: number; sha256: string }> {
  const h = createHash('sha256');
  let length = 0;
  for await (const b of createReadStream(path)) { h.update(b as Buffer); length += (b as Buffer).length; }
  return { length, sha256: h.digest('hex') };
}

export function sharedUnpacker(cacheDir: string): Unpacker {
  const done = new Map<string, Promise<string>>();
  return async (payload, dst, manifest) => {
    const key = manifest.payload.compressedSha256;
    let made = done.get(key);
    if (!made) {
      made = (async () => {
        await mkdir(cacheDir, { recursive: true });
        const file = join(cacheDir, `${key}.onnx`);
        await decompressFile(payload, file, { maxRawBytes: manifest.payload.rawLength });
        return file;
      })();
      // A failed decompression is not remembered: the next agent tries again with its own bytes.
      made.catch(() => { if (done.get(key) === made) done.delete(key); });
      done.set(key, made);
    }
    const file = await made;
    await rm(dst, { force: true });
    // A hard link costs no copy; fall back to copying across file systems.
    await link(file, dst).catch(() => copyFile(file, dst));
    return sha256File(dst);
  };
}
