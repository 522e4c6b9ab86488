/**
 * What the device tells the hub: a retained state report (so the hub learns
 * the fleet again after its own restart) on every phase change and every
 * heartbeatMs, and coded events. Offline, the latest report waits for the
 * next connection and events queue up to a bound (old ones are dropped: the
 * retained report still carries the last error code).
 *
 * A state report is published at the end of the event-loop turn that made it
 * (setImmediate), not at once: an install moves through several phases in one
 * turn (verifying -> staging, swapping -> committed once the state is in
 * memory), and the retained report the hub keeps is the latest anyway, so only
 * the last of them goes out. Order against events is kept: a pending report
 * goes out before any event, and stop() and onConnect() send it at once (chunk
 * and proof requests and telemetry do not wait for it: the hub reads none of
 * them against the device's phase). Each
 * report keeps its own seq, so the hub sees gaps, never a lower one
 * (hub/report-replay.ts accepts any seq above the last). The local onState
 * listeners still see every report.
 */
import { EVENT_KINDS, PROTOCOL_VERSION, encode, type DeviceEvent, type StateReport } from '@fleetcast/protocol/messages.js';
import { topics } from '@fleetcast/protocol/topics.js';
import type { BrokerClient } from './broker-client.js';

export type EventKind = (typeof EVENT_KINDS)[number];
export type ReportBody = Pick<StateReport, 'active' | 'previous' | 'phase' | 'target' | 'progress' | 'lastError' | 'counter' | 'health'>;

export interface ReporterDeps {
  deviceId: string;
  client: BrokerClient | null;
  now: () => number;
  agentVersion: string;
  runtime: string;
  capabilities: Record<string, unknown>;
  heartbeatMs: number;
  /** First seq of this boot; strictly above every seq of earlier boots. */
  seqBase: number;
  snapshot: () => ReportBody;
  onState?: (r: StateReport) => void;
  onEvent?: (e: DeviceEvent) => void;
}

const MAX_QUEUED_EVENTS = 100;
/** Progress alone (chunk counts) is reported at most this often, to spare the broker. */
const PROGRESS_EVERY_MS = 1_000;

export class Reporter {
  readonly #d: ReporterDeps;
  #seq: number;
  #eventSeq: number;
  #heartbeat: NodeJS.Timeout | null = null;
  #progressTimer: NodeJS.Timeout | null = null;
  #dirty = false;
  #queue: DeviceEvent[] = [];
  #last: StateReport | null = null;
  /** Made this turn, not yet published (the latest wins). */
  #pending: StateReport | null = null;
  #flushSoon: NodeJS.Immediate | null = null;
  #stopped = false;

  constructor(deps: ReporterDeps) {
    this.#d = deps;
    this.#seq = deps.seqBase;
    this.#eventSeq = deps.seqBase;
  }

  get last(): StateReport | null { return this.#last; }

  start(): void {
    this.#stopped = false;
    if (this.#d.heartbeatMs > 0 && !this.#heartbeat) {
      this.#heartbeat = setInterval(() => this.report(), this.#d.heartbeatMs);
      this.#heartbeat.unref();
    }
  }

  stop(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.#progressTimer) clearTimeout(this.#progressTimer);
    this.#heartbeat = this.#progressTimer = null;
    // The last report before stopping still goes out (the client is ended after this).
    this.#stopped = true;
    this.#flush();
  }

  /** Report the current state (phase changes, heartbeat, connect): published at the end of this turn, the latest of the turn only; at once after stop(). */
  report(): StateReport {
    const r: StateReport = {
      v: PROTOCOL_VERSION,
      deviceId: this.#d.deviceId,
      seq: this.#seq++,
      at: this.#d.now(),
      agentVersion: this.#d.agentVersion,
      runtime: this.#d.runtime,
      ...this.#d.snapshot(),
      capabilities: this.#d.capabilities,
    };
    this.#last = r;
    this.#d.onState?.(r);
    if (this.#d.client?.connected) {
      this.#dirty = false;
      this.#pending = r;
      if (this.#stopped) this.#flush();
      else this.#flushSoon ??= setImmediate(() => { this.#flushSoon = null; this.#flush(); });
    } else {
      this.#dirty = true;
    }
    return r;
  }

  /** Publish the pending state report now, if any. */
  #flush(): void {
    if (this.#flushSoon) clearImmediate(this.#flushSoon);
    this.#flushSoon = null;
    const r = this.#pending;
    if (!r) return;
    this.#pending = null;
    const c = this.#d.client;
    if (!c?.connected) { this.#dirty = true; return; }
    c.publish(topics.device(this.#d.deviceId, 'state'), encode(r), { retain: true }).catch(() => { this.#dirty = true; });
  }

  /** Progress changed: report soon, but not for every chunk. */
  progress(): void {
    if (this.#progressTimer) return;
    this.#progressTimer = setTimeout(() => { this.#progressTimer = null; this.report(); }, PROGRESS_EVERY_MS);
    this.#progressTimer.unref();
  }

  event(kind: EventKind, fields: Pick<DeviceEvent, 'code' | 'bundleId' | 'counter' | 'detail'> = {}): DeviceEvent {
    const e: DeviceEvent = { v: PROTOCOL_VERSION, deviceId: this.#d.deviceId, seq: this.#eventSeq++, at: this.#d.now(), kind };
    if (fields.code !== undefined) e.code = fields.code.slice(0, 64);
    if (fields.bundleId !== undefined) e.bundleId = fields.bundleId;
    if (fields.counter !== undefined) e.counter = fields.counter;
    if (fields.detail !== undefined) e.detail = fields.detail.slice(0, 1024);
    this.#d.onEvent?.(e);
    // A state report made before this event reaches the hub before it, as it did when reports went out at once.
    this.#flush();
    // Queued events go out first (onConnect): the hub keeps only seqs above the highest it has seen,
    // so an event sent ahead of older queued ones (connected, subscriptions still under way) would
    // make it drop them as replays — the boot notes (slot damaged, state corrupt, crash loop) among them.
    if (this.#d.client?.connected && this.#queue.length === 0) this.#sendEvent(e);
    else {
      this.#queue.push(e);
      if (this.#queue.length > MAX_QUEUED_EVENTS) this.#queue.shift();
    }
    return e;
  }

  /** Connected (again): the latest state and the queued events go out. */
  onConnect(): void {
    const q = this.#queue;
    this.#queue = [];
    // A report still pending from before is superseded by the one below.
    this.#pending = null;
    for (const e of q) this.#sendEvent(e);
    this.report();
    this.#flush();
  }

  get dirty(): boolean { return this.#dirty; }

  #sendEvent(e: DeviceEvent): void {
    this.#d.client?.publish(topics.device(this.#d.deviceId, 'event'), encode(e)).catch(() => {});
  }
}
