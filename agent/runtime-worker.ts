/**
 * onnxruntime-node on a thread of its own (the agent daemon's default for
 * `runtime: "node"`, option inferenceThread). Creating an ORT session is one
 * synchronous native call of about a millisecond; on the event loop that
 * serves predictions every request in flight waited for it (and for the smoke
 * runs and the release) at each model swap. Here the loop only posts messages:
 * the worker (agent/runtime-worker-entry.ts) holds the sessions, and since an
 * ORT session cannot move between threads, inference runs there too (a round
 * trip costs about 0.1 ms). A swap loads the next model on a second thread,
 * so predictions on the active model do not wait behind its creation; a
 * thread with no session ends after a while (each holds about 10 MiB).
 *
 * When the thread dies (a native crash, an out-of-memory abort), the calls
 * waiting on it fail with AGENT_ERR_RUNTIME_LOST at once; the next call starts
 * a new thread and each model loads again from its source (a file is checked
 * against its raw sha256 first), so the agent keeps serving without a restart.
 */
import { Worker } from 'node:worker_threads';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { agentError } from './errors.js';
import type { LoadedModel, ModelRuntime, TensorData } from './runtime.js';
import { RUNTIME_TRACE, recordTrace, traceNow, type TraceEntry } from './runtime-trace.js';
import type { LoadedReply, ThreadError, ThreadReady, ThreadReply, ThreadRequest } from './runtime-thread-messages.js';

// Under vitest the agent runs from its .ts sources; the thread runs the compiled entry.
const WORKER_URL = import.meta.url.endsWith('.ts') ? new URL('./dist/runtime-worker-entry.js', import.meta.url) : new URL('./runtime-worker-entry.js', import.meta.url);

export interface WorkerRuntimeOptions {
  intraOpNumThreads?: number;
  /** A thread that has held no session for this long ends (its memory goes back); the next load starts one again. */
  idleThreadMs?: number;
  /**
   * After a thread died, a model whose file no longer hashes right cannot be loaded again: calls in the next this
   * many ms fail at once with that error instead of each reading and hashing the whole file again; the first call
   * after it tries again (the file may have been put back).
   */
  damagedRetryMs?: number;
  /**
   * Linux: the nice a thread is raised by while it holds no session (it loads and checks the next model of a swap),
   * so that this work takes only the cores serving leaves; back before it serves. 0: off (agent/thread-priority.ts).
   */
  backgroundNice?: number;
}

/** Long enough that a series of swaps keeps both threads, short enough that a device at rest keeps one (about 10 MiB each). */
const IDLE_THREAD_MS = 30_000;
const DAMAGED_RETRY_MS = 5_000;

export interface WorkerModelRuntime extends ModelRuntime {
  /** Ends the thread; sessions go with it. */
  close(): Promise<void>;
  /** @internal the first thread, for tests that kill it. */
  readonly thread: Worker | null;
  /** @internal the threads' ids (Linux; 0 for one not started or elsewhere). */
  readonly threadIds: readonly number[];
  /** @internal sessions held per thread. */
  readonly sessionsPerThread: readonly number[];
}

type Request = ThreadRequest extends infer R ? R extends { id: number } ? Omit<R, 'id'> : never : never;

function errorFrom(e: ThreadError): Error {
  return e.code ? new FleetcastError(e.code, e.message, e.status, e.details) : new Error(e.message);
}

/** Feeds are copied, never moved: the caller may still use its arrays (a validator's reused slab). Each copy holds only its own bytes. */
function copyFeeds(feeds: Readonly<Record<string, TensorData>>): { feeds: Record<string, TensorData>; transfer: ArrayBuffer[] } {
  const out: Record<string, TensorData> = {};
  const transfer: ArrayBuffer[] = [];
  for (const [name, t] of Object.entries(feeds)) {
    if (Array.isArray(t.data)) { out[name] = t; continue; }
    // A Node Buffer's slice is a view of the same memory, not a copy: moving its buffer would empty the caller's.
    const data = Buffer.isBuffer(t.data) ? new Uint8Array(t.data) : t.data.slice();
    transfer.push(data.buffer as ArrayBuffer);
    out[name] = { type: t.type, dims: t.dims, data };
  }
  return { feeds: out, transfer };
}

interface Pending { resolve(v: unknown): void; reject(e: Error): void; trace?: TraceEntry }

/**
 * The calls waiting for the thread's answer, by id. Not a Map: V8 replaces a Map's hash table as entries come and go,
 * and a replaced table keeps a pointer to its successor and its entries (for iterators still walking it). Once one table
 * is in the old generation, its successor is held through it (scavenges take old-to-young pointers as roots, dead or not),
 * promoted, and so on: the chain of tables, with the calls they held and what those held (the requests), stays until the
 * next mark-compact, ~0.6 kB per prediction under load. A dictionary object replaced when it grows keeps no successor.
 */
