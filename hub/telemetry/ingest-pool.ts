/**
 * Telemetry ingest spread over worker threads (`telemetry.ingestWorkers` > 0).
 * Decoding, checking and merging a 32-feature report is tens of microseconds
 * of CPU, almost all of it per sketch bucket; past one core's worth of reports
 * the hub's own thread (which also runs the broker, the API and the rollout
 * engine) would fall behind. The pool keeps the hub's thread to a few
 * microseconds per report: read the report's head (device, bundle), check the
 * device speaks under its own topic, pick the device's worker (always the same
 * one, so its seq order holds), append the bytes to that worker's batch. The
 * workers (ingest-worker.ts) post deltas on every flush; they are added to the
 * stored cells in one transaction per flush here.
 *
 * What changes against the inline ingest: figures reach SQLite up to one
 * flush interval after arrival; the link's `handled.telemetry` counts reports
 * handed to a worker, and one the worker refuses is counted under its code
 * when the worker flushes. A worker that dies is replaced (with a growing
 * delay if it keeps dying); what it held since its last flush is lost, counted
 * once as HUB_ERR_OVERLOADED.
 */
import type { Logger } from 'pino';
import { Worker } from 'node:worker_threads';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { telemetryBytes } from '@fleetcast/protocol/messages.js';
import { peekTelemetryHead } from '@fleetcast/protocol/telemetry-binary.js';
import { hubError } from '../errors.js';
import { ITEM_HEADER, type Done, type Flushed, type ToWorker } from './ingest-worker.js';
import type { TelemetryOptions } from './options.js';
import type { TelemetryStore } from './telemetry-store.js';

export interface PoolDeps {
  workers: number;
  options: TelemetryOptions;
  store: TelemetryStore;
  manifest(bundleId: string): Manifest | undefined;
  ringOf(deviceId: string): string;
  /** Counted refusals by code (the MQTT link's rejected stats). */
  onRefused(code: string, n: number, sample: string): void;
  onDebug(r: Flushed['debug'][number]): void;
  now: () => number;
  logger: Logger;
  /** Per worker: bytes posted and not yet handled beyond which its devices' reports are shed (default 32 MiB). */
  maxInflightBytes?: number;
}

/**
 * The worker's compiled module. Under the test runner this file is loaded from its TypeScript source, and a
 * worker thread cannot load .ts: it then runs the build's copy (npm test builds first).
 */
const WORKER_URL = import.meta.url.endsWith('.ts') ? new URL('../dist/telemetry/ingest-worker.js', import.meta.url) : new URL('./ingest-worker.js', import.meta.url);

/** Post a worker's batch once it holds this many bytes (else at the end of the event-loop turn). */
const BATCH_BYTES = 256 * 1024;

/** Bytes posted to one worker and not yet handled beyond which its devices' reports are shed (HUB_ERR_OVERLOADED). */
const MAX_INFLIGHT_BYTES = 32 * 1024 * 1024;

interface Slot {
  worker: Worker; manifests: Set<string>; buf: Buffer; len: number; rings: string[]; ringIdx: Map<string, number>; scheduled: boolean; seen: Set<string>; inflight: number; dead: boolean;
  /** Bytes per device in the batch being filled, and per posted batch in posting order (a worker handles them in order). */
  batchDevices: Map<string, number>; posted: Map<string, number>[];
}

export class IngestPool {
  readonly #d: PoolDeps;
  readonly #slots: Slot[] = [];
  /** Per pending flush: the slots that have not answered it yet. */
  readonly #waiting = new Map<number, { slots: Set<Slot>; resolve: () => void }>();
  #flushId = 0;
  #below: { bytes: number; resolve: () => void }[] = [];
  /** Bytes per device submitted and not yet handled by its worker. */
  readonly #perDevice = new Map<string, number>();
  #closing = false;
  #closed: Promise<void> | null = null;
  readonly stats = { submitted: 0, accepted: 0, refused: 0, shed: 0, unreadableCells: 0, workerRestarts: 0 };

  constructor(d: PoolDeps) {
    this.#d = d;
    for (let i = 0; i < d.workers; i++) this.#slots.push(this.#spawn(0));
  }

