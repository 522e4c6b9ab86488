/**
 * The worker side of decompress-thread.ts: a bounded zstd decompression
 * (compress.ts, the same limits as anywhere else) fed with the compressed bytes
 * the main thread posts, in order, writing the output to one file. The file is
 * not synced here: whoever trusts it makes it durable (the agent seals it).
 *
 * Messages in: { kind: 'data', bytes } … { kind: 'end' }. Out: { kind: 'taken',
 * bytes } after each input (the main thread bounds what it has in flight),
 * then { kind: 'done', length, sha256 } or, once, { kind: 'failed', error }.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { isFleetcastError } from '@fleetcast/protocol/errors.js';
import { openBoundedDecompressor, type BoundedDecompressor } from './compress.js';
import { bundleError, ioError } from './errors.js';

const { dst, maxRawBytes } = workerData as { dst: string; maxRawBytes: number };
const port = parentPort!;

let fd: number | undefined;
let d: BoundedDecompressor | undefined;
let failed = false;

const fail = (e: unknown) => {
  if (failed) return;
  failed = true;
  d?.destroy();
  if (fd !== undefined) { try { closeSync(fd); } catch { /* the main thread removes the file */ } fd = undefined; }
  const err = isFleetcastError(e) ? e : bundleError('BUNDLE_ERR_DECOMPRESS', (e as Error)?.message ?? String(e));
  port.postMessage({ kind: 'failed', error: { code: err.code, message: err.message, status: err.status, details: { ...err.details } } });
};

const write = (bytes: Uint8Array) => {
  try {
    for (let off = 0; off < bytes.length;) off += writeSync(fd!, bytes, off, bytes.length - off);
  } catch (e) {
    throw ioError('cannot write', dst, e);
  }
};

let chain: Promise<void> = (async () => {
  try { fd = openSync(dst, 'w', 0o600); } catch (e) { throw ioError('cannot create', dst, e); }
  d = await openBoundedDecompressor({ maxRawBytes, sink: write });
})().catch(fail);

port.on('message', (m: { kind: 'data'; bytes: Uint8Array } | { kind: 'end' }) => {
  chain = chain.then(async () => {
    if (failed) return;
    if (m.kind === 'data') {
      await d!.write(m.bytes);
      port.postMessage({ kind: 'taken', bytes: m.bytes.length });
      return;
    }
    const r = await d!.end();
    closeSync(fd!);
    fd = undefined;
    port.postMessage({ kind: 'done', length: r.length, sha256: r.sha256 });
  }).catch(fail);
});