class PendingCalls {
  #byId: Record<number, Pending> = Object.create(null) as Record<number, Pending>;
  size = 0;

  get(id: number): Pending | undefined { return this.#byId[id]; }
  set(id: number, p: Pending): void { this.#byId[id] = p; this.size++; }
  delete(id: number): void {
    if (this.#byId[id] === undefined) return;
    delete this.#byId[id];
    this.size--;
  }

  /** Every call still waiting, and none left. */
  takeAll(): Pending[] {
    const all = Object.values(this.#byId);
    this.#byId = Object.create(null) as Record<number, Pending>;
    this.size = 0;
    return all;
  }
}

/** One inference thread, started again on demand after it died. */
class InferenceThread {
  #worker: Worker | null = null;
  #ready: Promise<string> | null = null;
  #generation = 0;
  #nextId = 1;
  readonly #pending = new PendingCalls();
  #closed = false;
  /** Sessions loaded here and not released (kept across a restart of the thread: they load again on use). */
  sessions = 0;

  constructor(private readonly opts: WorkerRuntimeOptions, private readonly index = 0) {}

  #idle: NodeJS.Timeout | null = null;

  get worker(): Worker | null { return this.#worker; }
  /** The running thread's id (Linux), or 0. */
  tid = 0;

  /** Sessions went to 0: end the thread if none comes back before the idle time is over. */
  idleFor(ms: number): void {
    this.#idle ??= setTimeout(() => {
      this.#idle = null;
      if (this.sessions !== 0 || !this.#worker) return;
      // Calls still on their way (a release behind a long run): look again after another idle time.
      if (this.#pending.size !== 0) { this.idleFor(ms); return; }
      // Forgotten before it has exited: a load that comes meanwhile starts a new thread rather than
      // posting to this one and failing with AGENT_ERR_RUNTIME_LOST when it exits.
      const ending = this.#worker;
      this.#worker = null;
      this.#ready = null;
      this.#generation++;
      void ending.terminate();
    }, ms).unref();
  }

  /** A load is coming: the thread stays. */
  keep(): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = null;
  }
  /** Bumped each time a thread ends: handles from an older one are gone. */
  get generation(): number { return this.#generation; }

  /** Start the thread (if none is running) and wait until onnxruntime-node has loaded in it; resolves to ORT's version. */
  start(): Promise<string> {
    if (this.#closed) return Promise.reject(agentError('AGENT_ERR_RUNTIME_LOST', 'the runtime was closed'));
    if (this.#ready) return this.#ready;
    const worker = new Worker(WORKER_URL, { workerData: { intraOpNumThreads: this.opts.intraOpNumThreads, backgroundNice: this.opts.backgroundNice } });
    // Only calls in flight keep the process alive (#track).
    worker.unref();
    this.#worker = worker;
    let failure: Error | null = null;
    const ready = new Promise<string>((resolve, reject) => {
      worker.on('message', (m: ThreadReply | ThreadReady) => {
        if ('t' in m) { this.tid = m.tid; resolve(m.version); return; }
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#untrack(m.id);
        if (p.trace) recordTrace({ ...p.trace, ...m.trace, back: traceNow() });
        if (m.ok) p.resolve(m.value); else p.reject(errorFrom(m.error));
      });
      worker.on('error', (e) => { failure = e; });
      worker.on('exit', (code) => {
        const why = `the inference thread ended (exit code ${code}${failure ? `: ${failure.message}` : ''})`;
        reject(agentError('AGENT_ERR_RUNTIME_LOST', why));
        if (this.#worker !== worker) return;
        this.#worker = null;
        this.#ready = null;
        this.#generation++;
        const lost = this.#pending.takeAll();
        for (const p of lost) p.reject(agentError('AGENT_ERR_RUNTIME_LOST', why));
      });
    });
    ready.catch(() => { /* seen by whoever awaits start() */ });
    this.#ready = ready;
    return ready;
  }

  /** Send one request; `generation` (when given) must still be the live thread's, else the handle in it is stale. */
  async call<T>(req: Request, transfer: ArrayBuffer[] = [], generation?: number): Promise<T> {
    await this.start();
    const worker = this.#worker;
    if (!worker || (generation !== undefined && generation !== this.#generation)) throw agentError('AGENT_ERR_RUNTIME_LOST', 'the inference thread ended while this call was on its way');
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const trace = RUNTIME_TRACE ? { thread: this.index, t: req.t, handle: 'handle' in req ? req.handle : undefined, posted: traceNow(), back: 0 } : undefined;
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, trace });
      if (this.#pending.size === 1) worker.ref();
      try {
        // The id first: `{ ...req, id }` would make a new hidden class per call in the old generation (agent/http-api.ts sendRaw).
        worker.postMessage({ id, ...req }, transfer);
      } catch (e) {
        // Not sent (a value that cannot be cloned): no answer will come, so nothing may keep waiting (or the thread referenced).
        this.#untrack(id);
        reject(e as Error);
      }
    });
  }

  #untrack(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker?.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.keep();
    await this.#worker?.terminate();
  }
}

class ThreadModel implements LoadedModel {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  #handle: number;
  #generation: number;
  #reloading: Promise<void> | null = null;
  #released = false;
  /** A reload refused because the file changed, and until when calls get that refusal without trying again. */
  #damaged: { error: unknown; until: number } | null = null;

  constructor(private readonly thread: InferenceThread, private readonly source: string | Uint8Array, private readonly key: string, loaded: LoadedReply, generation: number, private readonly idleMs: number, private readonly damagedRetryMs: number) {
    this.inputNames = loaded.inputNames;
    this.outputNames = loaded.outputNames;
    this.#handle = loaded.handle;
    this.#generation = generation;
  }

  async run(feeds: Readonly<Record<string, TensorData>>): Promise<Record<string, TensorData>> {
    if (this.#released) throw new Error('the session was released');
    if (this.#generation !== this.thread.generation) await this.#reload();
    const { feeds: copied, transfer } = copyFeeds(feeds);
    return this.thread.call({ t: 'run', handle: this.#handle, feeds: copied }, transfer, this.#generation);
  }

  /** The thread that held this session died: load it into the new one (one reload however many calls ask). */
  #reload(): Promise<void> {
    if (this.#damaged && performance.now() < this.#damaged.until) return Promise.reject(this.#damaged.error);
    this.#reloading ??= (async () => {
      try {
        await this.thread.start();
        const generation = this.thread.generation;
        const loaded = await this.thread.call<LoadedReply>({ t: 'load', source: this.source, key: this.key, reload: true });
        this.#handle = loaded.handle;
        this.#generation = generation;
        this.#damaged = null;
      } catch (e) {
        if (e instanceof FleetcastError && e.code === 'AGENT_ERR_SLOT_DAMAGED') this.#damaged = { error: e, until: performance.now() + this.damagedRetryMs };
        throw e;
      } finally {
        this.#reloading = null;
      }
    })();
    return this.#reloading;
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    if (--this.thread.sessions === 0) this.thread.idleFor(this.idleMs);
    // A session of a thread that ended went with it.
    if (this.#generation !== this.thread.generation) return;
    await this.thread.call({ t: 'release', handle: this.#handle }, [], this.#generation).catch(() => { /* the thread ended meanwhile: nothing left to free */ });
  }
}

/**
 * Starts the first thread and loads onnxruntime-node in it; rejects (so the caller can fall back to wasm) when the
 * native binding does not load there. Two threads at most: a model is loaded on the one holding fewer sessions, so
 * the next model of a swap is created, smoke-tested and later released on the thread that is not serving the active
 * one (a thread does one thing at a time: predictions would otherwise wait behind the session creation). A thread
 * starts on the first load it gets and ends after holding no session for idleThreadMs, so a device at rest runs one.
 */
export async function createWorkerRuntime(opts: WorkerRuntimeOptions = {}): Promise<WorkerModelRuntime> {
  const threads = [new InferenceThread(opts, 0), new InferenceThread(opts, 1)];
  const idleMs = opts.idleThreadMs ?? IDLE_THREAD_MS;
  let version: string;
  try {
    version = await threads[0].start();
  } catch (e) {
    await threads[0].close();
    throw e;
  }
  // Until a model is loaded, the first thread is only the proof that onnxruntime-node loads here.
  threads[0].idleFor(idleMs);
  return {
    name: `onnxruntime-node@${version}`,
    get thread() { return threads[0].worker; },
    get sessionsPerThread() { return threads.map((t) => t.sessions); },
    get threadIds() { return threads.map((t) => (t.worker ? t.tid : 0)); },
    async load(source, key) {
      const thread = threads[1].sessions < threads[0].sessions ? threads[1] : threads[0];
      // Counted before the load, so that two loads at once go to different threads.
      thread.sessions++;
      thread.keep();
      try {
        await thread.start();
        const generation = thread.generation;
        // Model bytes are copied to the thread (the caller's storage keeps its own); a path is read there.
        const loaded = await thread.call<LoadedReply>({ t: 'load', source, key, reload: false });
        return new ThreadModel(thread, source, key, loaded, generation, idleMs, opts.damagedRetryMs ?? DAMAGED_RETRY_MS);
      } catch (e) {
        if (--thread.sessions === 0) thread.idleFor(idleMs);
        throw e;
      }
    },
    close: async () => { await Promise.all(threads.map((t) => t.close())); },
  };
}
