/**
 * Benchmark 1: a rollout of a ~5 MB bundle to 200 agents through the embedded
 * broker (deploy → every agent verified, decompressed, loaded, smoke-tested and
 * serving) against a plain MQTT publish of the same bytes, in the same chunk
 * sizes and QoS, to 200 plain subscribers on the same kind of broker.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { observeSyncs } from '@fleetcast/agent/disk-storage.js';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { readBundleBuffer } from '@fleetcast/bundles/read.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { startHub } from '@fleetcast/hub/hub.js';
import { HubClient } from '@fleetcast/cli/hub-client.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { startFleet } from '@fleetcast/simulator/fleet.js';
import { startLinkProxy } from '@fleetcast/simulator/link-proxy.js';
import { nowMs, percentile, phaseSpread, type BenchResult } from './lib.js';
import { benchDir } from './dirs.js';
import { plainFanout } from './plain-fanout.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 200);
// BENCH_SHARE_VERIFY=0: every simulated agent hashes its chunks and payload itself (see simulator/shared-verify.ts).
const SHARE_VERIFY = process.env.BENCH_SHARE_VERIFY !== '0';
// BENCH_SHARE_RECEIVE=0: every agent copies each chunk it receives, as a device does (with shared verification on,
// agents otherwise take a chunk equal to one the fleet holds without copying it: agent/payload-matcher.ts).
const SHARE_RECEIVE = SHARE_VERIFY && process.env.BENCH_SHARE_RECEIVE !== '0';
// BENCH_SHARE_UNPACK=0: every agent decompresses its own payload, as a device does (on disk: while the
// chunks arrive). One agent shares with nobody, so it runs the device's own path by default.
const SHARE_UNPACK = process.env.BENCH_SHARE_UNPACK !== undefined ? process.env.BENCH_SHARE_UNPACK !== '0' : AGENTS > 1;
// BENCH_LINK_BYTES_PER_SEC=N: each agent and each plain subscriber reaches the broker through a relay that
// passes N bytes per second each way per connection (simulator/link-proxy.ts), as a device's network does;
// unset, loopback (the transfer then takes a few ms and the device's own work is all that shows).
const LINK_RATE = Number(process.env.BENCH_LINK_BYTES_PER_SEC ?? 0);
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
  const link = LINK_RATE > 0 ? await startLinkProxy(hub.mqttUrl) : null;
  link?.setRate(LINK_RATE);
  const fleet = await startFleet({ brokerUrl: link?.url ?? hub.mqttUrl, agents: AGENTS, rootPath: keys.rootPath, dataDir: join(dir, 'fleet'), shareVerify: SHARE_VERIFY, shareReceive: SHARE_RECEIVE, shareUnpack: SHARE_UNPACK });
  let oursMs: number;
  let transferStats: Record<string, number> = {};
  // When each agent first enters a phase: 'verifying' means every chunk is on disk and hash-checked.
  const firstAt: Record<string, number[]> = {};
  // Per agent, when it entered each phase (a phase is reported once its state is persisted).
  const entered = fleet.agents.map(() => new Map<string, number>());
  let t0 = 0;
  fleet.agents.forEach((a, i) => {
    a.on('state', (r) => { if (t0 && !entered[i].has(r.phase)) { entered[i].set(r.phase, nowMs() - t0); (firstAt[r.phase] ??= []).push(nowMs() - t0); } });
  });
  // Every fsync the agents make during the rollout, by what it made durable.
  const syncs = new Map<string, number[]>();
  const fleetDir = join(dir, 'fleet');
  // How long the event loop (the agents', here shared with the hub) was held at a time during the rollout:
  // a device's loop also serves predictions, so one long hold shows in their latency.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  try {
    while ((await api.devices()).devices.length < AGENTS) await new Promise((r) => setTimeout(r, 50));
    await api.publish(b.path);
    observeSyncs((kind, path, ms) => { const k = syncLabel(kind, relative(fleetDir, path)); (syncs.get(k) ?? syncs.set(k, []).get(k)!).push(ms); });
    t0 = nowMs();
    loop.enable();
    await api.deploy({ name: 'big', version: 1, all: true });
    await fleet.waitForVersion('big', 1, 600_000);
    oursMs = nowMs() - t0;
    loop.disable();
    observeSyncs(null);
    transferStats = { ...hub.transfer.stats };
  } finally {
    loop.disable();
    observeSyncs(null);
    await fleet.stop();
    await link?.close();
    await hub.close();
  }
  const plainMs = await plainFanout(payload, b.manifest.payload.chunkSize, hub.options.maxInflightChunkPublishes, AGENTS, undefined, LINK_RATE);
  const durableDir = join(dir, 'durable');
  mkdirSync(durableDir);
  const durableMs = await plainFanout(payload, b.manifest.payload.chunkSize, hub.options.maxInflightChunkPublishes, AGENTS, durableDir, LINK_RATE);
  return {
    name: `rollout of a ${(payload.length / 1e6).toFixed(1)} MB bundle to ${AGENTS} agents vs plain MQTT fan-out (ms)`,
    ours: { 'deploy → all serving': oursMs },
    baseline: { 'publish → all received': plainMs, 'publish → all fsynced': durableMs },
    ratios: [{ name: 'rollout/plain', value: oursMs / plainMs, goal: 1.25 }, { name: 'rollout/plain+durable', value: oursMs / durableMs }],
    notes: [
      'second baseline, plain+durable: the same plain fan-out, each subscriber also writing every chunk at its offset into its own file and fsyncing it once complete (what any device must do with bytes it is to run after a power cut)',
      `one install, median over the ${AGENTS} agents, ms in each phase (a phase's time includes persisting the next one): ${phaseDurations(entered)}`,
      `fsyncs per install by what they made durable (count per agent, median/p90 ms): ${syncSummary(syncs, AGENTS)}`,
      `hub chunk server: ${JSON.stringify(transferStats)}`,
      `event-loop delay during the rollout (this process: agents and hub), ms: p99 ${(loop.percentile(99) / 1e6).toFixed(1)}, max ${(loop.max / 1e6).toFixed(1)}`,
      `agents entering each phase, ms after deploy (first/median/last): ${phaseSpread(firstAt)}`,
      `${b.manifest.payload.chunkHashes.length} chunks of ${b.manifest.payload.chunkSize} bytes, QoS 1, both through embedded aedes on loopback${LINK_RATE > 0 ? `, each agent and each subscriber through its own link of ${LINK_RATE} bytes/s each way (BENCH_LINK_BYTES_PER_SEC)` : ''}; agents and subscribers in this one process`,
      // Each agent's ~17 fsyncs (state per phase, the model, its folders) and its staging writes go through this one pool;
      // on a fleet every device has its own. The variable is read at process start only.
      `libuv thread pool: ${process.env.UV_THREADPOOL_SIZE ?? 4} threads shared by the ${AGENTS} agents' file writes and fsyncs (a device has its own 4; set UV_THREADPOOL_SIZE when starting node to change it)`,
      'ours includes, on every agent: signed assignment checked, fsynced state per phase, chunk request, every chunk received over its own connection, checked and written at its offset into its own staging file, payload hash, raw hash of the model, session load and smoke inference',
      `shared by the agents in this one process, as a fleet does it in parallel on its own CPUs: one onnxruntime session per model${SHARE_UNPACK ? ', one zstd decompression per identical verified payload (each agent links the result; BENCH_SHARE_UNPACK=0 turns this off)' : '; each agent decompresses its own payload as its chunks arrive, as a device does (BENCH_SHARE_UNPACK=0, the default for one agent)'}${SHARE_VERIFY ? ', and the sha256 of byte-identical chunks (each agent\'s bytes are memcmp-compared with a copy that passed the hash; anything else is hashed; BENCH_SHARE_VERIFY=0 turns this off)' : '; chunk and payload hashing NOT shared (BENCH_SHARE_VERIFY=0)'}${SHARE_RECEIVE ? ', and the received chunks themselves (a chunk equal to one the fleet holds reaches an agent as that buffer, compared in place, not copied; BENCH_SHARE_RECEIVE=0 turns this off)' : ''}`,
    ],
  };
}

const PHASE_ORDER = ['fetching', 'verifying', 'staging', 'swapping', 'committed'];

/** "deploy→fetching 410, fetching 3400, …": per phase, the median over agents of the time until the next phase. */
function phaseDurations(entered: Map<string, number>[]): string {
  const steps: [string, string | null, string][] = [['deploy→fetching', null, 'fetching'], ...PHASE_ORDER.slice(0, -1).map((p, i): [string, string, string] => [p, p, PHASE_ORDER[i + 1]])];
  return steps.map(([name, from, to]) => {
    const d = entered.filter((m) => m.has(to) && (from === null || m.has(from))).map((m) => m.get(to)! - (from === null ? 0 : m.get(from)!)).sort((a, b) => a - b);
    return `${name} ${d.length ? percentile(d, 50).toFixed(0) : '-'}`;
  }).join(', ');
}

/** The paths an agent syncs, named by their role (agent ids and bundle ids left out). */
function syncLabel(kind: 'file' | 'dir', rel: string): string {
  const parts = rel.split('/').slice(1).map((p) => (/^[0-9a-f]{64}/.test(p) ? p.replace(/^[0-9a-f]{64}/, '<bundle>') : p));
  const path = parts.join('/') || '.';
  return kind === 'dir' ? `folder ${path}` : path;
}

function syncSummary(syncs: Map<string, number[]>, agents: number): string {
  let n = 0;
  const parts = [...syncs.entries()].map(([k, v]) => {
    n += v.length;
    const s = [...v].sort((a, b) => a - b);
    return `${k} ×${(v.length / agents).toFixed(1)} ${percentile(s, 50).toFixed(1)}/${percentile(s, 90).toFixed(1)}`;
  });
  return `${(n / agents).toFixed(1)} in all; ${parts.join('; ')}`;
}
