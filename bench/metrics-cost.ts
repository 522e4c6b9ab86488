/**
 * What Prometheus metrics cost the predict path: two real agents on one hub
 * serve the same bundle, one with its HTTP API (and so its metrics: two
 * counter increments and a histogram observation per prediction) and one
 * without (no metrics at all). In-process predictions alternate between them
 * in rounds, so machine load falls on both alike. Also timed: one scrape of
 * each /metrics, and of the hub's.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { createAgent, type Agent } from '@fleetcast/agent/agent.js';
import { startHub } from '@fleetcast/hub/hub.js';
import { HubClient } from '@fleetcast/cli/hub-client.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { makeInputGenerator } from '@fleetcast/simulator/inputs.js';
import { nowMs, summarize, type BenchResult } from './lib.js';
import { benchDir } from './dirs.js';

const ROUNDS = 12;
const PER_ROUND = 500;
const WARMUP = 500;

export async function benchMetricsCost(): Promise<BenchResult> {
  const dir = benchDir('metrics');
  const keys = initKeys(join(dir, 'keys'));
  const modelPath = join(dir, 'model.onnx');
  writeFileSync(modelPath, buildMlp({ features: 16, categorical: true, hidden: 64, seed: 3 }));
  const b = await buildBundle({ model: modelPath, name: 'bench', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'b.fcb') });
  const hub = await startHub({ dataDir: join(dir, 'hub'), keysDir: join(dir, 'keys'), mqttPort: 0, httpPort: 0, logLevel: 'silent', insecureDemo: true });
  const common = { rootPath: keys.rootPath, brokerUrl: hub.mqttUrl, heartbeatMs: 0 };
  const metered = createAgent({ ...common, deviceId: 'with-metrics', dataDir: join(dir, 'a1'), listen: '127.0.0.1:0' });
  const plain = createAgent({ ...common, deviceId: 'without-metrics', dataDir: join(dir, 'a2'), listen: null });
  const agents = [metered, plain];
  await Promise.all(agents.map((a) => a.start()));
  const api = new HubClient(hub.httpUrl, readAdminToken(hub.options.dataDir));
  try {
    while ((await api.devices()).devices.length < 2) await new Promise((r) => setTimeout(r, 20));
    await api.publish(b.path);
    await api.deploy({ name: 'bench', version: 1, all: true });
    while (!agents.every((a) => a.status().active?.version === 1)) await new Promise((r) => setTimeout(r, 20));

    const gen = makeInputGenerator(5);
    const bodies = Array.from({ length: 64 }, () => JSON.stringify(gen(metered.status().active!.inputs)));
    const times = new Map<Agent, number[]>(agents.map((a) => [a, []]));
    const run = async (a: Agent, n: number, keep: boolean) => {
      for (let i = 0; i < n; i++) {
        const t = nowMs();
        await a.predict(JSON.parse(bodies[i % bodies.length]));
        if (keep) times.get(a)!.push(nowMs() - t);
      }
    };
    for (const a of agents) await run(a, WARMUP, false);
    // Alternate which goes first, so neither always runs right after the other's garbage.
    for (let r = 0; r < ROUNDS; r++) for (const a of r % 2 ? [plain, metered] : [metered, plain]) await run(a, PER_ROUND, true);

    const scrape = async (url: string, headers: Record<string, string> = {}) => {
      const t = nowMs();
      const res = await fetch(url, { headers });
      await res.text();
      if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
      return nowMs() - t;
    };
    const agentScrape = await scrape(`http://127.0.0.1:${metered.address!.port}/metrics`);
    const hubScrape = await scrape(`${hub.httpUrl}/metrics`, { authorization: `Bearer ${readAdminToken(hub.options.dataDir)}` });

    // In microseconds: an in-process prediction of this model takes tens of them.
    const us = (xs: number[]) => xs.map((x) => x * 1000);
    const w = summarize(us(times.get(metered)!)); const p = summarize(us(times.get(plain)!));
    return {
      name: 'metrics on the predict path: in-process predict with metrics vs without (µs)',
      ours: { p50: w.p50, p99: w.p99, mean: w.mean },
      baseline: { p50: p.p50, p99: p.p99, mean: p.mean },
      ratios: [{ name: 'p50 with/without', value: w.p50 / p.p50 }, { name: 'mean with/without', value: w.mean / p.mean }],
      notes: [
        `${ROUNDS} alternating rounds of ${PER_ROUND} sequential predictions per agent after ${WARMUP} warm-up each; model MLP 17→64→2; the same bundle on both`,
        `one scrape: agent /metrics ${agentScrape.toFixed(2)} ms, hub /metrics (2 devices) ${hubScrape.toFixed(2)} ms (first scrape, process metrics included)`,
      ],
    };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await hub.close();
  }
}
