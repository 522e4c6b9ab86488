/**
 * Benchmark 1: a rollout of a ~5 MB bundle to 200 agents through the embedded
 * broker (deploy → every agent verified, decompressed, loaded, smoke-tested and
 * serving) against a plain MQTT publish of the same bytes, in the same chunk
 * sizes and QoS, to 200 plain subscribers on the same kind of broker.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { readBundleBuffer } from '@fleetcast/bundles/read.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { startHub } from '@fleetcast/hub/hub.js';
import { HubClient } from '@fleetcast/cli/hub-client.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { startFleet } from '@fleetcast/simulator/fleet.js';
import { nowMs, phaseSpread, type BenchResult } from './lib.js';
import { benchDir } from './dirs.js';
import { plainFanout } from './plain-fanout.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 200);
// BENCH_SHARE_VERIFY=0: every simulated agent hashes its chunks and payload itself (see simulator/shared-verify.ts).
const SHARE_VERIFY = process.env.BENCH_SHARE_VERIFY !== '0';
// ~5 MB of incompressible float32 weights.
const PAD_FLOATS = 1_300_000;

export async function benchRolloutFanout(): Promise<BenchResult> {
  const dir = benchDir('rollout');
  const keys = initKeys(join(dir, 'keys'));
  const modelPath = join(dir, 'model.onnx');
  writeFileSync(modelPath, buildMlp({ features: 8, categorical: true, seed: 9, padFloats: PAD_FLOATS }));
  const b = await buildBundle({ model: modelPath, name: 'big', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'big.fcb') });
  const { payload } = readBundleBuffer(readFileSync(b.path));

  const hub = await startHub({ dataDir: join(dir, 'hub'), keysDir: join(dir, 'keys'), mqttPort: 0, httpPort: 0, logLevel: 'silent', insecureDemo: true });
  const api = new HubClient(hub.httpUrl, readAdminToken(hub.options.dataDir));
  const fleet = await startFleet({ brokerUrl: hub.mqttUrl, agents: AGENTS, rootPath: keys.rootPath, dataDir: join(dir, 'fleet'), shareVerify: SHARE_VERIFY });
  let oursMs: number;
  let transferStats: Record<string, number> = {};
  // When each agent first enters a phase: 'verifying' means every chunk is on disk and hash-checked.
  const firstAt: Record<string, number[]> = {};
  let t0 = 0;
  fleet.agents.forEach((a) => {
    const seen = new Set<string>();
    a.on('state', (r) => { if (t0 && !seen.has(r.phase)) { seen.add(r.phase); (firstAt[r.phase] ??= []).push(nowMs() - t0); } });
  });
  try {
    while ((await api.devices()).devices.length < AGENTS) await new Promise((r) => setTimeout(r, 50));
    await api.publish(b.path);
    t0 = nowMs();
    await api.deploy({ name: 'big', version: 1, all: true });
    await fleet.waitForVersion('big', 1, 600_000);
    oursMs = nowMs() - t0;
    transferStats = { ...hub.transfer.stats };
  } finally {
    await fleet.stop();
    await hub.close();
  }
  const plainMs = await plainFanout(payload, b.manifest.payload.chunkSize, hub.options.maxInflightChunkPublishes, AGENTS);
  return {
    name: `rollout of a ${(payload.length / 1e6).toFixed(1)} MB bundle to ${AGENTS} agents vs plain MQTT fan-out (ms)`,
    ours: { 'deploy → all serving': oursMs },
    baseline: { 'publish → all received': plainMs },
    ratios: [{ name: 'rollout/plain', value: oursMs / plainMs, goal: 1.5 }],
    notes: [
      `hub chunk server: ${JSON.stringify(transferStats)}`,
      `agents entering each phase, ms after deploy (first/median/last): ${phaseSpread(firstAt)}`,
      `${b.manifest.payload.chunkHashes.length} chunks of ${b.manifest.payload.chunkSize} bytes, QoS 1, both through embedded aedes on loopback; agents and subscribers in this one process`,
      // Each agent's ~17 fsyncs (state per phase, the model, its folders) and its staging writes go through this one pool;
      // on a fleet every device has its own. The variable is read at process start only.
      `libuv thread pool: ${process.env.UV_THREADPOOL_SIZE ?? 4} threads shared by the ${AGENTS} agents' file writes and fsyncs (a device has its own 4; set UV_THREADPOOL_SIZE when starting node to change it)`,
      'ours includes, on every agent: signed assignment checked, fsynced state per phase, chunk request, every chunk received over its own connection, checked and written at its offset into its own staging file, payload hash, raw hash of the model, session load and smoke inference',
      `shared by the agents in this one process, as a fleet does it in parallel on its own CPUs: one onnxruntime session per model, one zstd decompression per identical verified payload (each agent links the result)${SHARE_VERIFY ? ', and the sha256 of byte-identical chunks (each agent\'s bytes are memcmp-compared with a copy that passed the hash; anything else is hashed; BENCH_SHARE_VERIFY=0 turns this off)' : '; chunk and payload hashing NOT shared (BENCH_SHARE_VERIFY=0)'}`,
    ],
  };
}
