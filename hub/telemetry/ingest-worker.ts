/**
 * One telemetry ingest worker thread (hub/telemetry/ingest-pool.ts). It runs
 * the same TelemetryIngest as the hub's own thread — decode into scratch,
 * checks against the bundle and the device's seq, typed-array merge — over the
 * devices the pool routes to it (always the same worker for a device, so seq
 * order and replay checks stay local). Instead of SQLite it keeps deltas:
 * every flush posts the cells touched since the last one and forgets them; the
 * hub's thread adds them to the stored cells (TelemetryStore.mergeBatchJson).
 *
 * Messages in: `manifest` (before the first report of a bundle), `batch`
 * (length-prefixed reports, each with its ring and, the first time a device is
 * seen, its last stored seq), `flush`. Out: `flushed` (on request and on its own timer).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { errorCode } from '@fleetcast/protocol/errors.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { peekTelemetryHead } from '@fleetcast/protocol/telemetry-binary.js';
import { TelemetryIngest } from './ingest.js';
import type { TelemetryOptions } from './options.js';
import type { CellKey, TelemetryStore } from './telemetry-store.js';

export type ToWorker =
  | { t: 'manifest'; bundleId: string; manifest: Manifest }
  | { t: 'batch'; buf: ArrayBuffer; rings: string[]; /** The hub's clock when the batch was posted. */ now: number }
  | { t: 'flush'; id: number };

/** A batch has been handled (the pool's count of bytes in flight goes down by this). */
export interface Done { t: 'done'; bytes: number }

export interface DeviceMark { deviceId: string; seq: number; dropped: number; at: number; bundleId: string }
export interface Flushed {
  t: 'flushed';
  /** The flush request this answers, or 0 for the worker's own timer. */
  id: number;
  cells: [CellKey, string][];
  devices: DeviceMark[];
  accepted: number;
  refused: Record<string, number>;
  /** One message per refusal code since the last flush, for the log. */
  samples: Record<string, string>;
  debug: { deviceId: string; bundleId: string; from: number; to: number; rows: NonNullable<ReturnType<TelemetryIngest['decode']>['debug']> }[];
}

/** Item header in a batch: u16 ring index, f64 the device's last stored seq (−1: none stored; −2: not sent, the worker knows the device), u32 length; then the report. */
export const ITEM_HEADER = 14;

if (parentPort) {
  const port = parentPort;
  const options = (workerData as { options: TelemetryOptions }).options;
  const manifests = new Map<string, Manifest>();
  const seqHints = new Map<string, number>();
  let ring = 'default';
  let clock = Date.now();
  let pending: Omit<Flushed, 't' | 'id'> = { cells: [], devices: [], accepted: 0, refused: {}, samples: {}, debug: [] };
  const store = {
    // Read once per device: the ingest keeps the answer (and every later seq) itself.
    lastSeq: (id: string) => { const s = seqHints.get(id); seqHints.delete(id); return s === undefined || s < 0 ? undefined : s; },
    getRaw: () => undefined,
    writeBatchJson: (cells: readonly [CellKey, string][], devices: readonly DeviceMark[]) => {
      // A loop, not push(...): a spread of hundreds of thousands of arguments overflows the stack.
      for (const c of cells) pending.cells.push(c);
      for (const d of devices) pending.devices.push(d);
    },
  } as unknown as TelemetryStore;
  const ingest = new TelemetryIngest({
    store, options, now: () => clock, logger: pino({ level: 'silent' }),
    manifest: (id) => manifests.get(id), ringOf: () => ring, forgetAfterFlush: true,
  });
  const flush = (id: number) => {
    ingest.flush();
    const out: Flushed = { t: 'flushed', id, ...pending };
    pending = { cells: [], devices: [], accepted: 0, refused: {}, samples: {}, debug: [] };
    port.postMessage(out);
  };
  setInterval(() => { if (pending.accepted || Object.keys(pending.refused).length || pending.debug.length) flush(0); }, options.flushMs);
  port.on('message', (m: ToWorker) => {
    if (m.t === 'manifest') manifests.set(m.bundleId, m.manifest);
    else if (m.t === 'flush') flush(m.id);
    else {
      clock = m.now;
      const b = new Uint8Array(m.buf);
      const view = new DataView(m.buf);
      const bytes = b.length;
      for (let at = 0; at < b.length;) {
        ring = m.rings[view.getUint16(at, true)];
        const hint = view.getFloat64(at + 2, true);
        const len = view.getUint32(at + 10, true);
        const payload = b.subarray(at + ITEM_HEADER, at + ITEM_HEADER + len);
        at += ITEM_HEADER + len;
        try {
          // The hint goes with the device before anything can refuse the report, so a refused first report
          // cannot make the worker forget the device's stored seq (the pool sends it only once).
          if (hint !== -2) seqHints.set(peekTelemetryHead(payload).deviceId, hint);
          const d = ingest.decode(payload);
          ingest.handleDecoded(d);
          pending.accepted++;
          if (d.debug?.length) pending.debug.push({ deviceId: d.deviceId, bundleId: d.bundleId, from: d.from, to: d.to, rows: d.debug });
        } catch (e) {
          const code = errorCode(e);
          pending.refused[code] = (pending.refused[code] ?? 0) + 1;
          pending.samples[code] ??= (e as Error).message;
        }
      }
      port.postMessage({ t: 'done', bytes } satisfies Done);
    }
  });
}
