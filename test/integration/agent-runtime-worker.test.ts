/**
 * onnxruntime-node on the inference thread (agent/runtime-worker.ts), end to
 * end with the real runtime: the same outputs as the in-process runtime, the
 * same coded errors, the caller's arrays left intact, and a thread that dies
 * (terminated, or exiting by itself) neither leaves calls hanging nor stops
 * the model from serving.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createOrtRuntime, type TensorData } from '../../agent/runtime.js';
import { createRuntime } from '../../agent/runtime-select.js';
import { createWorkerRuntime, type WorkerModelRuntime } from '../../agent/runtime-worker.js';
import { failureClass } from '../../agent/install-failures.js';
import { openModel, smokeTest } from '../../agent/model-loader.js';
import type { ThreadReply } from '../../agent/runtime-thread-messages.js';
import { buildMlp } from '../../bundle-build/onnx-build.js';
import { buildEdgeTypes } from '../../bundle-build/onnx-build-edge.js';
import { makeBundle } from '../helpers/agent-test-hub.js';
import { cleanupTempDirs, makeKeys, tempDir } from '../helpers/env.js';

const runtimes: WorkerModelRuntime[] = [];
afterAll(async () => {
  for (const rt of runtimes) await rt.close();
  cleanupTempDirs();
});

async function workerRuntime(o: { idleThreadMs?: number; damagedRetryMs?: number } = {}): Promise<WorkerModelRuntime> {
  const rt = await createWorkerRuntime({ intraOpNumThreads: 1, ...o });
  runtimes.push(rt);
  return rt;
}

/** 'ended' once the thread has exited, 'still running' after 20 s (a leaked call keeps a thread, and the process, alive). */
function exitOf(thread: { once(event: 'exit', listener: () => void): unknown }): Promise<unknown> {
  const ended = new Promise((resolve) => thread.once('exit', () => resolve('ended')));
  return Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 20_000, 'still running'))]);
}

function modelFile(bytes: Uint8Array): { path: string; sha: string } {
  const path = join(tempDir('fleetcast-rt-worker-'), 'model.onnx');
  writeFileSync(path, bytes);
  return { path, sha: createHash('sha256').update(bytes).digest('hex') };
}

/** A float input and an int64 input, `rows` rows (the batch dimension is dynamic). */
function feeds(rows: number, shift = 0): Record<string, TensorData> {
  return {
    x: { type: 'float32', dims: [rows, 4], data: Float32Array.from({ length: rows * 4 }, (_, i) => Math.sin(i + shift)) },
    category: { type: 'int64', dims: [rows, 1], data: BigInt64Array.from({ length: rows }, (_, i) => BigInt((i + shift) % 5)) },
  };
}

const values = (t: TensorData) => Array.from(t.data as Float32Array);

