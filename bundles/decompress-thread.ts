/**
 * Decompress a payload on a worker thread while its bytes are still arriving:
 * the caller hands over compressed bytes in order as it gets them (an agent:
 * each chunk as soon as it has checked it against the signed manifest), and
 * the output is written to `dst` off the caller's event loop. The same bounded
 * decompressor as everywhere (compress.ts: stops past `maxRawBytes`, refuses
 * frames declaring more, refuses a stream that does not end on a frame).
 *
 * On Node 20 the zstd engine is wasm, which runs on the thread that calls it:
 * a 5 MB model took ~90 ms of the agent's loop after the last chunk. Here it
 * runs on another core while the transfer goes on, and after the last chunk
 * only the tail is left.
 *
 * Bounded memory: `write` returns false (and takes nothing) once more than
 * `maxInFlight` bytes wait for the worker; the caller then gives up the stream
 * (abort) and decompresses from its file later, as without one.
 */
import { Worker } from 'node:worker_threads';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { bundleError } from './errors.js';
import type { DecompressResult } from './compress.js';

// Compiled, the worker sits next to this file; from the TypeScript source (tests), in dist/.
const WORKER_URL = import.meta.url.endsWith('.ts') ? new URL('./dist/decompress-worker.js', import.meta.url) : new URL('./decompress-worker.js', import.meta.url);

export const DEFAULT_MAX_IN_FLIGHT = 32 * 1024 * 1024;

export interface DecompressThread {
  /** Hand over the next compressed bytes (copied); false when over the in-flight bound or already failed: nothing was taken. */
  write(bytes: Uint8Array): boolean;
  /** No more input: resolves with the output's length and sha256 once `dst` is complete, or rejects with the coded error. */
  end(): Promise<DecompressResult>;
  /** Stop the worker; `dst` is left as it stands (the caller removes it). Resolves once the worker is gone. */
  abort(): Promise<void>;
}

type Out = { kind: 'taken'; bytes: number } | { kind: 'done'; length: number; sha256: string } | { kind: 'failed'; error: { code: string; message: string; status: number; details: Record<string, unknown> } };

export function openDecompressThread(dst: string, opts: { maxRawBytes: number; maxInFlight?: number }): DecompressThread {
  const maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const worker = new Worker(WORKER_URL, { workerData: { dst, maxRawBytes: opts.maxRawBytes } });
  let inFlight = 0;
  let failure: Error | null = null;
  let result: DecompressResult | null = null;
  let settle: { resolve: (r: DecompressResult) => void; reject: (e: Error) => void } | null = null;
  const finish = () => {
    if (!settle) return;
    if (failure) settle.reject(failure);
    else if (result) settle.resolve(result);
  };
  worker.on('message', (m: Out) => {
    if (m.kind === 'taken') inFlight -= m.bytes;
    else if (m.kind === 'done') { result = { length: m.length, sha256: m.sha256 }; finish(); }
    else { failure ??= new FleetcastError(m.error.code, m.error.message, m.error.status, m.error.details); finish(); }
  });
  worker.on('error', (e) => { failure ??= bundleError('BUNDLE_ERR_DECOMPRESS', `the decompression thread failed: ${e.message}`); finish(); });
  worker.on('exit', () => { failure ??= bundleError('BUNDLE_ERR_DECOMPRESS', 'the decompression thread ended before its output was complete'); finish(); });
  let ended = false;
  return {
    write(bytes) {
      if (failure || ended || inFlight + bytes.length > maxInFlight) return false;
      inFlight += bytes.length;
      // A copy of exactly these bytes, moved (not cloned) to the worker: cloning a view clones its whole
      // buffer (an MQTT payload may be a slice of a larger one), and the caller may reuse its buffer.
      const copy = new Uint8Array(bytes);
      worker.postMessage({ kind: 'data', bytes: copy }, [copy.buffer]);
      return true;
    },
    end() {
      ended = true;
      const done = new Promise<DecompressResult>((resolve, reject) => { settle = { resolve, reject }; });
      finish();
      if (!failure && !result) worker.postMessage({ kind: 'end' });
      // Either way the worker is done: its thread is not kept for the next payload.
      return done.finally(() => { void worker.terminate(); });
    },
    async abort() {
      ended = true;
      failure ??= bundleError('BUNDLE_ERR_DECOMPRESS', 'aborted');
      await worker.terminate();
    },
  };
}
