/**
 * Agent cost of telemetry: `agent.predict` p50/p99 of two real agents serving
 * the same 32-feature bundle (with a reference profile), one with telemetry on
 * (default 10 % feature sampling, latency of every request) and one with it
 * off (windowMs 0). Requests alternate between the two so both see the same
 * machine load, and both share one onnxruntime session. Goal: p50 within 5 %. Also reports the size of a 32-feature
 * report of a full window.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAgent } from '../agent/agent.js';
import { createOrtRuntime, SessionCache } from '../agent/runtime.js';
import { TelemetryCollector } from '../agent/telemetry/collector.js';
import type { BrokerClient } from '../agent/broker-client.js';
import { buildBundle } from '../bundles/build.js';
import { buildMlp } from '../bundles/onnx-build.js';
import { HubClient } from '../cli/hub-client.js';
import { readAdminToken } from '../hub/auth/tokens.js';
import { startHub } from '../hub/hub.js';
import { initKeys } from '../signing/keys.js';
import { scenarioGenerator } from '../simulator/scenarios.js';
import { benchDir } from './dirs.js';
import { nowMs, summarize, type BenchResult } from './lib.js';

const N = 4000;
const WARMUP = 500;
const F = 32;

export async function benchTelemetryCost(): Promise<BenchResult> {
  const dir = benchDir('telemetry-cost');
  const keys = initKeys(join(dir, 'keys'));
  const modelPath = join(dir, 'model.onnx');
  writeFileSync(modelPath, buildMlp({ features: F, hidden: 64, seed: 3 }));
  const gen = scenarioGenerator({}, 4);
  const names = Array.from({ length: F }, (_, i) => `x[${i}]`);
  const reference = Array.from({ length: 5000 }, () => Object.fromEntries(names.map((n) => [n, gen.value('ref', n, 0)])));
  const b = await buildBundle({ model: modelPath, name: 'cost', version: 1, releaseKeys: [keys.keys.release], out: join(dir, 'b.fcb'), reference });
  const hub = await startHub({ dataDir: join(dir, 'hub'), keysDir: join(dir, 'keys'), mqttPort: 0, httpPort: 0, logLevel: 'silent', insecureDemo: true });
  // One runtime with a shared session cache: both agents run the very same onnxruntime session, so the only difference is telemetry.
  const runtime = createOrtRuntime({ cache: new SessionCache(), intraOpNumThreads: 1 });
  const mk = (id: string, windowMs: number) => createAgent({ deviceId: id, dataDir: join(dir, id), rootPath: keys.rootPath, brokerUrl: hub.mqttUrl, listen: null, heartbeatMs: 0, telemetry: { windowMs, sampleRate: 0.1, maxBuffered: 120, debugRowsPerWindow: 0, maxReportBytes: 256 * 1024 } }, { runtime });
  const on = mk('tel-on', 60_000);
  const off = mk('tel-off', 0);
  await Promise.all([on.start(), off.start()]);
  const api = new HubClient(hub.httpUrl, readAdminToken(hub.options.dataDir));
  try {
    while ((await api.devices()).devices.length < 2) await new Promise((r) => setTimeout(r, 20));
    await api.publish(b.path);
    await api.deploy({ name: 'cost', version: 1, devices: ['tel-on', 'tel-off'] });
    while (on.status().active?.version !== 1 || off.status().active?.version !== 1) await new Promise((r) => setTimeout(r, 20));
    const bodies = Array.from({ length: 64 }, () => JSON.stringify(gen.body('x', on.status().active!.inputs, 0)));
    const t: Record<'on' | 'off', number[]> = { on: [], off: [] };
    for (let i = 0; i < 2 * (N + WARMUP); i++) {
      const which = i % 2 === 0 ? 'on' : 'off';
      const a = which === 'on' ? on : off;
      const body = JSON.parse(bodies[(i >> 1) % bodies.length]);
      const s = nowMs();
      await a.predict(body);
      if (i >= 2 * WARMUP) t[which].push(nowMs() - s);
    }
    const sOn = summarize(t.on);
    const sOff = summarize(t.off);

    // Size of a full 32-feature window report (1,000 sampled requests), as sent.
    let size = 0;
    const rec = { connected: true, publish: async (_t: string, p: Buffer) => { size = p.length; } } as unknown as BrokerClient;
    const c = new TelemetryCollector({ deviceId: 'size', client: rec, options: { sampleRate: 1 } });
    const { compileValidator } = await import('../agent/validate.js');
    const v = compileValidator(b.manifest.inputs, { maxBatch: 10 });
    const m = await createOrtRuntime().load(modelPath, b.manifest.payload.rawSha256);
    for (let i = 0; i < 1000; i++) {
      const feeds = v(JSON.parse(bodies[i % bodies.length]).inputs).feeds;
      c.observe({ bundleId: b.bundleId, manifest: b.manifest }, feeds, await m.run(feeds), 1 + (i % 7) / 3);
    }
    await c.flush();
    await m.release();
    return {
      name: 'agent cost of telemetry: predict with telemetry on (10 % sampling) vs off, 32 features',
      ours: { 'p50 ms (telemetry on)': sOn.p50, 'p99 ms (telemetry on)': sOn.p99, 'report bytes (32 feat, 1k req)': size },
      baseline: { 'p50 ms (telemetry on)': sOff.p50, 'p99 ms (telemetry on)': sOff.p99 },
      ratios: [{ name: 'p50 on / off', value: sOn.p50 / sOff.p50, goal: 1.05 }, { name: 'p99 on / off', value: sOn.p99 / sOff.p99 }],
      notes: [`${N} in-process agent.predict calls per agent, alternating; baseline = the same agent code with telemetry off (windowMs 0)`],
    };
  } finally {
    await on.stop();
    await off.stop();
    await hub.close();
  }
}
