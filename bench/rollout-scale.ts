/**
 * Benchmark (issue #3): `rollout start` of a ~1 MB bundle through the default
 * three rings (canary 1%, early 10%, broad 100%) with zero soak, auto-promote
 * and no request minimum, until 1,000 agents serve it — against the time the
 * same number of plain MQTT subscribers take to just receive the same bytes
 * (same chunks, QoS 1, same kind of broker). Notes say where the time goes:
 * per ring, and when the last agent entered each install phase.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { readBundleBuffer } from '@fleetcast/bundles/read.js';
import { HubClient } from '@fleetcast/cli/hub-client.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';
import { startHub } from '@fleetcast/hub/hub.js';
import { hubOptionsSchema } from '@fleetcast/hub/options.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { startFleet } from '@fleetcast/simulator/fleet.js';
import { benchDir } from './dirs.js';
import { plainFanout } from './plain-fanout.js';
import { nowMs, type BenchResult } from './lib.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 1000);
const PAD_FLOATS = 250_000; // ~1 MB of incompressible weights

export async function benchRolloutScale(): Promise<BenchResult> {
  const dir = benchDir('rollout-scale');
  const keys = initKeys(join(dir, 'keys'));
  const build = async (v: number, pad: number) => buildBundle({ model: buildMlp({ seed: v, padFloats: pad }), name: 'scale', version: v, releaseKeys: [keys.keys.release], out: join(dir, `scale-${v}.fcb`) });
  const base = await build(1, 0);
  const next = await build(2, PAD_FLOATS);
  // The same size again, sent with a plain fleet-wide deploy: the install pipeline without rings.
  const flat = await build(3, PAD_FLOATS);
  const { payload } = readBundleBuffer(readFileSync(next.path));
  // An embedded broker that lets the simulated agents in without per-device credentials, where the hub has that switch.
  const open = 'insecureDemo' in hubOptionsSchema.shape ? { insecureDemo: true } : {};
  const hub = await startHub({ dataDir: join(dir, 'hub'), keysDir: join(dir, 'keys'), mqttPort: 0, httpPort: 0, logLevel: 'silent', rolloutTickMs: 100, ...open });
  const api = new HubClient(hub.httpUrl, readAdminToken(hub.options.dataDir));
  const shareVerify = process.env.BENCH_SHARE_VERIFY !== '0';
  const fleet = await startFleet({ brokerUrl: hub.mqttUrl, agents: AGENTS, rootPath: keys.rootPath, dataDir: join(dir, 'fleet'), agentOptions: { heartbeatMs: 0 }, shareVerify });
  const lastPhase: Record<string, number> = {};
  const ringDone: Record<string, number> = {};
  let t0 = 0;
  let oursMs = 0;
  let deployMs = 0;
  fleet.agents.forEach((a) => a.on('state', (r) => { if (t0 && !oursMs && r.active?.version !== 2) lastPhase[r.phase] = nowMs() - t0; }));
  try {
    while ((await api.devices()).devices.length < AGENTS) await new Promise((r) => setTimeout(r, 50));
    await api.publish(base.path);
    await api.deploy({ name: 'scale', version: 1, all: true });
    await fleet.waitForVersion('scale', 1, 600_000);
    await api.publish(next.path);
    t0 = nowMs();
    const s = await api.startRollout<{ id: string }>({ name: 'scale', version: 2, autoPromote: true, spec: { gates: { soak: 0, minRequests: 0 } } });
    for (;;) {
      const st = await api.rollout<{ state: string; rings: { name: string; devices: number; counts: Record<string, number> }[] }>(s.id);
      for (const r of st.rings) if (ringDone[r.name] === undefined && r.counts.installed === r.devices) ringDone[r.name] = nowMs() - t0;
      if (st.state === 'completed') break;
      if (st.state !== 'running') throw new Error(`rollout ended ${st.state}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await fleet.waitForVersion('scale', 2, 600_000);
    oursMs = nowMs() - t0;
    await api.publish(flat.path);
    const t1 = nowMs();
    await api.deploy({ name: 'scale', version: 3, all: true });
    await fleet.waitForVersion('scale', 3, 600_000);
    deployMs = nowMs() - t1;
  } finally {
    await fleet.stop();
    await hub.close();
  }
  const plainMs = await plainFanout(payload, next.manifest.payload.chunkSize, hub.options.maxInflightChunkPublishes, AGENTS);
  return {
    name: `rollout start → ${AGENTS} agents serving a ${(payload.length / 1e6).toFixed(2)} MB bundle through canary/early/broad (zero soak) vs plain MQTT download of the same bytes (ms)`,
    ours: { 'rollout start → all serving': oursMs, 'deploy --all → all serving': deployMs },
    baseline: { 'publish → all received': plainMs },
    ratios: [{ name: 'rollout/download', value: oursMs / plainMs }, { name: 'deploy/download', value: deployMs / plainMs }, { name: 'rollout/deploy', value: oursMs / deployMs }],
    notes: [
      `rings fully installed at (ms after start): ${Object.entries(ringDone).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`,
      `last agent entering each phase (ms after start): ${Object.entries(lastPhase).map(([p, t]) => `${p} ${t.toFixed(0)}`).join(', ')}`,
      'each ring waits for its devices to report the install before the next starts (gates judged on reports, engine tick 100 ms); three sequential transfers instead of one',
      'ours also includes: a signed assignment per device, chunk requests, per-chunk and payload sha256, zstd decompression, session load and golden/smoke run on every agent',
      `shared by the agents in this one process: onnxruntime sessions, decompression of identical verified payloads${shareVerify ? ', sha256 of byte-identical chunks (memcmp against a copy that passed the hash; BENCH_SHARE_VERIFY=0 turns it off)' : '; hashing NOT shared (BENCH_SHARE_VERIFY=0)'}; each agent receives its own chunks and writes its own staging file`,
    ],
  };
}
