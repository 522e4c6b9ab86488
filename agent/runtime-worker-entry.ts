/**
 * The inference thread (agent/runtime-worker.ts starts it): onnxruntime-node's
 * session creation, smoke runs, inference and release run here, off the event
 * loop that serves predictions and reads MQTT. An ORT session cannot move
 * between threads, so every call on a session comes here, by handle. The
 * in-process runtime (agent/runtime.ts) does the work: one ORT code path.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { isFleetcastError } from '@fleetcast/protocol/errors.js';
import { agentError } from './errors.js';
import { createOrtRuntime, type LoadedModel } from './runtime.js';
import { threadPriority } from './thread-priority.js';
import { RUNTIME_TRACE, threadId, threadSched, traceNow, type ThreadTrace } from './runtime-trace.js';
import { outputTransfers, type ThreadError, type ThreadReply, type ThreadRequest, type ThreadWorkerData } from './runtime-thread-messages.js';

const port = parentPort!;
const data = workerData as ThreadWorkerData;
const runtime = createOrtRuntime({ intraOpNumThreads: data.intraOpNumThreads });
const models = new Map<number, LoadedModel>();
// Below the serving threads while this thread holds no session: it is then loading and checking a swap's next model
// (or releasing the last one); back to its own nice once it holds one, before it serves (agent/thread-priority.ts).
const priority = threadPriority(data.backgroundNice ?? 0);
// onnxruntime makes a session's intra-op threads (all but this one; none with intraOpNumThreads 1) while it creates the
// session, and a new thread starts at its creator's nice: made while this thread is lowered, they would run the
// session's predictions below serving for as long as it lives. So the session is then created at the agent's nice
// (only reading and hashing the file stay lowered); `creating` keeps a release or a failed load from lowering the
// thread under another session's creation.
const SESSION_MAKES_THREADS = data.intraOpNumThreads !== 1;
let creating = 0;
/** Lowered only while it holds no session and creates none that makes threads. */
function settlePriority(): void { priority.background(models.size === 0 && creating === 0); }
settlePriority();
/** Runs in flight per handle: a release waits for them, so it never disposes of a session under a running call. */
const running = new Map<number, Set<Promise<unknown>>>();
let nextHandle = 1;

function errorOf(e: unknown): ThreadError {
  if (isFleetcastError(e)) return { code: e.code, message: e.message, status: e.status, details: { ...e.details } };
  return { message: e instanceof Error ? e.message : String(e) };
}

async function handle(m: ThreadRequest): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> {
  switch (m.t) {
    case 'load': {
      let source = m.source;
      if (typeof source === 'string') {
        // The session is made from the very bytes hashed here, never from the path: the agent hashed the file before
        // asking, but a file read twice (hashed, then loaded by path) can change in between. Loaded again after the
        // thread died, the file must still be the bytes first loaded. A file missing or changed is the device's disk,
        // not the bundle: AGENT_ERR_SLOT_DAMAGED (transient), so the next delivery unpacks it again; AGENT_ERR_MODEL_LOAD
        // (permanent) would refuse a good bundle on this device for good.
        const bytes = await readFile(source).catch((e: Error) => { throw agentError('AGENT_ERR_SLOT_DAMAGED', `${m.source}: ${e.message}`); });
        if (createHash('sha256').update(bytes).digest('hex') !== m.key) {
          throw agentError('AGENT_ERR_SLOT_DAMAGED', m.reload ? `${m.source} changed on disk since it was loaded; the model cannot be loaded again (after its inference thread ended) until the file is put back or the model reinstalled on the next assignment delivery` : `${m.source} does not hash to the model's sha256 ${m.key}: it changed on disk after it was checked`);
        }
        source = bytes;
      }
      if (SESSION_MAKES_THREADS) { creating++; settlePriority(); }
      const h = nextHandle++;
      let model: LoadedModel;
      try {
        model = await runtime.load(source, m.key);
        models.set(h, model);
      } finally {
        // Held: back to (or kept at) the agent's nice before it serves; failed: lowered again if it holds nothing.
        if (SESSION_MAKES_THREADS) creating--;
        settlePriority();
      }
      return { value: { handle: h, inputNames: model.inputNames, outputNames: model.outputNames } };
    }
    case 'run': {
      const model = models.get(m.handle);
      if (!model) throw new Error(`the session was released (handle ${m.handle})`);
      const run = model.run(m.feeds);
      const calls = running.get(m.handle) ?? new Set<Promise<unknown>>();
      running.set(m.handle, calls.add(run));
      try {
        const out = await run;
        return { value: out, transfer: outputTransfers(out) };
      } finally {
        calls.delete(run);
        if (calls.size === 0 && running.get(m.handle) === calls) running.delete(m.handle);
      }
    }
    case 'release': {
      const model = models.get(m.handle);
      // Gone for new runs at once; the runs already going finish on the session first.
      models.delete(m.handle);
      settlePriority();
      await Promise.allSettled(running.get(m.handle) ?? []);
      await model?.release();
      return { value: null };
    }
    case 'exit':
      // Test hook: a thread that dies by itself (as a native crash would end it).
      process.exit(m.code);
  }
}

const tid = RUNTIME_TRACE ? threadId() : 0;
/** The trace's thread side of one call (FLEETCAST_RUNTIME_TRACE=1 only): received at `rx` with schedstat `s0`, replied now. */
function traceOf(rx: number, s0: [number, number] | null): ThreadTrace {
  const s1 = threadSched();
  return { rx, tx: traceNow(), sched: s0 && s1 ? [s0[0], s0[1], s1[0], s1[1]] : null, tid };
}

port.on('message', (m: ThreadRequest) => {
  // Off (the default), a reply carries nothing more and nothing is read or made for it.
  const rx = RUNTIME_TRACE ? traceNow() : 0;
  const s0 = RUNTIME_TRACE ? threadSched() : null;
  handle(m).then(({ value, transfer }) => {
    const reply: ThreadReply = RUNTIME_TRACE ? { id: m.id, ok: true, value, trace: traceOf(rx, s0) } : { id: m.id, ok: true, value };
    try {
      port.postMessage(reply, transfer ?? []);
    } catch {
      // An output buffer that cannot be detached (memory owned by the native addon): copied instead.
      port.postMessage(reply);
    }
  }, (e: unknown) => {
    const reply: ThreadReply = RUNTIME_TRACE ? { id: m.id, ok: false, error: errorOf(e), trace: traceOf(rx, s0) } : { id: m.id, ok: false, error: errorOf(e) };
    port.postMessage(reply);
  });
});

port.postMessage({ t: 'ready', version: ort.env.versions.node ?? 'unknown', tid: threadId() });
