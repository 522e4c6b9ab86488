/**
 * Simulated devices share one CPU, so decompressing the same payload once per
 * agent would measure the simulator, not the rollout: a real fleet decompresses
 * in parallel on its own cores. Agents in one process therefore share the
 * decompression of identical payloads. Sharing is keyed by the compressed
 * sha256 of a payload the agent has ALREADY verified (every chunk, the whole
 * payload): the same compressed bytes always decompress to the same raw bytes,
 * so the length and raw sha256 measured while decompressing them once hold for
 * every agent, and the installer checks them against its own signed manifest.
 * Each agent gets its own directory entry (a hard link) for its model file.
 */
import { copyFile, link, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Unpacker } from '@fleetcast/agent/installer.js';
import { decompressFile } from '@fleetcast/bundles/compress.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';

export function sharedUnpacker(cacheDir: string): Unpacker {
  const done = new Map<string, Promise<{ file: string; length: number; sha256: string }>>();
  const start = (payload: string, manifest: Manifest) => {
    const key = manifest.payload.compressedSha256;
    let made = done.get(key);
    if (!made) {
      made = (async () => {
        await mkdir(cacheDir, { recursive: true });
        const file = join(cacheDir, `${key}.onnx`);
        return { file, ...(await decompressFile(payload, file, { maxRawBytes: manifest.payload.rawLength })) };
      })();
      // A failed decompression is not remembered: the next agent tries again with its own bytes.
      made.catch(() => { if (done.get(key) === made) done.delete(key); });
      done.set(key, made);
    }
    return made;
  };
  const unpack: Unpacker = async (payload, dst, manifest) => {
    const { file, length, sha256 } = await start(payload, manifest);
    await rm(dst, { force: true });
    // A hard link costs no copy; fall back to copying across file systems.
    await link(file, dst).catch(() => copyFile(file, dst));
    return { length, sha256 };
  };
  // The first agent whose payload verified starts the shared decompression while it persists its next phases.
  unpack.prepare = (payload, manifest) => { start(payload, manifest).catch(() => {}); };
  return unpack;
}