describe('inference thread runtime', () => {
  it('serves a model (float + int64 inputs, batches of 1, 3 and 64) with the outputs of the in-process runtime, leaving the caller\'s arrays intact', async () => {
    const { path, sha } = modelFile(buildMlp({ categorical: true, seed: 11 }));
    const rt = await workerRuntime();
    expect(rt.name).toMatch(/^onnxruntime-node@\d/);
    expect(rt.name).toBe(createOrtRuntime().name); // bundles' compat.runtimes match it by prefix
    const inThread = await rt.load(path, sha);
    const inProcess = await createOrtRuntime().load(path, sha);
    expect([...inThread.inputNames].sort()).toEqual(['category', 'x']);
    expect(inThread.outputNames).toEqual(['y']);
    for (const rows of [1, 3, 64]) {
      const f = feeds(rows, rows);
      const before = values(f.x);
      const [a, b] = await Promise.all([inThread.run(f), inProcess.run(feeds(rows, rows))]);
      expect(a.y.type).toBe('float32');
      expect(a.y.dims).toEqual([rows, 2]);
      expect(values(a.y)).toEqual(values(b.y));
      // Feeds are copied to the thread, never moved: the caller's arrays still hold their values.
      expect(values(f.x)).toEqual(before);
      expect(f.category.data.length).toBe(rows);
    }
    // A feed that is a view into a larger buffer (a reused slab) travels as its own bytes only.
    const slab = new Float32Array(1000).fill(7);
    const f = feeds(2);
    slab.set(f.x.data as Float32Array, 100);
    const view = { ...f, x: { ...f.x, data: slab.subarray(100, 108) } };
    expect(values((await inThread.run(view)).y)).toEqual(values((await inProcess.run(feeds(2))).y));
    expect(slab.length).toBe(1000);
    expect(slab[0]).toBe(7);
    // Many calls in flight at once each get their own answer.
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => inThread.run(feeds(1 + (i % 4), i))));
    const want = await Promise.all(Array.from({ length: 20 }, (_, i) => inProcess.run(feeds(1 + (i % 4), i))));
    expect(many.map((o) => values(o.y))).toEqual(want.map((o) => values(o.y)));
    await inThread.release();
    await inThread.release(); // idempotent
    await inProcess.release();
  });

  it('loads from bytes as well as from a path', async () => {
    const bytes = buildMlp({ categorical: true, seed: 12 });
    const { path, sha } = modelFile(bytes);
    const rt = await workerRuntime();
    const fromBytes = await rt.load(bytes, sha);
    const fromPath = await rt.load(path, sha);
    expect(values((await fromBytes.run(feeds(3))).y)).toEqual(values((await fromPath.run(feeds(3))).y));
    expect(bytes.length).toBeGreaterThan(0); // the caller's bytes were copied, not moved
    await fromBytes.release();
    await fromPath.release();
  });

  it('keeps ORT\'s errors: an unloadable model is AGENT_ERR_MODEL_LOAD with the in-process message, a bad feed the same inference error', async () => {
    const rt = await workerRuntime();
    const garbage = new TextEncoder().encode('not a model');
    const inThread = await rt.load(garbage, 'k').catch((e: unknown) => e);
    const inProcess = await createOrtRuntime().load(garbage, 'k').catch((e: unknown) => e);
    expect(inThread).toMatchObject({ code: 'AGENT_ERR_MODEL_LOAD', status: 500, name: 'FleetcastError' });
    expect((inThread as Error).message).toBe((inProcess as Error).message);

    const { path, sha } = modelFile(buildMlp({ categorical: true, seed: 13 }));
    const a = await rt.load(path, sha);
    const b = await createOrtRuntime().load(path, sha);
    const wrong = { ...feeds(2), x: { type: 'float32' as const, dims: [2, 3], data: new Float32Array(6) } };
    const e1 = await a.run(wrong).catch((e: unknown) => e);
    const e2 = await b.run(wrong).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(Error);
    expect((e1 as Error).message).toBe((e2 as Error).message);
    expect((e1 as { code?: string }).code).toBe((e2 as { code?: string }).code);
    // The thread is fine after an error.
    expect((await a.run(feeds(2))).y.dims).toEqual([2, 2]);
    await a.release();
    await b.release();
  });

  it('a swap loads the next model on the thread that is not serving the active one', async () => {
    const v1 = modelFile(buildMlp({ categorical: true, seed: 21 }));
    const v2 = modelFile(buildMlp({ categorical: true, seed: 22 }));
    const rt = await workerRuntime();
    const want = async (f: { path: string; sha: string }) => values((await (await createOrtRuntime().load(f.path, f.sha)).run(feeds(2))).y);
    const a = await rt.load(v1.path, v1.sha);
    expect(rt.sessionsPerThread).toEqual([1, 0]);
    const b = await rt.load(v2.path, v2.sha); // the swap's new model, while `a` serves
    expect(rt.sessionsPerThread).toEqual([1, 1]);
    expect(values((await a.run(feeds(2))).y)).toEqual(await want(v1));
    expect(values((await b.run(feeds(2))).y)).toEqual(await want(v2));
    await a.release(); // the old model drained
    expect(rt.sessionsPerThread).toEqual([0, 1]);
    const c = await rt.load(v1.path, v1.sha); // the next swap goes back to the first thread
    expect(rt.sessionsPerThread).toEqual([1, 1]);
    expect(values((await c.run(feeds(2))).y)).toEqual(await want(v1));
    await expect(rt.load(new TextEncoder().encode('not a model'), 'k')).rejects.toMatchObject({ code: 'AGENT_ERR_MODEL_LOAD' });
    expect(rt.sessionsPerThread).toEqual([1, 1]); // a failed load holds nothing
    await b.release();
    await c.release();
    expect(rt.sessionsPerThread).toEqual([0, 0]);
  });

  it('a thread that holds no session ends after the idle time, and a later load starts it again', async () => {
    const { path, sha } = modelFile(buildMlp({ categorical: true, seed: 23 }));
    const rt = await workerRuntime({ idleThreadMs: 20 });
    const a = await rt.load(path, sha);
    const b = await rt.load(path, sha);
    expect(rt.sessionsPerThread).toEqual([1, 1]);
    const first = rt.thread!;
    const ended = new Promise((resolve) => first.once('exit', resolve));
    await a.release();
    await ended; // nothing held there any more
    expect(rt.thread).toBeNull();
    expect(values((await b.run(feeds(2))).y)).toHaveLength(4); // the other thread still serves
    const c = await rt.load(path, sha);
    expect(rt.thread).not.toBeNull();
    expect(values((await c.run(feeds(2))).y)).toEqual(values((await b.run(feeds(2))).y));
    await b.release();
    await c.release();
  });

  it('a load that arrives while an idle thread is ending starts a new thread instead of failing with AGENT_ERR_RUNTIME_LOST', async () => {
    const { path, sha } = modelFile(buildMlp({ categorical: true, seed: 24 }));
    const rt = await workerRuntime({ idleThreadMs: 1 });
    const first = rt.thread!;
    // The idle timer ends the first thread; a swap's load comes in right then, before the thread has exited.
    const terminate = first.terminate.bind(first);
    const loaded = new Promise<Awaited<ReturnType<typeof rt.load>> | unknown>((resolve) => {
      first.terminate = () => {
        const ending = terminate();
        rt.load(path, sha).then(resolve, resolve);
        return ending;
      };
    });
    const m = await loaded;
    expect(m).not.toBeInstanceOf(Error);
    const model = m as Awaited<ReturnType<typeof rt.load>>;
    expect(values((await model.run(feeds(2))).y)).toHaveLength(4);
    expect(rt.thread).not.toBe(first);
    await model.release();
  });

  it('a thread that dies during the smoke run fails it with AGENT_ERR_RUNTIME_LOST (transient: retried on redelivery), not AGENT_ERR_SMOKE_FAILED (which refuses the bundle for good)', async () => {
    const b = await makeBundle(makeKeys(), { version: 1, mlp: { seed: 25 } });
    const rt = await workerRuntime();
    const info = { bundleId: b.bundleId, name: b.manifest.name, version: b.manifest.version, rawSha256: b.manifest.payload.rawSha256, installedAt: 0 };
    const entry = await openModel(rt, b.model, b.manifest, info, 64);
    await smokeTest(entry, 1e-4); // the bundle itself is fine
    // The thread ends (as a native crash ends it) with the smoke inference queued behind the exit.
    const thread = rt.thread!;
    const post = thread.postMessage.bind(thread);
    thread.postMessage = (m: { t?: string }, transfer?: readonly ArrayBuffer[]) => {
      if (m.t === 'run') post({ id: -3, t: 'exit', code: 9 });
      post(m, transfer);
    };
    const e = await smokeTest(entry, 1e-4).catch((err: unknown) => err);
    expect(e).toMatchObject({ code: 'AGENT_ERR_RUNTIME_LOST' });
    expect(failureClass('AGENT_ERR_RUNTIME_LOST')).toBe('transient');
    await entry.model.release();
  });

  it('a Node Buffer feed (uint8 image, bool flags) is copied to the thread, not moved: the caller\'s Buffer keeps its bytes', async () => {
    const bytes = buildEdgeTypes();
    const sha = createHash('sha256').update(bytes).digest('hex');
    const rt = await workerRuntime();
    const inThread = await rt.load(bytes, sha);
    const inProcess = await createOrtRuntime().load(bytes, sha);
    // Buffer.prototype.slice is a view, not a copy: copying with it would move the caller's own ArrayBuffer.
    const img = Buffer.alloc(48);
    for (let i = 0; i < img.length; i++) img[i] = (i * 7) % 256;
    const flag = Buffer.alloc(2);
    flag[0] = 1;
    const f: Record<string, TensorData> = {
      h: { type: 'float16', dims: [1, 4], data: new Uint16Array([0x3c00, 0x4000, 0, 0xbc00]) },
      img: { type: 'uint8', dims: [1, 4, 4, 3], data: img },
      flag: { type: 'bool', dims: [1, 2], data: flag },
      word: { type: 'string', dims: [1, 1], data: ['hello'] },
    };
    const a = await inThread.run(f);
    expect(img.length).toBe(48);
    expect(img[5]).toBe(35);
    expect(flag.length).toBe(2);
    const b = await inProcess.run(f);
    expect(Array.from(a.img_max.data as Uint8Array)).toEqual(Array.from(b.img_max.data as Uint8Array));
    expect(Array.from(a.flag_not.data as Uint8Array)).toEqual([0, 1]);
    expect(a.word_echo.data).toEqual(['hello']);
    await inThread.release();
    await inProcess.release();
  });

  it('a call whose message cannot be posted is refused at once and leaves nothing waiting (the idle thread still ends)', async () => {
    const { path, sha } = modelFile(buildMlp({ categorical: true, seed: 26 }));
    const rt = await workerRuntime({ idleThreadMs: 1 });
    const m = await rt.load(path, sha);
    // Not cloneable (a caller outside the validator's typing): postMessage throws DataCloneError.
    const bad = { ...feeds(1), x: { type: 'float32' as const, dims: [1, 4], data: [() => 0] as unknown as Float32Array } };
    await expect(m.run(bad)).rejects.toThrow();
    const ended = exitOf(rt.thread!);
    await m.release();
    // Nothing left waiting on it: the idle thread ends.
    expect(await ended).toBe('ended');
    expect(rt.thread).toBeNull();
  });

  it('Idle_thread_ends_after_calls_in_flight: a thread whose last session is released while a call is still running ends once that call is answered', async () => {
    const { path, sha } = modelFile(buildMlp({ categorical: true, seed: 27 }));
    const rt = await workerRuntime({ idleThreadMs: 1 });
    const m = await rt.load(path, sha);
    const ended = exitOf(rt.thread!);
    // A run of 200,000 rows is still in the thread when the 1 ms idle time is over; the release queues behind it.
    const running = m.run(feeds(200_000));
    await m.release();
    expect((await running).y.dims[0]).toBe(200_000);
    expect(await ended).toBe('ended');
    expect(rt.thread).toBeNull();
  });

  it('release frees the session in the thread', async () => {
    const { path, sha } = modelFile(buildMlp({ categorical: true, seed: 14 }));
    const rt = await workerRuntime();
    const m = await rt.load(path, sha); // the first session of a fresh thread has handle 1
    await m.release();
    await expect(m.run(feeds(1))).rejects.toThrow(/released/);
    // Asked directly, the thread no longer holds handle 1.
    const thread = rt.thread!;
    const reply = await new Promise<ThreadReply>((resolve) => {
      const on = (r: ThreadReply) => { if (r.id === -1) { thread.off('message', on); resolve(r); } };
      thread.on('message', on);
      thread.postMessage({ id: -1, t: 'run', handle: 1, feeds: feeds(1) });
    });
    expect(reply).toMatchObject({ ok: false, error: { message: expect.stringMatching(/released \(handle 1\)/) } });
  });

  it('a thread that dies fails the calls waiting on it with AGENT_ERR_RUNTIME_LOST, and the next call serves from a new thread', async () => {
    const { path, sha } = modelFile(buildMlp({ categorical: true, seed: 15 }));
    const want = values((await (await createOrtRuntime().load(path, sha)).run(feeds(3))).y);
    const rt = await workerRuntime();
    const m = await rt.load(path, sha);
    const first = rt.thread!;

    // The thread exits by itself (as a native crash ends it) with calls queued behind the exit: they never get an answer from it.
    first.postMessage({ id: -2, t: 'exit', code: 7 });
    const waiting = await Promise.allSettled([m.run(feeds(3)), m.run(feeds(1))]);
    for (const w of waiting) {
      expect(w.status).toBe('rejected');
      expect((w as PromiseRejectedResult).reason).toMatchObject({ code: 'AGENT_ERR_RUNTIME_LOST', status: 503, message: expect.stringContaining('exit code 7') });
    }
    // Recovered: a new thread, the session loaded again from its file.
    expect(values((await m.run(feeds(3))).y)).toEqual(want);
    const second = rt.thread!;
    expect(second).not.toBe(first);

    // Terminated from outside: the same.
    await second.terminate();
    expect(values((await m.run(feeds(3))).y)).toEqual(want);
    expect(rt.thread).not.toBe(second);
    await m.release();
  });

  it('after the thread died, a model file that changed on disk is not loaded again', async () => {
    const { path, sha } = modelFile(buildMlp({ categorical: true, seed: 16 }));
    const rt = await workerRuntime();
    const m = await rt.load(path, sha);
    await m.run(feeds(1));
    writeFileSync(path, buildMlp({ categorical: true, seed: 17 }));
    await rt.thread!.terminate();
    await expect(m.run(feeds(1))).rejects.toMatchObject({ code: 'AGENT_ERR_SLOT_DAMAGED', message: expect.stringContaining('changed on disk') });
    await m.release();
  });

  it('Damaged_reload_fails_fast_then_heals: after the thread died, calls within the retry time get the refusal without reading the file again; the first call after it loads the file put back', async () => {
    const good = buildMlp({ categorical: true, seed: 20 });
    const { path, sha } = modelFile(good);
    const rt = await workerRuntime({ damagedRetryMs: 3_000 });
    const m = await rt.load(path, sha);
    const want = values((await m.run(feeds(2))).y);
    writeFileSync(path, buildMlp({ categorical: true, seed: 21 }));
    await rt.thread!.terminate();
    await expect(m.run(feeds(2))).rejects.toMatchObject({ code: 'AGENT_ERR_SLOT_DAMAGED', message: expect.stringContaining('changed on disk since it was loaded') });
    // The good bytes are back, yet a call now still gets the refusal: it did not read the file (before, every call
    // read and hashed the whole model file again).
    writeFileSync(path, good);
    await expect(m.run(feeds(2))).rejects.toMatchObject({ code: 'AGENT_ERR_SLOT_DAMAGED' });
    await new Promise((r) => setTimeout(r, 3_100));
    expect(values((await m.run(feeds(2))).y)).toEqual(want);
    await m.release();
  });

  it('Thread_loads_the_bytes_it_hashed: a model file that no longer hashes to its sha256 is refused at the first load, a good one served', async () => {
    // The installer hashes the file on the agent's loop and then asks the thread to load it: a file that changed in
    // between must not become a session. The thread makes the session from the very bytes it hashed.
    const good = buildMlp({ categorical: true, seed: 18 });
    const { path, sha } = modelFile(good);
    writeFileSync(path, buildMlp({ categorical: true, seed: 19 }));
    const rt = await workerRuntime();
    await expect(rt.load(path, sha)).rejects.toMatchObject({ code: 'AGENT_ERR_SLOT_DAMAGED', message: expect.stringContaining('changed on disk after it was checked') });
    writeFileSync(path, good);
    const m = await rt.load(path, sha);
    expect(values((await m.run(feeds(2))).y)).toHaveLength(4);
    await m.release();
  });

  it('Changed_model_file_is_a_damaged_slot_not_a_refusal: a model file changed or gone after the check fails the install as transient, never refusing the bundle', async () => {
    // The bundle verified; the device's copy of its model changed (or went) between the installer's hash and the
    // thread's read. A permanent code would refuse the good bundle on this device for good; the next delivery of the
    // assignment must unpack it again instead.
    const good = buildMlp({ categorical: true, seed: 20 });
    const { path, sha } = modelFile(good);
    writeFileSync(path, buildMlp({ categorical: true, seed: 21 }));
    const rt = await workerRuntime();
    const changed = (await rt.load(path, sha).then(() => ({ code: 'loaded' }), (e: unknown) => e)) as { code: string };
    const gone = (await rt.load(join(tempDir(), 'missing.onnx'), sha).then(() => ({ code: 'loaded' }), (e: unknown) => e)) as { code: string };
    for (const e of [changed, gone]) {
      expect(e).toMatchObject({ code: 'AGENT_ERR_SLOT_DAMAGED' });
      expect(failureClass(e.code)).toBe('transient');
    }
    // Bytes that are not a model stay the model's fault (permanent).
    const bad = (await rt.load(new TextEncoder().encode('not a model'), 'k').then(() => ({ code: 'loaded' }), (e: unknown) => e)) as { code: string };
    expect(failureClass(bad.code)).toBe('permanent');
  });

  it('is the daemon\'s choice for runtime "node" unless inferenceThread is false', async () => {
    const threaded = await createRuntime({ runtime: 'node', intraOpNumThreads: 1 });
    expect((threaded as WorkerModelRuntime).thread).toBeTruthy();
    await threaded.close?.();
    const inProcess = await createRuntime({ runtime: 'node', intraOpNumThreads: 1, inferenceThread: false });
    expect('thread' in inProcess).toBe(false);
    expect(inProcess.name).toBe(threaded.name);
  });
});
