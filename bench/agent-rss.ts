/**
 * Benchmark: agent memory. (1) RSS after 100 hot-swaps vs after 1, same
 * process, predictions between swaps, measured after a forced GC (goal ≤
 * 1.1×: old sessions are released, nothing accumulates). The hub runs in its
 * own process (bench/agent-fleet.ts). (2) Idle RSS of the
 * compiled agent daemon with a small model loaded, onnxruntime-node vs
 * onnxruntime-web (wasm), each in its own process, offline.
 */
import { spawn } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { makeInputGenerator } from '@fleetcast/simulator/inputs.js';
import { agentFleet } from './agent-fleet.js';
import type { BenchResult } from './lib.js';

const SWAPS = 100;

function gcRss(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc(); gc();
  return process.memoryUsage().rss / 1024 / 1024;
}

/** Start the compiled agent offline on `dataDir`, wait until it serves, let it idle, read VmRSS (MiB). */
async function idleRss(dataDir: string, rootPath: string, runtime: string): Promise<{ rss: number; name: string }> {
  const entry = fileURLToPath(new URL('../../agent/dist/fleetcast-agent.js', import.meta.url));
  const child = spawn(process.execPath, [entry, '--device-id', 'bench-1', '--data', dataDir, '--root', rootPath, '--runtime', runtime, '--quiet'], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FLEETCAST_AGENT_BROKER_URL: 'none', FLEETCAST_AGENT_HEARTBEAT_MS: '0' },
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  try {
    const deadline = Date.now() + 30_000;
    while (!/started/.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`agent (${runtime}) did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 1500));
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return { rss: Number(m?.[1] ?? Number.NaN) / 1024, name: /"runtime":"([^"]+)"/.exec(out)?.[1] ?? runtime };
  } finally {
    child.kill('SIGKILL');
  }
}

export async function benchAgentRss(): Promise<BenchResult> {
  const fleet = await agentFleet('rss');
  const { agent } = fleet;
  let after1: number; let after100: number; let dataCopy: string;
  try {
    await fleet.swapTo(1);
    const gen = makeInputGenerator(3);
    const bodies = Array.from({ length: 32 }, () => gen(agent.status().active!.inputs));
    const load = async () => { for (const b of bodies) await agent.predict(b); };
    await load();
    await fleet.swapTo(2);
    await load();
    after1 = gcRss();
    for (let i = 1; i < SWAPS; i++) {
      await fleet.swapTo(i % 2 === 0 ? 2 : 1);
      await load();
    }
    after100 = gcRss();
    dataCopy = join(fleet.dir, 'agent-copy');
  } finally {
    await fleet.close();
  }
  const node = await idleRss((cpSync(join(fleet.dir, 'agent'), dataCopy + '-node', { recursive: true }), dataCopy + '-node'), fleet.rootPath, 'node');
  const wasm = await idleRss((cpSync(join(fleet.dir, 'agent'), dataCopy + '-wasm', { recursive: true }), dataCopy + '-wasm'), fleet.rootPath, 'wasm');
  return {
    name: `agent memory: RSS after ${SWAPS} swaps vs after 1; idle RSS onnxruntime-web vs onnxruntime-node (MiB)`,
    ours: { [`rss after ${SWAPS} swaps`]: after100, 'idle rss, wasm runtime': wasm.rss },
    baseline: { 'rss after 1 swap': after1, 'idle rss, node runtime': node.rss },
    ratios: [{ name: `rss ${SWAPS} swaps/1 swap`, value: after100 / after1, goal: 1.1 }, { name: 'idle rss wasm/node', value: wasm.rss / node.rss }],
    notes: [
      `swap RSS is the bench process (agent + load; the hub runs in its own process), after a forced GC; 32 predictions after every swap`,
      `idle RSS: compiled fleetcast-agent daemon, offline, serving MLP 17→64→2 (${node.name} vs ${wasm.name}), read from /proc after 1.5 s idle`,
    ],
  };
}
