/**
 * Shared set-up for the agent benchmarks: a real hub (embedded broker) in its
 * own process (so its signing, SQLite and MQTT work does not run on the event
 * loop being measured, as on a device), one in-process agent, two published
 * versions of a model, and a deploy helper that swaps the agent to a version
 * and waits until it is committed. Deploy requests can go out from a worker
 * thread (bench/deploy-worker.ts), so the operator's HTTP calls do not run on
 * the agent's event loop.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { createAgent, type Agent } from '@fleetcast/agent/agent.js';
import { buildBundle } from '@fleetcast/bundle-build/build.js';
import { buildMlp } from '@fleetcast/bundle-build/onnx-build.js';
import { HubClient } from '@fleetcast/cli/hub-client.js';
import type { StateReport } from '@fleetcast/protocol/messages.js';
import { readAdminToken } from '@fleetcast/hub/auth/tokens.js';
import { initKeys } from '@fleetcast/signing/keys.js';
import { benchDir } from './dirs.js';
import { idleCommand, niceFallback } from './idle-priority.js';

/** A swap (deploy to commit) takes well under a second here; one that has not committed by then never will. */
const SWAP_TIMEOUT_MS = 60_000;

export interface AgentFleet {
  dir: string;
  rootPath: string;
  agent: Agent;
  /** Deploy version v (1 or 2) and wait until the agent serves it, committed. */
  swapTo(v: number): Promise<void>;
  /**
   * The hub's side of a deploy only: version v deployed to a device id nobody runs (allowUnknown), so the hub takes
   * the request, signs and publishes an assignment, and the agent under test does nothing (agent-swap's hub control).
   */
  deployElsewhere(v: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * `deployFromWorker`: send deploys from a worker thread (agent-swap, which measures latency on this
 * loop); agent-rss keeps them on the main thread, since a worker's own heap would count in its RSS.
 */
export async function agentFleet(name: string, agentOptions: Record<string, unknown> = {}, opts: { deployFromWorker?: boolean } = {}): Promise<AgentFleet> {
  const dir = benchDir(name);
  const keys = initKeys(join(dir, 'keys'));
  const paths: string[] = [];
  for (const v of [1, 2]) {
    const modelPath = join(dir, `model-${v}.onnx`);
    writeFileSync(modelPath, buildMlp({ features: 16, categorical: true, hidden: 64, seed: 10 + v }));
    paths.push((await buildBundle({ model: modelPath, name: 'bench', version: v, releaseKeys: [keys.keys.release], out: join(dir, `b${v}.fcb`) })).path);
  }
  const hubDir = join(dir, 'hub');
  const cli = fileURLToPath(new URL('../../cli/dist/fleetcast.js', import.meta.url));
  // The hub stands for a server elsewhere: on a device it does not share the agent's CPU. At SCHED_IDLE
  // (bench/idle-priority.ts; nice 15 without chrt) its signing and publishing during a swap take a core only
  // when the agent's threads leave one idle.
  const hubCmd = idleCommand([process.execPath, cli, 'hub', '--data', hubDir, '--keys', join(dir, 'keys'), '--mqtt-port', '0', '--http-port', '0', '--log-level', 'silent', '--insecure-demo']);
  const child = spawn(hubCmd.command, hubCmd.args, { stdio: ['ignore', 'pipe', 'inherit'] });
  if (!hubCmd.idle) niceFallback(child.pid!);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  const deadline = Date.now() + 30_000;
  while (!/api (\S+)/.test(out) || !/mqtt (\S+)/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) { child.kill('SIGKILL'); throw new Error(`hub did not start: ${out}`); }
    await new Promise((r) => setTimeout(r, 20));
  }
  const hub = { httpUrl: /api (\S+)/.exec(out)![1], mqttUrl: /mqtt (\S+)/.exec(out)![1] };
  // From here a failure must not leave the hub (and its broker) running after the benchmark failed.
  let started: { agent: Agent; api: HubClient };
  try {
    started = await startAgentOnHub(hub, hubDir, join(dir, 'agent'), keys.rootPath, paths, agentOptions);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const { agent, api } = started;
  const deployer = opts.deployFromWorker ? new Worker(new URL('./deploy-worker.js', import.meta.url), { workerData: { url: hub.httpUrl, token: readAdminToken(hubDir) } }) : null;
  let nextId = 0;
  // allowUnknown only for the hub control's device nobody runs: a deploy to the agent under test still needs it seen.
  const deploy = (version: number, devices = ['bench-1'], allowUnknown = false) => (!deployer ? api.deploy({ name: 'bench', version, devices, allowUnknown }).then(() => {}) : new Promise<void>((resolve, reject) => {
    const id = nextId++;
    const on = (m: { id: number; ok: boolean; error?: string }) => {
      if (m.id !== id) return;
      deployer.off('message', on);
      if (m.ok) resolve(); else reject(new Error(`deploy v${version}: ${m.error}`));
    };
    deployer.on('message', on);
    deployer.postMessage({ id, name: 'bench', version, devices, allowUnknown });
  }));
  const swapTo = async (v: number) => {
    // Wait for the agent's 'installed' event (emitted on commit) rather than polling status():
    // status() summarises the predict stats, and calling it every few ms would add work to the
    // loop being measured during swaps only, which is the benchmark's own cost, not the agent's.
    // A failed or refused install, or none at all, fails the benchmark rather than leaving it waiting for good.
    const since = Date.now();
    let stop = () => {};
    const committed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { stop(); reject(new Error(`the agent did not commit v${v} within ${SWAP_TIMEOUT_MS / 1000} s`)); }, SWAP_TIMEOUT_MS);
      const on = (m: { version: number }) => { if (m.version === v) { stop(); resolve(); } };
      const failed = (r: StateReport) => { if (r.lastError && r.lastError.at >= since) { stop(); reject(new Error(`the agent failed to install v${v}: ${r.lastError.code}`)); } };
      stop = () => { clearTimeout(timer); agent.off('installed', on); agent.off('state', failed); };
      agent.on('installed', on);
      agent.on('state', failed);
    });
    try { await deploy(v); } catch (e) { stop(); throw e; }
    await committed;
    await agent.idle();
  };
  return {
    dir, rootPath: keys.rootPath, agent, swapTo,
    deployElsewhere: (v) => deploy(v, ['bench-elsewhere'], true),
    async close() {
      await agent.stop();
      await deployer?.terminate();
      child.kill('SIGTERM');
      await new Promise((r) => { if (child.exitCode !== null) r(null); else child.once('exit', r); });
    },
  };
}

/** The agent under test, seen by the hub, with both bundles published; stopped again when any of it fails. */
async function startAgentOnHub(hub: { httpUrl: string; mqttUrl: string }, hubDir: string, dataDir: string, rootPath: string, paths: string[], agentOptions: Record<string, unknown>): Promise<{ agent: Agent; api: HubClient }> {
  const agent = createAgent({ deviceId: 'bench-1', dataDir, rootPath, brokerUrl: hub.mqttUrl, listen: '127.0.0.1:0', heartbeatMs: 0, maxConcurrentPredictions: 10_000, ...agentOptions });
  try {
    await agent.start();
    const api = new HubClient(hub.httpUrl, readAdminToken(hubDir));
    const deadline = Date.now() + 30_000;
    while ((await api.devices()).devices.length < 1) {
      if (Date.now() > deadline) throw new Error('the agent did not appear on the hub within 30 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const p of paths) await api.publish(p);
    return { agent, api };
  } catch (e) {
    await agent.stop().catch(() => {});
    throw e;
  }
}
