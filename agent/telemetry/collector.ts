/**
 * The agent's telemetry (DESIGN.md "Telemetry and drift"): per window and per
 * model version, mergeable summaries of a sample of the requests, latency and
 * outcome of every request. Closed windows become reports on
 * `fc/v1/dev/<id>/telemetry`; while offline they wait in a bounded buffer
 * (oldest dropped first, counted in every later report's `dropped`).
 *
 * Reports are bounded: one that would exceed MESSAGE_LIMITS.telemetry is split
 * into parts by feature (every field merges by addition, so parts need no
 * reassembly at the hub). Raw values leave the device only while debug
 * sampling is on, at most `debugRowsPerWindow` rows per window.
 */
import { MESSAGE_LIMITS, PROTOCOL_VERSION, encode } from '@fleetcast/protocol/messages.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { int, num, obj, parseOptions, str, withDefault, type Infer } from '@fleetcast/protocol/schema.js';
import { encodedItemSize, encodeTelemetryBinary } from '@fleetcast/protocol/telemetry-binary.js';
import type { TelemetryReport } from '@fleetcast/protocol/telemetry.js';
import { topics } from '@fleetcast/protocol/topics.js';
import type { BrokerClient } from '../broker-client.js';
import type { TensorData } from '../runtime.js';
import { compilePlan, type TelemetryPlan } from '@fleetcast/protocol/telemetry-plan.js';
import { TelemetryWindow, type WindowBody } from './window.js';

export const telemetryOptionsSchema = obj({
  /** Window length; one report per window and model version. 0 turns telemetry off. */
  windowMs: withDefault(int({ min: 0, max: 86_400_000 }), 60_000),
  /** Fraction of requests whose features and outputs are summarised (latency and outcome: every request). */
  sampleRate: withDefault(num({ min: 0, max: 1 }), 0.1),
  /** Reports kept while offline; beyond this the oldest is dropped and counted. */
  maxBuffered: withDefault(int({ min: 1, max: 100_000 }), 120),
  /** Raw rows per window sent while an operator has debug sampling on for this device; 0 = off. */
  debugRowsPerWindow: withDefault(int({ min: 0, max: 100 }), 0),
  /**
   * Wire form of reports: `binary` (protocol/telemetry-binary.ts: a third of the
   * size, and what lets the hub ingest tens of thousands a second) or `json`
   * (readable with mosquitto_sub, for debugging). The hub accepts both.
   */
  format: withDefault(str({ enum: ['binary', 'json'] as const }), 'binary'),
  /** Largest report message; bigger ones are split by feature. */
  maxReportBytes: withDefault(int({ min: 4096, max: MESSAGE_LIMITS.telemetry }), MESSAGE_LIMITS.telemetry),
});
export type TelemetryOptions = Required<Infer<typeof telemetryOptionsSchema>>;

export function parseTelemetryOptions(v: unknown): TelemetryOptions {
  return parseOptions(telemetryOptionsSchema, v, 'telemetry options') as TelemetryOptions;
}

export interface TelemetryModel { bundleId: string; manifest: Manifest }

export interface CollectorDeps {
  deviceId: string;
  client: BrokerClient | null;
  options?: Partial<TelemetryOptions>;
  now?: () => number;
  /** Uniform [0, 1) for the sampling decision (seedable in tests). */
  random?: () => number;
  /** First seq; strictly above every earlier boot's (the hub drops seqs it has passed). */
  seqBase?: number;
}

export interface TelemetryStatus { windowMs: number; sampleRate: number; buffered: number; dropped: number; sent: number; debug: { on: boolean; rowsPerWindow: number; until: number | null } }

