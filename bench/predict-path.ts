/**
 * Benchmark 2: the agent's predict path over HTTP (JSON parse, validation,
 * tensor build, session.run, output formatting, JSON reply) against a bare
 * `session.run` on pre-built tensors of the same model, p50 and p99. The
 * in-process `agent.predict` (no HTTP) is measured too, to say where time goes.
 */
import { writeFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { createAgent } from '@fleetcast/agent/agent.js';
import { startHub } from '@fleetcast/hub/hub.js';
import { HubClient } from '@fleetcast/cli/hub-client.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { makeInputGenerator } from '@fleetcast/simulator/inputs.js';
import { postPredict } from './http.js';
import { nowMs, summarize, type BenchResult } from './lib.js';
import { benchDir } from './dirs.js';

const N = 3000;
const WARMUP = 300;

export async function benchPredictPath(): Promise<BenchResult> {
  const dir = benchDir('predict');
  const keys = initKeys(join(dir, 'keys'));
  const modelPath = join(dir, 'model.onnx');
  const model = buildMlp({ features: 16, categorical: true, hidden: 64, seed: 3 });
  writeFileSync(modelPath, model);
  const b = await buildBundle({ model: modelPath, name: 'bench', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'b.fcb') });
  const hub = await startHub({ dataDir: join(dir, 'hub'), keysDir: join(dir, 'keys'), mqttPort: 0, httpPort: 0, logLevel: 'silent', insecureDemo: true });
  const agent = createAgent({ deviceId: 'bench-1', dataDir: join(dir, 'agent'), rootPath: keys.rootPath, brokerUrl: hub.mqttUrl, listen: '127.0.0.1:0', heartbeatMs: 0 });
  await agent.start();
  const api = new HubClient(hub.httpUrl, readAdminToken(hub.options.dataDir));
  try {
    while ((await api.devices()).devices.length < 1) await new Promise((r) => setTimeout(r, 20));
    await api.publish(b.path);
    await api.deploy({ name: 'bench', version: 1, devices: ['bench-1'], allowUnknown: true });
    while (agent.status().active?.version !== 1) await new Promise((r) => setTimeout(r, 20));

    const gen = makeInputGenerator(5);
    const bodies = Array.from({ length: 64 }, () => gen(agent.status().active!.inputs));
    const json = bodies.map((x) => JSON.stringify(x));

    // Baseline: bare session.run on tensors built beforehand.
    const session = await ort.InferenceSession.create(model, { logSeverityLevel: 3, intraOpNumThreads: 1, executionMode: 'sequential' });
    const feeds = bodies.map((x) => ({
      x: new ort.Tensor('float32', Float32Array.from((x.inputs.x as number[][]).flat()), [1, 16]),
      category: new ort.Tensor('int64', BigInt64Array.from((x.inputs.category as number[][]).flat().map(BigInt)), [1, 1]),
    }));
    const bare: number[] = [];
    for (let i = 0; i < N + WARMUP; i++) {
      const t = nowMs();
      await session.run(feeds[i % feeds.length]);
      if (i >= WARMUP) bare.push(nowMs() - t);
    }
    await session.release();

    const inproc: number[] = [];
    for (let i = 0; i < N + WARMUP; i++) {
      const t = nowMs();
      await agent.predict(JSON.parse(json[i % json.length]));
      if (i >= WARMUP) inproc.push(nowMs() - t);
    }

    const keepAlive = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    const http: number[] = [];
    const port = agent.address!.port;
    for (let i = 0; i < N + WARMUP; i++) {
      const t = nowMs();
      const status = await postPredict(keepAlive, port, json[i % json.length]);
      if (status !== 200) throw new Error(`predict answered ${status}`);
      if (i >= WARMUP) http.push(nowMs() - t);
    }
    keepAlive.destroy();

    const h = summarize(http); const p = summarize(inproc); const s = summarize(bare);
    return {
      name: 'predict path: agent over HTTP vs bare session.run (ms)',
      ours: { p50: h.p50, p99: h.p99, 'in-process p50': p.p50, 'in-process p99': p.p99 },
      baseline: { p50: s.p50, p99: s.p99 },
      ratios: [{ name: 'p50 http/bare', value: h.p50 / s.p50 }, { name: 'p99 http/bare', value: h.p99 / s.p99 }, { name: 'p50 in-process/bare', value: p.p50 / s.p50 }],
      notes: [
        `${N} sequential requests after ${WARMUP} warm-up, model MLP 17→64→2 (float32 x[1,16] + int64 category[1,1]), keep-alive HTTP on loopback`,
        `where the time goes at p50: session.run ${s.p50.toFixed(3)} ms; validation + tensor build + output formatting ${(p.p50 - s.p50).toFixed(3)} ms; HTTP + JSON on loopback ${(h.p50 - p.p50).toFixed(3)} ms`,
      ],
    };
  } finally {
    await agent.stop();
    await hub.close();
  }
}
