/**
 * Simulated devices share one CPU, so decompressing the same payload once per
 * agent would measure the simulator, not the rollout: a real fleet decompresses
 * in parallel on its own cores. Agents in one process therefore share the
 * decompression of identical payloads. Sharing is keyed by the compressed
 * sha256 of a payload the agent has ALREADY verified (every chunk, the whole
 * payload): the same compressed bytes always decompress to the same raw bytes,
 * so the length and raw sha256 measured while decompressing them once hold for
 * every agent, and the installer checks them against its own signed manifest.
 * On disk each agent gets its own directory entry (a hard link) for its model
 * file; in memory (agent/memory-storage.ts) each holds a reference to the one
 * immutable buffer.
 */
import { copyFile, link, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Unpacker } from '@fleetcast/agent/installer.js';
import type { AgentStorage } from '@fleetcast/agent/storage.js';
import { decompressFile, decompressStream } from '@fleetcast/bundles/compress.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';

interface Unpacked { length: number; sha256: string; file?: string; bytes?: Buffer }

export function sharedUnpacker(cacheDir: string): Unpacker {
  const done = new Map<string, Promise<Unpacked>>();
  const start = (payload: string, manifest: Manifest, storage: AgentStorage) => {
    const key = `${storage.kind}:${manifest.payload.compressedSha256}`;
    let made = done.get(key);
    if (!made) {
      const max = manifest.payload.rawLength;
      made = storage.kind === 'memory'
        ? (async () => {
          const src = await storage.read(payload);
          if (!src) throw new Error(`${payload} is missing`);
          const parts: Buffer[] = [];
          const r = await decompressStream([src], { maxRawBytes: max, sink: (b) => parts.push(Buffer.from(b)) });
          return { ...r, bytes: Buffer.concat(parts) };
        })()
        : (async () => {
          await mkdir(cacheDir, { recursive: true });
          const file = join(cacheDir, `${manifest.payload.compressedSha256}.onnx`);
          return { file, ...(await decompressFile(payload, file, { maxRawBytes: max })) };
        })();
      // A failed decompression is not remembered: the next agent tries again with its own bytes.
      made.catch(() => { if (done.get(key) === made) done.delete(key); });
      done.set(key, made);
    }
    return made;
  };
  const unpack: Unpacker = async (payload, dst, manifest, storage) => {
    const { file, bytes, length, sha256 } = await start(payload, manifest, storage);
    if (bytes) {
      await storage.put(dst, bytes, { shared: true });
    } else {
      await rm(dst, { force: true });
      // A hard link costs no copy; fall back to copying across file systems.
      await link(file!, dst).catch(() => copyFile(file!, dst));
    }
    return { length, sha256 };
  };
  // The first agent whose payload verified starts the shared decompression while it persists its next phases.
  unpack.prepare = (payload, manifest, storage) => { start(payload, manifest, storage).catch(() => {}); };
  return unpack;
}
