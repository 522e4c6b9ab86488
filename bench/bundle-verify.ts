/**
 * Verifying a 100 MB bundle the way the hub and agents do
 * (verifyBundleFile with decompress: true: signature, every chunk hash, payload
 * sha256, streamed decompression with the raw length and sha256), against the
 * native tools on the same payload bytes: `sha256sum` then `zstd -d -c > /dev/null`
 * (which checks less: no chunk hashes, no raw hash, no signature). A second
 * baseline adds the raw hash (`zstd -d -c | sha256sum`) for like-for-like work.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { zstdEngine } from '@fleetcast/bundles/compress.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { readBundleBuffer } from '@fleetcast/bundles/read.js';
import { verifyBundleFile } from '@fleetcast/bundles/verify.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { loadRootText } from '@fleetcast/signing/root.js';
import { benchDir } from './dirs.js';
import { nowMs, summarize, type BenchResult } from './lib.js';

const REPS = 3;

function medianMs(reps: number, fn: () => void | Promise<void>): Promise<number> {
  return (async () => {
    const samples: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t = nowMs();
      await fn();
      samples.push(nowMs() - t);
    }
    return summarize(samples).p50;
  })();
}

export async function benchBundleVerify(): Promise<BenchResult & { ours_ms: number; baseline_ms: number; ratio: number }> {
  const dir = benchDir('bundle-verify');
  const keys = initKeys(join(dir, 'keys'));
  const root = loadRootText(readFileSync(keys.rootPath, 'utf8'));
  // ~100 MB of float32 weights (random, so they barely compress, like real weights).
  const model = buildMlp({ categorical: true, padFloats: 25_000_000 });
  const b = await buildBundle({ model, name: 'bench', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'bench.fcb') });
  const payload = join(dir, 'model.onnx.zst');
  writeFileSync(payload, readBundleBuffer(readFileSync(b.path)).payload);

  const sh = (cmd: string) => { execFileSync('sh', ['-c', cmd], { stdio: 'ignore' }); };
  // Warm the page cache for both sides.
  sh(`cat "${b.path}" "${payload}" > /dev/null`);

  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 5);
  const oursMs = await medianMs(REPS, async () => {
    const v = await verifyBundleFile(b.path, root, { decompress: true });
    if (!v.rawChecked) throw new Error('raw model was not checked');
  });
  clearInterval(timer);
  const baselineMs = await medianMs(REPS, () => sh(`sha256sum "${payload}" > /dev/null && zstd -q -d -c "${payload}" > /dev/null`));
  const likeForLikeMs = await medianMs(REPS, () => sh(`sha256sum "${payload}" > /dev/null && zstd -q -d -c "${payload}" | sha256sum > /dev/null`));

  const ratio = oursMs / baselineMs;
  const mb = model.length / 1e6;
  return {
    name: `bundle verify (${mb.toFixed(0)} MB model, ${b.manifest.payload.chunkHashes.length} chunks, engine ${zstdEngine()})`,
    ours: { verify_ms: oursMs, throughput_MBps: mb / (oursMs / 1000), peak_rss_delta_MB: (peak - base) / 1e6 },
    baseline: { verify_ms: baselineMs, throughput_MBps: mb / (baselineMs / 1000) },
    ratios: [
      { name: 'verify / sha256sum+zstd', value: ratio },
      { name: 'verify / +raw sha256', value: oursMs / likeForLikeMs },
    ],
    notes: [
      `baseline: sha256sum + zstd -d -c > /dev/null on the same payload bytes (native, checks less); like-for-like adds | sha256sum: ${likeForLikeMs.toFixed(0)} ms`,
      'ours: Ed25519 release signature, every 256 KiB chunk hash, payload sha256, streamed bounded decompression, raw length and sha256',
    ],
    ours_ms: oursMs,
    baseline_ms: baselineMs,
    ratio,
  };
}