export class TelemetryCollector {
  readonly options: TelemetryOptions;
  readonly #d: CollectorDeps;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #plans = new Map<string, TelemetryPlan>();
  #windows = new Map<string, TelemetryWindow>();
  #windowStart: number;
  #seq: number;
  #queue: TelemetryReport[] = [];
  #dropped = 0;
  #sent = 0;
  #draining = false;
  #timer: NodeJS.Timeout | null = null;
  #debugRows: number;
  /** When debug sampling switches itself off (ms, this device's clock); null = until told otherwise. */
  #debugUntil: number | null = null;

  constructor(d: CollectorDeps) {
    this.#d = d;
    this.options = parseTelemetryOptions(d.options ?? {});
    this.#now = d.now ?? Date.now;
    this.#random = d.random ?? Math.random;
    this.#seq = d.seqBase ?? 0;
    this.#windowStart = this.#now();
    this.#debugRows = this.options.debugRowsPerWindow;
  }

  get enabled(): boolean { return this.options.windowMs > 0; }

  start(): void {
    if (!this.enabled || this.#timer) return;
    this.#timer = setInterval(() => { void this.flush(); }, this.options.windowMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * Turn debug raw sampling on (rows per window, rate-limited to 100) or off (0).
   * With `until`, it switches itself off at that time even if no one says so
   * (issue #5: an operator's debug session from the hub ends on its own).
   */
  setDebug(rowsPerWindow: number, until: number | null = null): void {
    this.#debugRows = Math.max(0, Math.min(100, Math.floor(rowsPerWindow) || 0));
    this.#debugUntil = this.#debugRows > 0 ? until : null;
  }

  /** Raw rows per window right now: 0 once `until` has passed. */
  #debugNow(): number {
    if (this.#debugUntil !== null && this.#now() >= this.#debugUntil) { this.#debugRows = 0; this.#debugUntil = null; }
    return this.#debugRows;
  }

  status(): TelemetryStatus {
    const rows = this.#debugNow();
    return { windowMs: this.options.windowMs, sampleRate: this.options.sampleRate, buffered: this.#queue.length, dropped: this.#dropped, sent: this.#sent, debug: { on: rows > 0, rowsPerWindow: rows, until: this.#debugUntil } };
  }

  #window(m: TelemetryModel): TelemetryWindow {
    let w = this.#windows.get(m.bundleId);
    if (!w) {
      let plan = this.#plans.get(m.bundleId);
      if (!plan) { plan = compilePlan(m.bundleId, m.manifest); this.#plans.set(m.bundleId, plan); }
      w = new TelemetryWindow(plan, this.#windowStart);
      this.#windows.set(m.bundleId, w);
    }
    return w;
  }

  /** A request the model answered. Cheap unless sampled; never throws. */
  observe(m: TelemetryModel, feeds: Readonly<Record<string, TensorData>>, out: Readonly<Record<string, TensorData>> | null, latencyMs: number): void {
    if (!this.enabled) return;
    const sampled = this.options.sampleRate >= 1 || (this.options.sampleRate > 0 && this.#random() < this.options.sampleRate);
    try { this.#window(m).request(latencyMs, sampled, feeds, out, this.#debugNow()); } catch { /* telemetry never fails a prediction */ }
  }

  /** A request refused by validation or failed in the runtime, by code. */
  failure(m: TelemetryModel | null, code: string): void {
    if (!this.enabled || !m) return;
    try { this.#window(m).failure(code); } catch { /* never fails a prediction */ }
  }

  /** Close the window: one report (maybe in parts) per model version seen, then send what can be sent (resolves when sent or stuck). */
  flush(): Promise<void> {
    const to = this.#now();
    const windows = this.#windows;
    this.#windows = new Map();
    this.#windowStart = to;
    for (const w of windows.values()) {
      if (w.empty) continue;
      for (const msg of this.#split(w.body(), to)) this.#enqueue(msg);
    }
    return this.#drain();
  }

  /** Connected (again): send the buffer, oldest first. */
  onConnect(): void { void this.#drain(); }

  #report(body: WindowBody, to: number, part: number, parts: number, pick?: Pick<WindowBody, 'features' | 'categorical' | 'outputs'>): TelemetryReport {
    const head = part === 0;
    return {
      v: PROTOCOL_VERSION, deviceId: this.#d.deviceId, seq: this.#seq++, from: body.from, to, bundleId: body.bundleId, part, parts,
      requests: head ? body.requests : 0, sampled: head ? body.sampled : 0, sampleRate: this.options.sampleRate,
      ...(head && body.latency ? { latency: body.latency } : {}),
      failures: head ? body.failures : {}, dropped: this.#dropped,
      features: pick?.features ?? body.features, categorical: pick?.categorical ?? body.categorical, outputs: pick?.outputs ?? body.outputs,
      ...(head && body.debug ? { debug: body.debug } : {}),
    };
  }

  #split(body: WindowBody, to: number): TelemetryReport[] {
    const report = this.#report(body, to, 0, 1);
    if (this.#encode(report).length <= this.options.maxReportBytes) return [report];
    this.#seq--;
    // Pack features greedily into parts, each under the limit with room for the head fields.
    const items: [keyof Pick<WindowBody, 'features' | 'categorical' | 'outputs'>, string, unknown, number][] = [];
    const itemSize = (n: string, s: TelemetryReport['features'][string] | TelemetryReport['categorical'][string]) => (this.options.format === 'binary' ? encodedItemSize(n, s) : JSON.stringify(s).length + n.length + 8);
    for (const k of ['features', 'categorical', 'outputs'] as const) for (const [n, s] of Object.entries(body[k])) items.push([k, n, s, itemSize(n, s)]);
    // The head fields (2 KB covers them), latency and debug rows count against every part's budget, in JSON bytes:
    // the binary form of an integer-weight sketch and of the debug rows (JSON inside) is no larger.
    const budget = this.options.maxReportBytes - 2048 - (body.latency ? JSON.stringify(body.latency).length : 0) - (body.debug ? Buffer.byteLength(JSON.stringify(body.debug)) : 0);
    const groups: (typeof items)[] = [[]];
    let size = 0;
    for (const it of items) {
      if (size + it[3] > budget && groups[groups.length - 1].length) { groups.push([]); size = 0; }
      groups[groups.length - 1].push(it);
      size += it[3];
    }
    const parts = Math.min(groups.length, 64);
    return groups.slice(0, parts).map((g, i) => {
      const pick = { features: {}, categorical: {}, outputs: {} } as Pick<WindowBody, 'features' | 'categorical' | 'outputs'>;
      for (const [k, n, s] of g) (pick[k] as Record<string, unknown>)[n] = s;
      return this.#report(body, to, i, parts, pick);
    });
  }

  #encode(r: TelemetryReport): Buffer {
    return this.options.format === 'binary' ? encodeTelemetryBinary(r) : encode(r);
  }

  #enqueue(msg: TelemetryReport): void {
    this.#queue.push(msg);
    while (this.#queue.length > this.options.maxBuffered) { this.#queue.shift(); this.#dropped++; }
  }

  async #drain(): Promise<void> {
    const c = this.#d.client;
    if (this.#draining || !c) return;
    this.#draining = true;
    try {
      // In order, one at a time: the hub drops a seq below one it has seen, so no overtaking.
      while (this.#queue.length && c.connected) {
        const msg = this.#queue[0];
        try {
          // `dropped` is stamped at send time: the hub learns of drops that happened after the window closed.
          await c.publish(topics.device(this.#d.deviceId, 'telemetry'), this.#encode({ ...msg, dropped: this.#dropped }));
        } catch { break; }
        if (this.#queue[0] === msg) this.#queue.shift();
        this.#sent++;
      }
    } finally {
      this.#draining = false;
    }
  }
}

/** Every default, for the agent options' `telemetry` key when it is left out. */
export const TELEMETRY_DEFAULTS: TelemetryOptions = parseTelemetryOptions({});
