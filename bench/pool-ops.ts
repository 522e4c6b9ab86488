/**
 * Counts the libuv threadpool operations this thread starts (file system requests, crypto jobs, zlib,
 * DNS lookups: async resources of those types), per label, with an async_hooks init hook. For analysis
 * only (the hook costs a call per async resource): agent-swap turns it on with FLEETCAST_BENCH_SWAP_POOL=1
 * to count the pool trips a swap makes on the agent's thread against a steady period of the same length.
 */
import { createHook } from 'node:async_hooks';

/** Async resource types whose work runs on libuv's threadpool. */
const POOL_TYPES = new Set(['FSREQCALLBACK', 'FSREQPROMISE', 'STATWATCHER', 'SIGNREQUEST', 'HASHREQUEST', 'HMACREQUEST', 'CIPHERREQUEST', 'DERIVEBITSREQUEST', 'KEYPAIRGENREQUEST', 'KEYGENREQUEST', 'PBKDF2REQUEST', 'RANDOMBYTESREQUEST', 'RANDOMPRIMEREQUEST', 'SCRYPTREQUEST', 'CHECKPRIMEREQUEST', 'ZLIB', 'GETADDRINFOREQWRAP', 'GETNAMEINFOREQWRAP']);

export interface PoolOps { label(l: string | null): void; stop(): Map<string, Map<string, number>> }

export function countPoolOps(): PoolOps {
  const counts = new Map<string, Map<string, number>>();
  let current: string | null = null;
  const hook = createHook({
    init(_id, type) {
      if (current === null || !POOL_TYPES.has(type)) return;
      let m = counts.get(current);
      if (!m) counts.set(current, (m = new Map()));
      m.set(type, (m.get(type) ?? 0) + 1);
    },
  }).enable();
  return { label(l) { current = l; }, stop() { hook.disable(); return counts; } };
}
