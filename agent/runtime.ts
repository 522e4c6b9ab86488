/**
 * The model runtime seam. The agent only needs "load a model file" and "run
 * feeds"; tests of the real thing use onnxruntime-node, and the simulator can
 * share one session per distinct model across 1,000 in-process agents through a
 * refcounted cache (a session is immutable after creation and ORT allows
 * concurrent Run calls on one session, so sharing is safe).
 */
import ort from 'onnxruntime-node';
import type { ElementType } from '@fleetcast/protocol/manifest.js';
import { agentError } from './errors.js';

export type TensorArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array | string[];

/** A runtime-neutral tensor: validation builds these without touching the native addon. */
export interface TensorData { type: ElementType; dims: readonly number[]; data: TensorArray }

export interface LoadedModel {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Readonly<Record<string, TensorData>>): Promise<Record<string, TensorData>>;
  /** Idempotent; frees the session (or drops this holder's reference to a shared one). */
  release(): Promise<void>;
}

export interface ModelRuntime {
  readonly name: string;
  /**
   * Load a model from its file (a path) or its bytes (an agent on memory storage). `key` identifies
   * the model bytes (raw sha256): equal keys may share a session.
   */
  load(source: string | Uint8Array, key: string): Promise<LoadedModel>;
  /** Frees what the runtime holds beyond its models (the inference thread); the agent calls it when it stops. */
  close?(): Promise<void>;
}

interface CacheEntry { refs: number; session: Promise<ort.InferenceSession> }

/** Sessions shared by key, released when the last holder lets go. */
export class SessionCache {
  readonly #entries = new Map<string, CacheEntry>();

  get size(): number { return this.#entries.size; }
  refs(key: string): number { return this.#entries.get(key)?.refs ?? 0; }

  /** @internal used by the ORT runtime */
  acquire(key: string, create: () => Promise<ort.InferenceSession>): { session: Promise<ort.InferenceSession>; release: () => Promise<void> } {
    let e = this.#entries.get(key);
    if (!e) {
      const fresh: CacheEntry = { refs: 0, session: create() };
      // A failed load must not poison the cache for the next attempt.
      fresh.session.catch(() => { if (this.#entries.get(key) === fresh) this.#entries.delete(key); });
      this.#entries.set(key, fresh);
      e = fresh;
    }
    const entry = e;
    entry.refs++;
    let released = false;
    return {
      session: entry.session,
      release: async () => {
        if (released) return;
        released = true;
        if (--entry.refs > 0) return;
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
        const s = await entry.session.catch(() => null);
        await s?.release();
      },
    };
  }
}

export interface OrtRuntimeOptions {
  /** Share sessions between agents in one process (the simulator). */
  cache?: SessionCache;
  intraOpNumThreads?: number;
}

const SESSION_OPTIONS_BASE: ort.InferenceSession.SessionOptions = {
  // 3 = errors only: ORT's warnings about unused initializers would flood a device log.
  logSeverityLevel: 3,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

function toOrt(t: TensorData): ort.Tensor {
  return new ort.Tensor(t.type as ort.Tensor.Type, t.data as ort.Tensor.DataType, t.dims);
}

function fromOrt(t: ort.Tensor): TensorData {
  return { type: t.type as ElementType, dims: [...t.dims], data: t.data as TensorArray };
}

export function createOrtRuntime(opts: OrtRuntimeOptions = {}): ModelRuntime {
  const sessionOptions: ort.InferenceSession.SessionOptions = { ...SESSION_OPTIONS_BASE };
  if (opts.intraOpNumThreads) sessionOptions.intraOpNumThreads = opts.intraOpNumThreads;
  const cache = opts.cache ?? new SessionCache();
  return {
    name: `onnxruntime-node@${ort.env.versions.node ?? 'unknown'}`,
    async load(source, key) {
      // Without a shared cache each load gets its own key so sessions are never shared.
      const k = opts.cache ? key : `${key}:${Math.random()}`;
      const what = typeof source === 'string' ? source : `a model of ${source.length} bytes`;
      const held = acquireSession(cache, k, source, sessionOptions);
      let session: ort.InferenceSession;
      try {
        session = await held.session;
      } catch (e) {
        await held.release();
        throw agentError('AGENT_ERR_MODEL_LOAD', `${what}: ${(e as Error).message}`);
      }
      return modelOf(session, held.release);
    },
  };
}

/**
 * The session is created in a function of its own: a closure over the model's bytes inside load() would share its
 * scope with the returned model's run and release, and so keep the bytes (as large as the model, beside ORT's own
 * copy) alive for as long as the session serves.
 */
function acquireSession(cache: SessionCache, key: string, source: string | Uint8Array, options: ort.InferenceSession.SessionOptions): ReturnType<SessionCache['acquire']> {
  return cache.acquire(key, () => typeof source === 'string' ? ort.InferenceSession.create(source, options) : ort.InferenceSession.create(source, options));
}

function modelOf(session: ort.InferenceSession, release: () => Promise<void>): LoadedModel {
  return {
    inputNames: [...session.inputNames],
    outputNames: [...session.outputNames],
    async run(feeds) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrt(t);
      const out = await session.run(ortFeeds);
      const res: Record<string, TensorData> = {};
      for (const [name, t] of Object.entries(out)) res[name] = fromOrt(t);
      return res;
    },
    release,
  };
}
