/**
 * Open-loop (constant-throughput) clients of agent-swap, in a worker thread: requests are scheduled at a
 * fixed rate whatever the replies do, as wrk2 does, each on a keep-alive socket from a pool large enough
 * that a request never waits for a free one (any that did is counted), and each request's latency is taken
 * from its SCHEDULED send time. A stall of the agent therefore counts for every request that should have
 * gone out during it (no coordinated omission), and the clients' own lateness (timer granularity, a busy
 * core) is in the figure too: it is reported apart as the send lag.
 * Times are process.hrtime (nowMs), the same clock on every thread, so the main thread sorts requests into
 * its swap and steady periods by their scheduled time.
 */
import { Agent as HttpAgent } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { postPredict } from './http.js';
import { nowMs } from './lib.js';

export interface OpenLoopResult {
  /** Per request, in schedule order: when it was due, when it was sent, when its reply was read (ms, nowMs clock). */
  scheduled: Float64Array;
  sent: Float64Array;
  done: Float64Array;
  /** Per request: requests already in flight when it was sent, and 1 when it opened a new connection. */
  inFlightBefore: Uint32Array;
  connected: Uint8Array;
  failed: number;
  /** What the first failures were (an HTTP status or the request's error), so that a failed run says why. */
  failures: string[];
  /** Requests issued while every socket of the pool was busy (they waited in the pool's queue). */
  waitedForSocket: number;
  /** Connections opened (the pool grows on demand; the agent's server closes idle ones). */
  connects: number;
  maxInFlight: number;
}

const { port, bodies, rate, sockets } = workerData as { port: number; bodies: string[]; rate: number; sockets: number };
const pool = new HttpAgent({ keepAlive: true, maxSockets: sockets });
const interval = 1000 / rate;
const scheduled: number[] = [];
const sent: number[] = [];
const done: number[] = [];
const inFlightBefore: number[] = [];
const connected: number[] = [];
const counts = { failed: 0, waitedForSocket: 0, connects: 0, maxInFlight: 0 };
const failures: string[] = [];
function failedWith(why: string): void {
  counts.failed++;
  if (failures.length < 5) failures.push(why);
}
let inFlight = 0;
let running = true;
let settled: (() => void) | null = null;

function fire(due: number): void {
  const i = scheduled.length;
  scheduled.push(due);
  sent.push(nowMs());
  done.push(Number.NaN);
  inFlightBefore.push(inFlight);
  connected.push(0);
  if (inFlight >= sockets) counts.waitedForSocket++;
  inFlight++;
  counts.maxInFlight = Math.max(counts.maxInFlight, inFlight);
  postPredict(pool, port, bodies[i % bodies.length]!, (s) => { if (s.connecting) { counts.connects++; connected[i] = 1; } }).then(
    (status) => { if (status !== 200) failedWith(`HTTP ${status}`); },
    (e: NodeJS.ErrnoException) => { failedWith(`${e.code ?? ''} ${e.message}`.trim()); },
  ).finally(() => {
    done[i] = nowMs();
    if (--inFlight === 0 && settled) settled();
  });
}

// Every timer turn (~1 ms, Node's floor) sends all requests that have come due since the last one.
let next = nowMs();
function tick(): void {
  if (!running) return;
  const now = nowMs();
  for (; next <= now; next += interval) fire(next);
  setTimeout(tick, 1);
}
tick();

parentPort!.on('message', () => {
  running = false;
  void new Promise<void>((r) => { if (inFlight === 0) r(); else settled = r; }).then(() => {
    pool.destroy();
    const result: OpenLoopResult = {
      scheduled: Float64Array.from(scheduled), sent: Float64Array.from(sent), done: Float64Array.from(done),
      inFlightBefore: Uint32Array.from(inFlightBefore), connected: Uint8Array.from(connected),
      ...counts, failures,
    };
    parentPort!.postMessage(result);
  });
});
