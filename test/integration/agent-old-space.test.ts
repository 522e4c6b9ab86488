/**
 * What one prediction leaves in the agent's old generation. Under load the
 * agent's mark-compacts (pauses that stop every request in flight) come as
 * often as its old space fills, so the predict path must not put per-request
 * garbage there: on Node 20 (V8 11.3) an object literal that starts with a
 * spread and then names a property (`{ ...headers, 'content-length': n }`)
 * makes a new hidden class per call, allocated straight into the old space.
 *
 * Measured as old-space growth per call (the sum of its increases, so a
 * collection in between cannot hide any), against a control doing the same
 * work without our code in the same process: a bare node:http server writing
 * the same reply, and a bare worker thread answering the same message. Each
 * side is warmed up first (code, feedback and hidden-class transitions are
 * made once) and the two alternate, so whatever the process itself adds is
 * in both. The bounds sit between the fix (a difference of about 0) and the
 * spreads (~400 B per reply, 70-120 B per inference-thread call).
 */
import { request, Agent as HttpAgent, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { HttpApi, type PredictService } from '../../agent/http-api.js';
import { createWorkerRuntime, type WorkerModelRuntime } from '../../agent/runtime-worker.js';
import type { TensorData } from '../../agent/runtime.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const CALLS = 3000;
const ROUNDS = 3;

const oldSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size;

/** Old-space bytes added per call over CALLS sequential calls, after CALLS of warm-up. */
async function growthPerCall(call: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < CALLS; i++) await call();
  gc();
  let grown = 0;
  let last = oldSpace();
  for (let i = 0; i < CALLS; i++) {
    await call();
    const now = oldSpace();
    if (now > last) grown += now - last;
    last = now;
  }
  return grown / CALLS;
}

/** The median over ROUNDS of (ours − control), alternating the two. */
async function extraPerCall(ours: () => Promise<unknown>, control: () => Promise<unknown>): Promise<{ median: number; rounds: string[] }> {
  const diffs: number[] = [];
  const rounds: string[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const c = await growthPerCall(control);
    const o = await growthPerCall(ours);
    diffs.push(o - c);
    rounds.push(`ours ${o.toFixed(0)} B, control ${c.toFixed(0)} B`);
  }
  diffs.sort((a, b) => a - b);
  return { median: diffs[Math.floor(ROUNDS / 2)], rounds };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => { for (const c of cleanups.reverse()) await c(); });

describe('old-space garbage per prediction', () => {
  it('Http_reply_adds_no_old_space_garbage: a /v1/predict reply grows the old space no more than a bare node:http reply', async () => {
    const reply = () => ({ outputs: { y: { dims: [1, 2], data: [0.1, 0.9] } }, model: { name: 'm', version: 1 }, latencyMs: 0.1 });
    const svc: PredictService = { predict: async () => reply(), infer: async () => { throw new Error('not used'); }, served: () => null, status: () => ({}) };
    const api = new HttpApi(svc, { maxBodyBytes: 65_536 });
    const { port } = await api.listen('127.0.0.1', 0);
    cleanups.push(() => api.close());
    // The same work without our code: read the body, parse it, write the same JSON reply with the same headers.
    const bare = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (b: Buffer) => parts.push(b));
      req.on('end', async () => {
        JSON.parse(Buffer.concat(parts).toString('utf8'));
        const b = Buffer.from(JSON.stringify(await Promise.resolve(reply())));
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': b.length, 'cache-control': 'no-store' });
        res.end(b);
      });
    });
    await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { bare.closeAllConnections(); bare.close(() => r()); }));
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const body = JSON.stringify({ inputs: { x: [[1, 2, 3, 4]] } });
    const post = (to: number) => () => new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: to, method: 'POST', path: '/v1/predict', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
      req.end(body);
    });
    const r = await extraPerCall(post(port), post((bare.address() as AddressInfo).port));
    // With `{ ...headers, 'content-length', 'cache-control' }` in the reply: ~350-450 B more per reply; without, about 0.
    expect(r.median, r.rounds.join('; ')).toBeLessThan(150);
  });

  it('Inference_thread_call_adds_no_old_space_garbage: a run on the inference thread grows the old space no more than a bare worker round trip', async () => {
    const rt: WorkerModelRuntime = await createWorkerRuntime({ intraOpNumThreads: 1 });
    cleanups.push(() => rt.close());
    const model = await rt.load(buildMlp({ categorical: true, seed: 6 }), 'k');
    const feeds = (): Record<string, TensorData> => ({ x: { type: 'float32', dims: [1, 4], data: new Float32Array(4) }, category: { type: 'int64', dims: [1, 1], data: new BigInt64Array(1) } });
    // The same messages through a bare worker: feeds copied and moved there, a float32 output moved back.
    const echo = new Worker(`const { parentPort } = require('node:worker_threads');
      parentPort.on('message', (m) => { const y = new Float32Array(4); parentPort.postMessage({ id: m.id, ok: true, value: { y: { type: 'float32', dims: [2, 2], data: y } } }, [y.buffer]); });`, { eval: true });
    cleanups.push(async () => { await echo.terminate(); });
    const waiting = new Map<number, () => void>();
    let nextId = 0;
    echo.on('message', (m: { id: number }) => { const done = waiting.get(m.id)!; waiting.delete(m.id); done(); });
    const bareCall = () => new Promise<void>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      const f = feeds();
      const x = (f.x.data as Float32Array).slice();
      const c = (f.category.data as BigInt64Array).slice();
      echo.postMessage({ id, t: 'run', handle: 1, feeds: { x: { type: 'float32', dims: f.x.dims, data: x }, category: { type: 'int64', dims: f.category.dims, data: c } } }, [x.buffer, c.buffer]);
    });
    const r = await extraPerCall(() => model.run(feeds()), bareCall);
    // With `postMessage({ ...req, id })`: ~70-120 B more per call; with `{ id, ...req }` about 0.
    expect(r.median, r.rounds.join('; ')).toBeLessThan(35);
  });
});
