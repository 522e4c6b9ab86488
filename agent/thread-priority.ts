/**
 * Background work below serving on the CPU (Linux): the agent's predictions
 * are served by its main thread and the inference thread holding the active
 * session; a swap's own work (libuv's threadpool doing its file writes, fsyncs
 * and signature checks; the other inference thread creating and checking the
 * next session) competes with them for the same cores, and on a small device
 * every prediction due meanwhile waits for a core. At a higher nice those
 * threads get the cores only the serving threads leave (about a tenth of a
 * core's share at nice 10 when both want one), so a swap costs the serving
 * path little; they are not starved.
 *
 * Linux only (there setpriority(PRIO_PROCESS, tid) sets one thread); a no-op
 * elsewhere. An inference thread is lowered only while it holds no session,
 * and must be raised back before it serves: that needs CAP_SYS_NICE or an
 * RLIMIT_NICE that allows it, so without either it is never lowered.
 */
import { readFileSync, readlink, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

export const IS_LINUX = process.platform === 'linux';

/** This thread's nice (Linux: per thread; tid 0 is the calling thread). */
export function threadNice(tid = 0): number {
  return getPriority(tid);
}

/**
 * The kernel lets CAP_SYS_NICE lower a nice only when held in the initial user namespace: the root of a user namespace
 * of its own (a rootless or unprivileged container, `unshare --user`) shows it in CapEff and is refused all the same.
 * The initial namespace maps every uid to itself.
 */
function inInitialUserNamespace(): boolean {
  try { return /^\s*0\s+0\s+4294967295\s*$/.test(readFileSync('/proc/self/uid_map', 'utf8')); } catch { return false; }
}

/**
 * Whether this process may set a thread's nice back down to `base` after raising it: CAP_SYS_NICE (bit 23 of
 * CapEff) in the initial user namespace, or RLIMIT_NICE's soft limit (nice may go down to 20 - limit). Off Linux: false.
 */
export function mayRestoreNice(base: number): boolean {
  if (!IS_LINUX) return false;
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const cap = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    if (cap && (BigInt(`0x${cap}`) & (1n << 23n)) !== 0n && inInitialUserNamespace()) return true;
    const limit = /^Max nice priority\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    if (limit === undefined) return false;
    return limit === 'unlimited' || 20 - Number(limit) <= base;
  } catch { return false; }
}

/**
 * An inference thread's priority: `background(true)` while it holds no session (it loads and checks the next
 * model of a swap, or releases the last one), back to the nice it started with before it serves. Does nothing
 * with nice 0, off Linux, or where the thread could not be raised back.
 */
export function threadPriority(nice: number): { background(on: boolean): void } {
  if (!IS_LINUX || nice <= 0) return { background() {} };
  const base = threadNice();
  if (!mayRestoreNice(base)) return { background() {} };
  const low = Math.min(19, base + nice);
  let current = base;
  // Set when raising the thread back failed (a sandbox that refuses what the checks above allowed): it is never
  // lowered again, and each later call tries again to raise it.
  let refused = false;
  return {
    background(on) {
      const want = on && !refused ? low : base;
      if (want === current) return;
      try { setPriority(0, want); current = want; } catch { if (want === base) refused = true; }
    },
  };
}

/**
 * libuv's threadpool size as libuv reads it: atoi(UV_THREADPOOL_SIZE) into an unsigned int (4 when unset), 0 (or not
 * a number) taken as 1, capped at 1024 (a negative number wraps to the cap).
 */
export function poolSize(env: NodeJS.ProcessEnv = process.env): number {
  if (env.UV_THREADPOOL_SIZE === undefined) return 4;
  const n = Number.parseInt(env.UV_THREADPOOL_SIZE, 10) || 0;
  return n < 0 ? 1024 : Math.min(1024, Math.max(1, n));
}

/**
 * Whether /proc numbers threads as this process's own PID namespace does: a /proc mounted from another one (a
 * container or `unshare --pid` without its own /proc) names our threads by ids that, given to setpriority, would
 * reach no thread or another process's.
 */
function procIsOurs(): boolean {
  try { return readlinkSync('/proc/self') === String(process.pid); } catch { return false; }
}

/**
 * The thread ids of libuv's threadpool (Linux): readlink('/proc/thread-self') run on the pool answers with the
 * pool thread's own id. Rounds of `size` concurrent calls until `size` distinct threads answered (or `rounds` ran).
 */
export async function poolThreadIds(size = poolSize(), rounds = 50): Promise<number[]> {
  if (!IS_LINUX || !procIsOurs()) return [];
  const found = new Set<number>();
  const once = () => new Promise<void>((resolve) => {
    readlink('/proc/thread-self', (e, link) => {
      if (!e) found.add(Number(link.split('/').pop()));
      resolve();
    });
  });
  for (let i = 0; i < rounds && found.size < size; i++) await Promise.all(Array.from({ length: size * 4 }, once));
  return [...found].filter((t) => Number.isInteger(t) && t > 0);
}

let poolLowered: Promise<number[]> | null = null;
/**
 * A pool thread busy through the whole first look (a long fsync, a read that blocks) cannot answer it: the pool is
 * looked at again this often (a few rounds each) until every thread was found, at most this many times.
 */
const POOL_RETRY_MS = 1000;
const POOL_RETRIES = 120;

/**
 * Raises the nice of libuv's threadpool threads by `nice` (above this thread's): the agent's file writes, fsyncs,
 * signature checks and reads run there, never a prediction. Returns the threads changed. Linux only; nice 0: none.
 * Once per process (the pool is the process's): a later call gets the first one's threads. Raising a nice needs no
 * privilege; they are never lowered back (the pool serves only background work). Threads missing from the first look
 * (busy throughout it) are lowered when a later look finds them.
 */
export function lowerPoolThreads(nice: number): Promise<number[]> {
  if (!IS_LINUX || nice <= 0) return Promise.resolve([]);
  poolLowered ??= (async () => {
    const low = Math.min(19, threadNice() + nice);
    const size = poolSize();
    const lowered = new Set<number>();
    const lowerFound = async (rounds: number): Promise<number[]> => {
      const changed: number[] = [];
      for (const tid of await poolThreadIds(size, rounds)) {
        if (lowered.has(tid)) continue;
        try { setPriority(tid, low); lowered.add(tid); changed.push(tid); } catch { /* a thread that ended or refused: left as it is */ }
      }
      return changed;
    };
    const first = await lowerFound(50);
    let tries = 0;
    const again = (): void => {
      if (lowered.size >= size || ++tries > POOL_RETRIES) return;
      setTimeout(() => { void lowerFound(5).then(again); }, POOL_RETRY_MS).unref();
    };
    again();
    return first;
  })();
  return poolLowered;
}
