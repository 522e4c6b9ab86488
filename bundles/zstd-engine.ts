/**
 * zstd streams behind one small interface, with two engines:
 *  - node:zlib, where Node has zstd (>= 22.15: `zlib.createZstdCompress`);
 *  - zstd-codec (Emscripten wasm) elsewhere, driven through its streaming
 *    bindings directly. Its heap is fixed at 16 MiB, so input is fed in small
 *    slices and nothing is ever decoded in one shot; each stream gets a wasm
 *    instance of its own (reused when idle) so concurrent streams cannot starve
 *    each other's heap and an aborted instance is simply dropped.
 * Output goes to a synchronous sink as it is produced: the caller writes or
 * hashes it at once, so memory stays bounded whatever the size of the model.
 * `FLEETCAST_ZSTD=wasm` forces the wasm engine (for tests on newer Node).
 */
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import { bundleError } from './errors.js';

export type Sink = (bytes: Uint8Array) => void;

export interface ZstdStream {
  /** Feed the next input bytes; output reaches the sink before or soon after this resolves. */
  write(chunk: Uint8Array): Promise<void>;
  /** Finish the stream; all output has reached the sink when this resolves. */
  end(): Promise<void>;
  /** Release resources early (after an error or when the caller stops). */
  destroy(): void;
}

interface NodeZstd {
  createZstdCompress(o?: { params?: Record<number, number> }): Transform;
  createZstdDecompress(o?: Record<string, unknown>): Transform;
  constants: Record<string, number>;
}
const nodeZstd = zlib as unknown as Partial<NodeZstd>;

export type ZstdEngineName = 'node:zlib' | 'zstd-codec';

export function zstdEngine(): ZstdEngineName {
  if (process.env.FLEETCAST_ZSTD === 'wasm') return 'zstd-codec';
  return typeof nodeZstd.createZstdCompress === 'function' ? 'node:zlib' : 'zstd-codec';
}

/**
 * At most this many zstd streams are open at once per process; more wait their
 * turn. The simulator runs thousands of agents in one process, and each open
 * stream holds a 16 MiB wasm heap (or a native window of a few MiB). The wasm
 * work runs on this thread anyway, so more slots would not be faster.
 */
export const MAX_OPEN_STREAMS = 4;
let openStreams = 0;
const waiting: (() => void)[] = [];

/** How many zstd streams are open now (for tests and diagnostics: 0 when idle, else a leak). */
export function zstdStreamsOpen(): number {
  return openStreams;
}

async function takeSlot(): Promise<() => void> {
  while (openStreams >= MAX_OPEN_STREAMS) await new Promise<void>((r) => waiting.push(r));
  openStreams++;
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    openStreams--;
    waiting.shift()?.();
  };
}

/** Highest level the 16 MiB wasm heap can hold a compression context for (level 10+ aborts with OOM). */
export const WASM_MAX_LEVEL = 9;

// ---------------------------------------------------------------- node:zlib

function nodeStream(t: Transform, sink: Sink, freeSlot: () => void, budget: () => number = () => Infinity): ZstdStream {
  let failure: unknown;
  t.once('close', freeSlot);
  t.on('data', (b: Buffer) => {
    if (failure !== undefined || t.destroyed) return;
    try { sink(b); } catch (e) { failure = e; t.destroy(); return; }
    // Over the output budget: stop decoding now rather than at the end of the input.
    if (budget() < 0) t.destroy();
  });
  t.on('error', (e) => { failure ??= e; });
  const check = () => { if (failure !== undefined) throw failure; };
  return {
    async write(chunk) {
      check();
      // Destroyed for being over budget: the caller sees that and stops; waiting for 'drain' would hang.
      if (t.destroyed) return;
      if (!t.write(chunk)) await new Promise<void>((resolve) => { const done = () => { t.off('drain', done); t.off('error', done); t.off('close', done); resolve(); }; t.on('drain', done); t.on('error', done); t.on('close', done); });
      check();
    },
    async end() {
      check();
      if (t.destroyed) return;
      await new Promise<void>((resolve, reject) => {
        t.once('end', resolve);
        t.once('close', resolve);
        t.once('error', reject);
        t.end();
      });
      check();
    },
    destroy() { t.destroy(); },
  };
}

// ---------------------------------------------------------------- zstd-codec (wasm)

interface WasmStreamBinding {
  begin(level?: number): boolean;
  transform(chunk: Uint8Array, cb: (out: Uint8Array) => void): boolean;
  flush(cb: (out: Uint8Array) => void): boolean;
  end(cb: (out: Uint8Array) => void): boolean;
  delete(): void;
}
interface WasmModule {
  ZstdCompressStreamBinding: new () => WasmStreamBinding;
  ZstdDecompressStreamBinding: new () => WasmStreamBinding;
}

const require = createRequire(import.meta.url);

/**
 * One wasm instance. The Emscripten module object is a thenable (it has `then`),
 * so it must never be a promise's value: it travels inside this holder.
 */
interface WasmInstance { readonly mod: WasmModule }
const idle: WasmInstance[] = [];
const MAX_IDLE = 2;

function instantiate(): Promise<WasmInstance> {
  const load = require('zstd-codec/lib/zstd-codec-binding-wasm.js') as (m: Record<string, unknown>) => void;
  return new Promise((resolve) => {
    const m: Record<string, unknown> = {
      // Emscripten prints "OOM" on abort; the error is reported through our codes instead.
      print() {}, printErr() {},
      onRuntimeInitialized() { resolve({ mod: m as unknown as WasmModule }); },
    };
    load(m);
  });
}

