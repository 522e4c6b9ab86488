/**
 * Shared set-up for the agent benchmarks: a real hub (embedded broker) in its
 * own process (so its signing, SQLite and MQTT work does not run on the event
 * loop being measured, as on a device), one in-process agent, two published
 * versions of a model, and a deploy helper that swaps the agent to a version
 * and waits until it is committed.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { createAgent, type Agent } from '../agent/agent.js';
import { buildBundle } from '../bundles/build.js';
import { buildMlp } from '../bundles/onnx-build.js';
import { HubClient } from '../cli/hub-client.js';
import { readAdminToken } from '../hub/auth/tokens.js';
import { initKeys } from '../signing/keys.js';
import { benchDir } from './dirs.js';

export interface AgentFleet {
  dir: string;
  rootPath: string;
  agent: Agent;
  /** Deploy version v (1 or 2) and wait until the agent serves it, committed. */
  swapTo(v: number): Promise<void>;
  close(): Promise<void>;
}

export async function agentFleet(name: string, agentOptions: Record<string, unknown> = {}): Promise<AgentFleet> {
  const dir = benchDir(name);
  const keys = initKeys(join(dir, 'keys'));
  const paths: string[] = [];
  for (const v of [1, 2]) {
    const modelPath = join(dir, `model-${v}.onnx`);
    writeFileSync(modelPath, buildMlp({ features: 16, categorical: true, hidden: 64, seed: 10 + v }));
    paths.push((await buildBundle({ model: modelPath, name: 'bench', version: v, releaseKeys: [keys.keys.release], out: join(dir, `b${v}.fcb`) })).path);
  }
  const hubDir = join(dir, 'hub');
  const cli = fileURLToPath(new URL('../cli/fleetcast.js', import.meta.url));
  const child = spawn(process.execPath, [cli, 'hub', '--data', hubDir, '--keys', join(dir, 'keys'), '--mqtt-port', '0', '--http-port', '0', '--log-level', 'silent', '--insecure-demo'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  const deadline = Date.now() + 30_000;
  while (!/api (\S+)/.test(out) || !/mqtt (\S+)/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) { child.kill('SIGKILL'); throw new Error(`hub did not start: ${out}`); }
    await new Promise((r) => setTimeout(r, 20));
  }
  const hub = { httpUrl: /api (\S+)/.exec(out)![1], mqttUrl: /mqtt (\S+)/.exec(out)![1] };
  const agent = createAgent({ deviceId: 'bench-1', dataDir: join(dir, 'agent'), rootPath: keys.rootPath, brokerUrl: hub.mqttUrl, listen: '127.0.0.1:0', heartbeatMs: 0, maxConcurrentPredictions: 10_000, ...agentOptions });
  await agent.start();
  const api = new HubClient(hub.httpUrl, readAdminToken(hubDir));
  while ((await api.devices()).devices.length < 1) await new Promise((r) => setTimeout(r, 20));
  for (const p of paths) await api.publish(p);
  const swapTo = async (v: number) => {
    await api.deploy({ name: 'bench', version: v, devices: ['bench-1'], allowUnknown: true });
    for (;;) {
      const s = agent.status();
      if (s.active?.version === v && s.phase === 'committed') break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await agent.idle();
  };
  return {
    dir, rootPath: keys.rootPath, agent, swapTo,
    async close() {
      await agent.stop();
      child.kill('SIGTERM');
      await new Promise((r) => { if (child.exitCode !== null) r(null); else child.once('exit', r); });
    },
  };
}
