/**
 * An opt-in timing record of every call to the inference threads, for analysis only (agent-swap's dump, with
 * FLEETCAST_RUNTIME_TRACE=1 in the environment; off, nothing is recorded and replies carry nothing more): when the
 * agent's loop posted a call, when the thread received it and replied, when the loop got the reply, and the thread's
 * time on a core and runnable-but-waiting at receipt and reply (Linux schedstat). It says whether a slow prediction
 * waited for the loop, for the thread's queue, or for a core.
 */
import { readFileSync, readlinkSync } from 'node:fs';

export const RUNTIME_TRACE = process.env.FLEETCAST_RUNTIME_TRACE === '1';

/** The thread's side of one call: receipt and reply times, and its schedstat (ms) at both. */
export interface ThreadTrace { rx: number; tx: number; sched: [number, number, number, number] | null; tid: number }

export interface TraceEntry extends Partial<ThreadTrace> { thread: number; t: string; handle?: number; posted: number; back: number }

/** Filled only with FLEETCAST_RUNTIME_TRACE=1, and only with the latest calls (at least TRACE_KEEP / 2 of them). */
export const runtimeTrace: TraceEntry[] = [];

/** An agent left running with the trace on would otherwise grow by ~200 bytes per prediction for good. */
export const TRACE_KEEP = 200_000;

/** Record one call; past TRACE_KEEP the older half goes (a benchmark's series is far shorter). */
export function recordTrace(e: TraceEntry): void {
  if (runtimeTrace.length >= TRACE_KEEP) runtimeTrace.splice(0, TRACE_KEEP / 2);
  runtimeTrace.push(e);
}

/** The bench's clock (process.hrtime, CLOCK_MONOTONIC: the same in every thread). */
export function traceNow(): number { return Number(process.hrtime.bigint()) / 1e6; }

/** This thread's id (Linux), or 0. */
export function threadId(): number {
  try { return Number(readlinkSync('/proc/thread-self').split('/').pop()); } catch { return 0; }
}

/** This thread's ms on a core and ms runnable but waiting for one, or null off Linux. */
export function threadSched(): [number, number] | null {
  try {
    const [run, wait] = readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ').map(Number);
    return [run / 1e6, wait / 1e6];
  } catch { return null; }
}
