/**
 * The baseline for rollout benchmarks: a plain MQTT publish of the same bytes,
 * in the same chunk sizes, at QoS 1 with the same number of publishes in flight,
 * to N plain subscribers on a fresh embedded broker of the same kind. Returns
 * the milliseconds from the first publish until every subscriber holds every
 * chunk.
 *
 * With `durableDir`, the second baseline: what any device must do durably with
 * the bytes it receives. Each subscriber writes every chunk at its offset into
 * its own file (as it arrives, pwrite(2) through libuv's pool like the agent's
 * staging file) and is done once the file is complete and fsynced: a device
 * that is to run the bytes after a power cut must have them on stable storage
 * at least once. Nothing else (no state file, no folder sync, no hash, no load).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { startBroker } from '@fleetcast/hub/broker.js';
import { startLinkProxy } from '@fleetcast/simulator/link-proxy.js';
import { nowMs } from './lib.js';

export async function plainFanout(payload: Buffer, chunkSize: number, inflight: number, subscribers: number, durableDir?: string, linkBytesPerSec = 0): Promise<number> {
  // No access control installed: the baseline measures delivery only.
  const broker = await startBroker({ host: '127.0.0.1', port: 0 });
  // With a link rate, subscribers connect through the same kind of rate-limited relay as the agents (one link each).
  const link = linkBytesPerSec > 0 ? await startLinkProxy(broker.url) : null;
  link?.setRate(linkBytesPerSec);
  const subUrl = link?.url ?? broker.url;
  const chunks = Math.ceil(payload.length / chunkSize);
  const subs: mqtt.MqttClient[] = [];
  const files: FileHandle[] = [];
  try {
    let done = 0;
    let resolveAll!: () => void;
    const all = new Promise<void>((r) => { resolveAll = r; });
    // Connect in groups of 50: a connection storm is not what this measures.
    for (let i = 0; i < subscribers; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, subscribers - i) }, async (_, k) => {
        const c = await mqtt.connectAsync(subUrl, { clientId: `plain-${i + k}`, reconnectPeriod: 0 });
        const got = new Set<number>();
        const fh = durableDir ? await open(join(durableDir, `sub-${i + k}`), 'w', 0o600) : null;
        if (fh) files.push(fh);
        const writes: Promise<unknown>[] = [];
        const finished = () => { if (++done === subscribers) resolveAll(); };
        c.on('message', (topic, bytes) => {
          const idx = Number(topic.slice(topic.lastIndexOf('/') + 1));
          if (got.has(idx)) return;
          got.add(idx);
          if (fh) writes.push(fh.write(bytes, 0, bytes.length, idx * chunkSize));
          if (got.size < chunks) return;
          if (!fh) finished();
          else void Promise.all(writes).then(() => fh.sync()).then(finished, (e: unknown) => { process.stderr.write(`durable baseline: ${(e as Error).message}\n`); });
        });
        await c.subscribeAsync('bench/chunk/+', { qos: 1 });
        subs.push(c);
      }));
    }
    const pub = await mqtt.connectAsync(broker.url, { clientId: 'plain-pub', reconnectPeriod: 0 });
    const t0 = nowMs();
    let next = 0;
    const lane = async () => {
      while (next < chunks) {
        const i = next++;
        await pub.publishAsync(`bench/chunk/${i}`, payload.subarray(i * chunkSize, Math.min(payload.length, (i + 1) * chunkSize)), { qos: 1 });
      }
    };
    await Promise.all(Array.from({ length: inflight }, lane));
    await all;
    const ms = nowMs() - t0;
    await pub.endAsync();
    return ms;
  } finally {
    await Promise.all(subs.map((s) => s.endAsync()));
    await Promise.all(files.map((f) => f.close()));
    await link?.close();
    await broker.close();
  }
}
