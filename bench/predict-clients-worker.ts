/**
 * The clients of the agent benchmarks, in a worker thread: keep-alive HTTP
 * clients posting predictions back to back to the agent on loopback. On a device
 * the callers are other programs; on the agent's own event loop their request
 * writing and reply parsing would wait behind whatever the agent does there
 * (and delay the agent's work in turn), so a swap would be counted twice.
 * Each request counts for the period it started in, as the main thread names it.
 * Closed loop: at most `clients` requests are in flight, so this measures what the agent serves at
 * saturation (agent-swap's capacity, and its informational saturated ratio).
 */
import { Agent as HttpAgent } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { postPredict } from './http.js';
import { nowMs } from './lib.js';

type Period = 'swap' | 'steady' | null;
const { port, bodies, clients } = workerData as { port: number; bodies: string[]; clients: number };
const pool = new HttpAgent({ keepAlive: true, maxSockets: clients });
const times: Record<'swap' | 'steady', number[]> = { swap: [], steady: [] };
let period: Period = null;
let running = true;
let failed = 0;
/** Replies read so far in any period (agent-swap's capacity is read from it). */
let completed = 0;

async function client(c: number): Promise<void> {
  for (let i = c; running; i++) {
    const into = period;
    const t = nowMs();
    const status = await postPredict(pool, port, bodies[i % bodies.length]!);
    if (status !== 200) failed++;
    completed++;
    if (into) times[into].push(nowMs() - t);
  }
}

const all = Array.from({ length: clients }, (_, c) => client(c));
parentPort!.on('message', (m: { period: Period } | { count: true } | { stop: true }) => {
  if ('period' in m) { period = m.period; return; }
  if ('count' in m) { parentPort!.postMessage({ completed, at: nowMs() }); return; }
  running = false;
  void Promise.all(all).then(() => {
    pool.destroy();
    parentPort!.postMessage({ swap: times.swap, steady: times.steady, failed });
  });
});
