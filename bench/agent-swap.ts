/**
 * Benchmark: predict latency while the agent hot-swaps its model 20 times in a
 * row, against the same load with no swap (steady state), p50 and p99. Load:
 * 4 keep-alive HTTP clients on loopback, back to back; swap and steady periods
 * alternate so both see the same background load. Goal: p99 during swaps
 * ≤ 1.25× steady. Every request must succeed (a failed one fails the benchmark).
 * The hub runs in its own, niced process (bench/agent-fleet.ts): it stands for a
 * server elsewhere, and its work must not be what the swap periods measure.
 */
import { Agent as HttpAgent } from 'node:http';
import { makeInputGenerator } from '@fleetcast/simulator/inputs.js';
import { agentFleet } from './agent-fleet.js';
import { postPredict } from './http.js';
import { nowMs, summarize, type BenchResult } from './lib.js';

const CLIENTS = 4;
const SWAPS = 20;

export async function benchAgentSwap(): Promise<BenchResult> {
  const fleet = await agentFleet('swap', {}, { deployFromWorker: true });
  const { agent } = fleet;
  try {
    await fleet.swapTo(1);
    const gen = makeInputGenerator(7);
    const json = Array.from({ length: 64 }, () => JSON.stringify(gen(agent.status().active!.inputs)));
    const port = agent.address!.port;
    const pool = new HttpAgent({ keepAlive: true, maxSockets: CLIENTS });
    let running = true;
    let sink: number[] | null = null;
    let failed = 0;
    const client = async (c: number) => {
      for (let i = c; running; i++) {
        // A request counts for the period it started in.
        const into = sink;
        const t = nowMs();
        const status = await postPredict(pool, port, json[i % json.length]);
        if (status !== 200) failed++;
        into?.push(nowMs() - t);
      }
    };
    const clients = Array.from({ length: CLIENTS }, (_, c) => client(c));
    // Warm-up; then swap blocks and steady blocks alternate, each steady block as long as the
    // swap before it, so both see the same background load (a shared 2-core machine is noisy).
    await new Promise((r) => setTimeout(r, 1000));
    const during: number[] = [];
    const steady: number[] = [];
    let swapMs = 0;
    for (let i = 0; i < SWAPS; i++) {
      sink = during;
      const t = nowMs();
      await fleet.swapTo(i % 2 === 0 ? 2 : 1);
      const took = nowMs() - t;
      swapMs += took;
      sink = steady;
      await new Promise((r) => setTimeout(r, Math.max(50, took)));
    }
    sink = null;
    running = false;
    await Promise.all(clients);
    pool.destroy();
    if (failed) throw new Error(`${failed} predictions failed during the benchmark`);
    const d = summarize(during); const s = summarize(steady);
    return {
      name: `agent hot-swap: predict latency during ${SWAPS} swaps vs steady state (ms)`,
      ours: { p50: d.p50, p99: d.p99, requests: d.n },
      baseline: { p50: s.p50, p99: s.p99, requests: s.n },
      ratios: [{ name: 'p99 swaps/steady', value: d.p99 / s.p99, goal: 1.25 }, { name: 'p50 swaps/steady', value: d.p50 / s.p50 }],
      notes: [
        `${CLIENTS} keep-alive HTTP clients back to back; ${SWAPS} swaps (deploy via the hub in its own niced process, assignment over MQTT; the end of a swap is the agent's 'installed' event) took ${(swapMs / 1000).toFixed(1)} s (after the first, the other version waits in the previous slot, so a swap is re-verify + load + smoke/golden + switch + commit); 0 failed requests`,
        'model MLP 17→64→2; each swap loads a new onnxruntime session on the same event loop the predictions use',
      ],
    };
  } finally {
    await fleet.close();
  }
}
