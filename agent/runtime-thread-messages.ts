/**
 * What the agent's event loop and its inference thread say to each other
 * (agent/runtime-worker.ts, agent/runtime-worker-entry.ts). Every request has
 * an id its reply carries; tensors travel as typed arrays.
 */
import type { TensorData } from './runtime.js';
import type { ThreadTrace } from './runtime-trace.js';

/** `backgroundNice`: the nice added to the thread while it holds no session (agent/thread-priority.ts); 0 or absent: none. */
export interface ThreadWorkerData { intraOpNumThreads?: number; backgroundNice?: number }

export type ThreadRequest =
  /** `reload`: the thread died since this model was first loaded; a path is read and checked against `key` (its raw sha256) again. */
  | { id: number; t: 'load'; source: string | Uint8Array; key: string; reload: boolean }
  | { id: number; t: 'run'; handle: number; feeds: Record<string, TensorData> }
  | { id: number; t: 'release'; handle: number }
  | { id: number; t: 'exit'; code: number };

/** A FleetcastError keeps its code, status and details across the thread boundary; anything else its message. */
export interface ThreadError { message: string; code?: string; status?: number; details?: Record<string, unknown> }

export type ThreadReply =
  | { id: number; ok: true; value: unknown; trace?: ThreadTrace }
  | { id: number; ok: false; error: ThreadError; trace?: ThreadTrace };

/** `tid`: the thread's id (Linux), 0 elsewhere. */
export interface ThreadReady { t: 'ready'; version: string; tid: number }

export interface LoadedReply { handle: number; inputNames: string[]; outputNames: string[] }

/**
 * Buffers that can move instead of being copied: each tensor's own, whole buffer (a view into a larger
 * or shared one is not moved, so nothing else that uses that buffer loses it).
 */
export function outputTransfers(tensors: Record<string, TensorData>): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const t of Object.values(tensors)) {
    const d = t.data;
    if (Array.isArray(d) || !(d.buffer instanceof ArrayBuffer)) continue;
    if (d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && !out.includes(d.buffer)) out.push(d.buffer);
  }
  return out;
}
