/**
 * A separate process that samples every thread's schedstat (ns on a core, ns runnable but waiting for one) of
 * a process and its children (the bench and the hub it started) about every ms, for agent-swap's
 * FLEETCAST_BENCH_SWAP_THREADS=1: which threads are on the cores while the agent's main thread waits at the
 * start of a swap. Run as `node thread-sampler.js PID OUT`; on SIGTERM it writes OUT (JSON) and exits.
 * Linux only (/proc). Its own CPU (a few % of a core) is the same in every period.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';

export interface ThreadSamples {
  /** Per thread id: its process id, its scheduling policy and nice at the end (fields 41 and 19 of /proc/…/stat), and samples. */
  threads: Record<string, { pid: number; policy: number; nice: number; t: number[]; run: number[]; wait: number[] }>;
}

function statFields(pid: number, tid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' '); // [0] is field 3
  } catch { return null; }
}

function main(): void {
  const root = Number(process.argv[2]);
  const out = process.argv[3];
  const fds = new Map<number, number>();
  const data: ThreadSamples = { threads: {} };
  const buf = Buffer.alloc(128);
  const pids = (): number[] => {
    const ps = [root];
    const self = process.pid; // this sampler is a child of the bench too: left out
    try {
      for (const t of readdirSync(`/proc/${root}/task`)) {
        try { ps.push(...readFileSync(`/proc/${root}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number).filter((p) => p !== self)); } catch { /* gone */ }
      }
    } catch { /* gone */ }
    return ps;
  };
  let lastScan = 0;
  // The bench kills this process when it is done; should the bench end without doing so (a failure, a kill), this
  // process was reparented: it exits rather than sample every ms for good.
  const parent = process.ppid;
  const sample = () => {
    const now = performance.timeOrigin + performance.now();
    if (now - lastScan > 20) {
      lastScan = now;
      if (process.ppid !== parent) process.exit(1);
      for (const pid of pids()) {
        let tids: string[];
        try { tids = readdirSync(`/proc/${pid}/task`); } catch { continue; }
        for (const t of tids.map(Number)) {
          if (data.threads[t]) continue;
          try { fds.set(t, openSync(`/proc/${pid}/task/${t}/schedstat`, 'r')); } catch { continue; }
          data.threads[t] = { pid, policy: 0, nice: 0, t: [], run: [], wait: [] };
        }
      }
    }
    // Same clock as the bench's nowMs (process.hrtime: CLOCK_MONOTONIC).
    const t = Number(process.hrtime.bigint()) / 1e6;
    for (const [tid, fd] of fds) {
      try {
        const n = readSync(fd, buf, 0, buf.length, 0);
        const [run, wait] = buf.toString('latin1', 0, n).split(' ').map(Number);
        const s = data.threads[tid];
        s.t.push(t); s.run.push(run); s.wait.push(wait);
      } catch { closeSync(fd); fds.delete(tid); }
    }
  };
  const timer = setInterval(sample, 1);
  process.on('SIGTERM', () => {
    clearInterval(timer);
    for (const [tid, s] of Object.entries(data.threads)) {
      const f = statFields(s.pid, Number(tid));
      if (f) { s.policy = Number(f[38]); s.nice = Number(f[16]); }
    }
    writeFileSync(out, JSON.stringify(data));
    process.exit(0);
  });
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) main();

/** A thread's counter (k: run or wait, ns) at time t, interpolated between its samples. */
function valueAt(s: ThreadSamples['threads'][string], k: 'run' | 'wait', t: number): number {
  const ts = s.t;
  let lo = 0; let hi = ts.length;
  while (lo < hi) { const m = (lo + hi) >> 1; if (ts[m] < t) lo = m + 1; else hi = m; }
  if (lo === 0) return s[k][0];
  if (lo >= ts.length) return s[k][ts.length - 1];
  const f = (t - ts[lo - 1]) / Math.max(1e-9, ts[lo] - ts[lo - 1]);
  return s[k][lo - 1] + (s[k][lo] - s[k][lo - 1]) * f;
}

/**
 * Mean ms on a core and ms waiting for one per window, per class of thread (classOf names a thread's class from
 * its id and record, or null to leave it out), for two sets of windows [start, end) in the samples' clock.
 */
export function threadCpuIn(data: ThreadSamples, classOf: (tid: number, s: ThreadSamples['threads'][string]) => string | null, a: [number, number][], b: [number, number][]): Map<string, { runA: number; runB: number; waitA: number; waitB: number }> {
  const out = new Map<string, { runA: number; runB: number; waitA: number; waitB: number }>();
  const per = (s: ThreadSamples['threads'][string], k: 'run' | 'wait', ws: [number, number][]) => ws.reduce((x, [from, to]) => x + valueAt(s, k, to) - valueAt(s, k, from), 0) / 1e6 / Math.max(1, ws.length);
  for (const [tid, s] of Object.entries(data.threads)) {
    if (s.t.length < 2) continue;
    const c = classOf(Number(tid), s);
    if (c === null) continue;
    const o = out.get(c) ?? { runA: 0, runB: 0, waitA: 0, waitB: 0 };
    o.runA += per(s, 'run', a); o.runB += per(s, 'run', b); o.waitA += per(s, 'wait', a); o.waitB += per(s, 'wait', b);
    out.set(c, o);
  }
  return out;
}
