/**
 * Benchmark: predict latency while the agent hot-swaps its model 80 times in a
 * row, against the same load with no swap (steady state), p50 and p99. Load:
 * 4 keep-alive HTTP clients on loopback, back to back; swap and steady periods
 * alternate so both see the same background load. Goal: p99 during swaps
 * ≤ 1.25× steady. Every request must succeed (a failed one fails the benchmark).
 * FLEETCAST_BENCH_INFERENCE_THREAD=0 runs the agent with onnxruntime on its
 * main thread (inferenceThread: false), for the per-request cost of the thread.
 * The hub runs in its own, niced process (bench/agent-fleet.ts): it stands for a
 * server elsewhere, and its work must not be what the swap periods measure.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { makeInputGenerator } from '@fleetcast/simulator/inputs.js';
import { agentFleet } from './agent-fleet.js';
import { nowMs, summarize, type BenchResult } from './lib.js';

const CLIENTS = 4;
// 80, not 20: a swap takes ~35-45 ms, so 20 swap periods held ~3,200 requests and their p99 was the ~32nd-slowest
// request, which moved by ±20 % run to run. During swaps the 4 clients get ~120-160 requests per swap
// (fewer on a loaded machine, where 60 swaps held only ~7,500): 80 periods hold ≥ 9,000 and the p99 is read from ≥ 90.
const SWAPS = 80;

export async function benchAgentSwap(): Promise<BenchResult> {
  // FLEETCAST_BENCH_INFERENCE_THREAD=0 runs onnxruntime on the agent's main thread (as before the inference thread), to compare.
  const inferenceThread = process.env.FLEETCAST_BENCH_INFERENCE_THREAD !== '0';
  const fleet = await agentFleet('swap', { inferenceThread }, { deployFromWorker: true });
  const { agent } = fleet;
  try {
    await fleet.swapTo(1);
    const gen = makeInputGenerator(7);
    const json = Array.from({ length: 64 }, () => JSON.stringify(gen(agent.status().active!.inputs)));
    const port = agent.address!.port;
    // The clients run on a thread of their own (bench/predict-clients-worker.ts): callers of a device's agent are
    // other programs, and on the agent's loop their own work would wait behind the swap's and add to it.
    const clients = new Worker(new URL('./predict-clients-worker.js', import.meta.url), { workerData: { port, bodies: json, clients: CLIENTS } });
    const setPeriod = (period: 'swap' | 'steady' | null) => clients.postMessage({ period });
    // GC pauses stop every request in flight: counted per period so a ratio can be read against them.
    const gcs: { start: number; end: number }[] = [];
    const gcObserver = new PerformanceObserver((l) => { for (const e of l.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration }); });
    gcObserver.observe({ entryTypes: ['gc'] });
    const periods: { swap: boolean; start: number; end: number }[] = [];
    // Warm-up; then swap blocks and steady blocks alternate, each steady block as long as the
    // swap before it, so both see the same background load (a shared 2-core machine is noisy).
    await new Promise((r) => setTimeout(r, 1000));
    let swapMs = 0;
    for (let i = 0; i < SWAPS; i++) {
      setPeriod('swap');
      const t = nowMs();
      const p0 = performance.now();
      await fleet.swapTo(i % 2 === 0 ? 2 : 1);
      const took = nowMs() - t;
      const p1 = performance.now();
      swapMs += took;
      setPeriod('steady');
      await new Promise((r) => setTimeout(r, Math.max(50, took)));
      periods.push({ swap: true, start: p0, end: p1 }, { swap: false, start: p1, end: performance.now() });
    }
    setPeriod(null);
    gcObserver.disconnect();
    const result = new Promise<{ swap: number[]; steady: number[]; failed: number }>((resolve, reject) => { clients.once('message', resolve); clients.once('error', reject); });
    clients.postMessage({ stop: true });
    const { swap: during, steady, failed } = await result;
    await clients.terminate();
    if (failed) throw new Error(`${failed} predictions failed during the benchmark`);
    const d = summarize(during); const s = summarize(steady);
    const gcIn = (swap: boolean) => {
      const hit = gcs.filter((g) => periods.some((p) => p.swap === swap && g.start < p.end && g.end > p.start));
      const ms = periods.filter((p) => p.swap === swap).reduce((a, p) => a + p.end - p.start, 0);
      return `${hit.length} pauses, ${hit.reduce((a, g) => a + g.end - g.start, 0).toFixed(1)} ms in ${(ms / 1000).toFixed(2)} s`;
    };
    const slower = during.filter((x) => x > s.p99).length;
    return {
      name: `agent hot-swap: predict latency during ${SWAPS} swaps vs steady state (ms)`,
      ours: { p50: d.p50, p99: d.p99, requests: d.n },
      baseline: { p50: s.p50, p99: s.p99, requests: s.n },
      ratios: [{ name: 'p99 swaps/steady', value: d.p99 / s.p99, goal: 1.25 }, { name: 'p50 swaps/steady', value: d.p50 / s.p50 }],
      notes: [
        `${CLIENTS} keep-alive HTTP clients back to back, on a thread of their own (callers are other programs); ${SWAPS} swaps (deploy via the hub in its own niced process, assignment over MQTT; the end of a swap is the agent's 'installed' event) took ${(swapMs / 1000).toFixed(1)} s (after the first, the other version waits in the previous slot, so a swap is verify (the assignment; the manifest's verified result is remembered by its signed bytes) + load + smoke/golden + switch + commit); 0 failed requests`,
        inferenceThread
          ? 'model MLP 17→64→2; sessions are created, smoke-tested, run and released on the agent\'s inference thread (inferenceThread: true, the default); signatures are checked on the threadpool'
          : 'model MLP 17→64→2; inferenceThread: false: each swap loads a new onnxruntime session on the same event loop the predictions use',
        `p99 of the swap periods is their ${Math.ceil(d.n / 100)}th-slowest request (${SWAPS} swaps so that the swap periods hold enough requests for a stable p99); ${slower} of ${d.n} (${((100 * slower) / d.n).toFixed(2)}%) were slower than the steady p99 (1% if swaps changed nothing)`,
        `GC during swaps: ${gcIn(true)}; during steady periods: ${gcIn(false)}`,
      ],
    };
  } finally {
    await fleet.close();
  }
}