  /** A worker for a slot; `failures` counts the quick exits before it (the respawn backs off on them). */
  #spawn(failures: number): Slot {
    const worker = new Worker(WORKER_URL, { workerData: { options: this.#d.options } });
    const born = Date.now();
    const slot: Slot = { worker, manifests: new Set(), buf: Buffer.allocUnsafe(BATCH_BYTES * 2), len: 0, rings: [], ringIdx: new Map(), scheduled: false, seen: new Set(), inflight: 0, dead: false, batchDevices: new Map(), posted: [] };
    worker.on('message', (m: Flushed | Done) => {
      if (m.t !== 'done') { this.#flushed(slot, m); return; }
      slot.inflight -= m.bytes;
      for (const [device, n] of slot.posted.shift() ?? []) {
        const left = (this.#perDevice.get(device) ?? 0) - n;
        if (left > 0) this.#perDevice.set(device, left); else this.#perDevice.delete(device);
      }
      this.#checkBelow();
    });
    worker.on('error', (e) => { this.#d.logger.error({ code: 'HUB_ERR_OVERLOADED', err: e }, 'a telemetry ingest worker failed'); });
    worker.on('exit', (exitCode) => {
      if (this.#closing || slot.dead) return;
      slot.dead = true;
      this.stats.workerRestarts++;
      // A worker that keeps dying at once (a broken deploy, no memory) is restarted with a growing delay.
      const quick = Date.now() - born < 10_000 ? failures + 1 : 0;
      const delay = quick === 0 ? 0 : Math.min(30_000, 100 * 2 ** quick);
      this.#d.logger.error({ code: 'HUB_ERR_OVERLOADED', exitCode, restartInMs: delay }, 'a telemetry ingest worker stopped; replacing it (reports it held since its last flush are lost)');
      this.#d.onRefused('HUB_ERR_OVERLOADED', 1, 'ingest worker stopped');
      // Flushes still waiting for this worker count it as answered; the backlog it held is gone.
      for (const [id, w] of this.#waiting) if (w.slots.delete(slot) && w.slots.size === 0) { this.#waiting.delete(id); w.resolve(); }
      slot.inflight = 0;
      slot.len = 0;
      for (const batch of [slot.batchDevices, ...slot.posted]) for (const device of batch.keys()) this.#perDevice.delete(device);
      this.#checkBelow();
      const respawn = () => { const i = this.#slots.indexOf(slot); if (i >= 0 && !this.#closing) this.#slots[i] = this.#spawn(quick); };
      if (delay === 0) respawn(); else setTimeout(respawn, delay).unref();
    });
    return slot;
  }

  #checkBelow(): void {
    if (this.#below.length === 0) return;
    const backlog = this.backlog;
    this.#below = this.#below.filter((w) => { if (backlog > w.bytes) return true; w.resolve(); return false; });
  }

  /** The current worker threads (diagnostics: threadId, resource use; fault tests stop one). */
  get workers(): readonly Worker[] { return this.#slots.map((s) => s.worker); }

  /** Bytes of reports submitted and not yet handled by the workers. */
  get backlog(): number { return this.#slots.reduce((t, s) => t + s.inflight + s.len, 0); }

  /** Resolves once the backlog is at most `bytes` (a producer's backpressure: benchmarks, replays). */
  below(bytes: number): Promise<void> {
    for (const s of this.#slots) this.#post(s);
    if (this.backlog <= bytes) return Promise.resolve();
    return new Promise((resolve) => this.#below.push({ bytes, resolve }));
  }

  /** Route one report message (binary or JSON). Throws a coded error for what can be judged here. */
  submit(topicDeviceId: string, payload: Uint8Array): void {
    const bytes = telemetryBytes(payload);
    const head = peekTelemetryHead(bytes);
    if (head.deviceId !== topicDeviceId) throw hubError('HUB_ERR_DEVICE_MISMATCH', `topic names ${JSON.stringify(topicDeviceId)}, body names ${JSON.stringify(head.deviceId)}`);
    const slot = this.#slots[hash(topicDeviceId) % this.#slots.length];
    if (slot.dead || this.#closing) { this.stats.shed++; throw hubError('HUB_ERR_OVERLOADED', `ingest worker ${this.#slots.indexOf(slot)} is restarting`); }
    // Bounded memory: a worker that has fallen this far behind sheds its devices' reports until it catches up.
    const bound = this.#d.maxInflightBytes ?? MAX_INFLIGHT_BYTES;
    if (slot.inflight + slot.len > bound) { this.stats.shed++; throw hubError('HUB_ERR_OVERLOADED', `ingest worker ${this.#slots.indexOf(slot)} has ${slot.inflight + slot.len} bytes of reports waiting`); }
    // Fair shedding: a device may hold at most 1/16 of its worker's bound (always one report), so a flooding
    // device is shed before the devices that share its worker are.
    const mine = this.#perDevice.get(topicDeviceId) ?? 0;
    if (mine > 0 && mine + bytes.byteLength > bound / 16) { this.stats.shed++; throw hubError('HUB_ERR_OVERLOADED', `device ${topicDeviceId} has ${mine} bytes of reports waiting`); }
    if (!slot.manifests.has(head.bundleId)) {
      const manifest = this.#d.manifest(head.bundleId);
      if (!manifest) throw hubError('HUB_ERR_TELEMETRY_UNKNOWN_BUNDLE', `bundle ${head.bundleId.slice(0, 16)}…`);
      this.#post(slot);
      slot.worker.postMessage({ t: 'manifest', bundleId: head.bundleId, manifest } satisfies ToWorker);
      slot.manifests.add(head.bundleId);
    }
    const ring = this.#d.ringOf(topicDeviceId);
    let r = slot.ringIdx.get(ring);
    if (r === undefined) { r = slot.rings.length; slot.rings.push(ring); slot.ringIdx.set(ring, r); }
    // The first report of a device carries its last stored seq (the worker has no database).
    let hint = -2;
    if (!slot.seen.has(topicDeviceId)) { slot.seen.add(topicDeviceId); hint = this.#d.store.lastSeq(topicDeviceId) ?? -1; }
    const need = slot.len + ITEM_HEADER + bytes.byteLength;
    if (need > slot.buf.length) { const next = Buffer.allocUnsafe(Math.max(need, slot.buf.length * 2)); slot.buf.copy(next, 0, 0, slot.len); slot.buf = next; }
    slot.buf.writeUInt16LE(r, slot.len);
    slot.buf.writeDoubleLE(hint, slot.len + 2);
    slot.buf.writeUInt32LE(bytes.byteLength, slot.len + 10);
    slot.buf.set(bytes, slot.len + ITEM_HEADER);
    slot.len = need;
    this.#perDevice.set(topicDeviceId, mine + bytes.byteLength);
    slot.batchDevices.set(topicDeviceId, (slot.batchDevices.get(topicDeviceId) ?? 0) + bytes.byteLength);
    this.stats.submitted++;
    if (slot.len >= BATCH_BYTES) this.#post(slot);
    else if (!slot.scheduled) { slot.scheduled = true; setImmediate(() => this.#post(slot)); }
  }

  #post(slot: Slot): void {
    slot.scheduled = false;
    if (slot.len === 0 || slot.dead) return;
    const buf = new ArrayBuffer(slot.len);
    new Uint8Array(buf).set(slot.buf.subarray(0, slot.len));
    slot.worker.postMessage({ t: 'batch', buf, rings: slot.rings, now: this.#d.now() } satisfies ToWorker, [buf]);
    slot.inflight += slot.len;
    slot.len = 0;
    slot.posted.push(slot.batchDevices);
    slot.batchDevices = new Map();
    slot.rings = [];
    slot.ringIdx = new Map();
  }

  #flushed(slot: Slot, m: Flushed): void {
    // In a worker's message listener: anything thrown here would end the hub, so nothing is.
    try {
      if (m.cells.length || m.devices.length) this.stats.unreadableCells += this.#d.store.mergeBatchJson(m.cells, m.devices).unreadable;
      this.stats.accepted += m.accepted;
      for (const [code, n] of Object.entries(m.refused)) { this.stats.refused += n; this.#d.onRefused(code, n, m.samples[code] ?? ''); }
      for (const d of m.debug) this.#d.onDebug(d);
    } catch (e) {
      this.#d.logger.error({ err: e }, 'could not store telemetry deltas from an ingest worker');
    } finally {
      const w = this.#waiting.get(m.id);
      if (w && w.slots.delete(slot) && w.slots.size === 0) { this.#waiting.delete(m.id); w.resolve(); }
    }
  }

  /** Every report submitted so far is merged and stored when this resolves. */
  flush(): Promise<void> {
    const live = this.#slots.filter((s) => !s.dead);
    if (this.#closed || live.length === 0) return Promise.resolve();
    const id = ++this.#flushId;
    return new Promise((resolve) => {
      this.#waiting.set(id, { slots: new Set(live), resolve });
      for (const s of live) { this.#post(s); s.worker.postMessage({ t: 'flush', id } satisfies ToWorker); }
    });
  }

  /** Flush, then stop the workers (idempotent). */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.flush();
      this.#closing = true;
      for (const w of this.#below) w.resolve();
      this.#below = [];
      await Promise.all(this.#slots.map((s) => s.worker.terminate()));
    })();
    return this.#closed;
  }
}

/** FNV-1a of the device id: the same device always goes to the same worker. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193); }
  return h >>> 0;
}