async function acquire(): Promise<WasmInstance> {
  return idle.pop() ?? instantiate();
}

/** Input slice for the compressor: small enough to copy into the 16 MiB heap next to the context. */
const COMPRESS_SLICE = 256 * 1024;

/**
 * Input slice for the decompressor. zstd expands at most about 32768:1 (a
 * 4-byte RLE block yields 128 KiB), and the wasm call cannot be interrupted,
 * so the slice shrinks with the remaining output budget: once over the limit,
 * the work wasted inside one call stays near 8x the budget (>= 16 MiB), never
 * gigabytes.
 */
function decompressSlice(remaining: number): number {
  return Math.max(512, Math.min(64 * 1024, Math.floor(remaining / 4096)));
}

function wasmStream(inst: WasmInstance, freeSlot: () => void, kind: 'compress' | 'decompress', sink: Sink, level: number, budget: () => number): ZstdStream {
  let b: WasmStreamBinding | undefined;
  let healthy = true;
  let sinkError: unknown;
  const out = (bytes: Uint8Array) => {
    // Never throw back into wasm (it would leave the instance's stack unwound): remember and stop after the call.
    if (sinkError !== undefined) return;
    try { sink(bytes); } catch (e) { sinkError = e; }
  };
  const call = (what: string, f: () => boolean) => {
    let ok: boolean;
    try {
      ok = f();
    } catch (e) {
      // An Emscripten abort (e.g. OOM for a frame whose window does not fit the heap) kills the instance.
      healthy = false;
      throw bundleError(kind === 'decompress' ? 'BUNDLE_ERR_DECOMPRESS' : 'BUNDLE_ERR_IO', `zstd-codec ${what} aborted (${String(e).split('.')[0]}); the wasm heap is 16 MiB, so frames with windows over ~8 MiB are refused`);
    }
    if (sinkError !== undefined) throw sinkError;
    if (!ok) {
      healthy = false;
      throw bundleError(kind === 'decompress' ? 'BUNDLE_ERR_DECOMPRESS' : 'BUNDLE_ERR_IO', `zstd-codec ${what} failed${kind === 'decompress' ? ': the data is not valid zstd' : ''}`);
    }
  };
  const release = () => {
    if (!b) return;
    try { b.delete(); } catch { healthy = false; }
    b = undefined;
    if (healthy && idle.length < MAX_IDLE) idle.push(inst);
    freeSlot();
  };
  try {
    b = kind === 'compress' ? new inst.mod.ZstdCompressStreamBinding() : new inst.mod.ZstdDecompressStreamBinding();
    call('begin', () => (kind === 'compress' ? b!.begin(level) : b!.begin()));
  } catch (e) {
    healthy = false;
    if (b) release();
    else freeSlot();
    throw e;
  }
  return {
    async write(chunk) {
      if (!b) throw bundleError('BUNDLE_ERR_IO', 'zstd stream used after it was closed');
      for (let i = 0; i < chunk.length;) {
        const n = kind === 'compress' ? COMPRESS_SLICE : decompressSlice(budget());
        const part = chunk.subarray(i, i + n);
        call('transform', () => b!.transform(part, out));
        i += part.length;
        // Give the caller a chance to stop (output over budget) between slices.
        if (kind === 'decompress' && budget() < 0) return;
      }
    },
    async end() {
      if (!b) throw bundleError('BUNDLE_ERR_IO', 'zstd stream used after it was closed');
      try {
        call('end', () => b!.end(out));
      } finally {
        release();
      }
    },
    destroy() { release(); },
  };
}

export interface CompressorOptions { level?: number }

/** Open with a slot held; the slot is given back if opening fails. */
async function withSlot(open: (freeSlot: () => void) => Promise<ZstdStream>): Promise<ZstdStream> {
  const freeSlot = await takeSlot();
  try {
    return await open(freeSlot);
  } catch (e) {
    freeSlot();
    throw e;
  }
}

/** Every opened stream must be ended or destroyed: it holds one of MAX_OPEN_STREAMS slots until then. */
export async function openCompressor(sink: Sink, opts: CompressorOptions = {}): Promise<ZstdStream> {
  const level = opts.level ?? 3;
  if (zstdEngine() === 'node:zlib') {
    const c = nodeZstd.constants!;
    return withSlot(async (free) => nodeStream(nodeZstd.createZstdCompress!({ params: { [c.ZSTD_c_compressionLevel]: level } }), sink, free));
  }
  if (level > WASM_MAX_LEVEL) throw bundleError('BUNDLE_ERR_BAD_OPTION', `zstd level ${level} needs more memory than the zstd-codec wasm heap has; use level 1 to ${WASM_MAX_LEVEL} on this Node (${process.version}) or Node >= 22.15`);
  return withSlot(async (free) => wasmStream(await acquire(), free, 'compress', sink, level, () => Infinity));
}

/**
 * `budget()` returns how many more output bytes are acceptable; the wasm engine
 * sizes its input slices by it and returns early from write() once it is negative.
 */
export async function openDecompressor(sink: Sink, budget: () => number): Promise<ZstdStream> {
  if (zstdEngine() === 'node:zlib') return withSlot(async (free) => nodeStream(nodeZstd.createZstdDecompress!(), sink, free, budget));
  return withSlot(async (free) => wasmStream(await acquire(), free, 'decompress', sink, 0, budget));
}
