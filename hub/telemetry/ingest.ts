/**
 * Telemetry ingest: a decoded report (the dispatcher has checked its schema,
 * size and that the topic's device id is the body's) is checked against the
 * bundle it names — every feature known, of the right kind, counted over the
 * reference edges — and against the device's sequence (a seq at or below the
 * last one seen is a replay and is dropped). Then it is merged in memory per
 * (bundle, ring, key, bucket); a timer writes the touched cells in one SQLite
 * transaction. A refused report changes nothing and never stops the others.
 */
import type { Logger } from 'pino';
import { DDSketch } from '../../protocol/ddsketch.js';
import { categoricalFromWire, fromWire, HARD_MAX_CATEGORIES } from '../../protocol/feature-summary.js';
import type { Manifest } from '../../protocol/manifest.js';
import { compilePlan, type TelemetryPlan } from '../../protocol/telemetry-plan.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import { hubError } from '../errors.js';
import { emptyMeta, mergeCell, type Cell } from './aggregate.js';
import type { TelemetryOptions } from './options.js';
import type { CellKey, TelemetryStore } from './telemetry-store.js';

export interface IngestDeps {
  store: TelemetryStore;
  options: TelemetryOptions;
  /** The manifest of a published bundle, or undefined. */
  manifest(bundleId: string): Manifest | undefined;
  /** The ring a device's figures count towards (the rollout engine's view, or its assignment's ring). */
  ringOf(deviceId: string, bundleId: string): string;
  now: () => number;
  logger: Logger;
}

export interface IngestStats { accepted: number; flushes: number; cellsWritten: number; pendingCells: number }

export class TelemetryIngest {
  readonly #d: IngestDeps;
  readonly #plans = new Map<string, TelemetryPlan | null>();
  readonly #cells = new Map<string, [CellKey, Cell]>();
  readonly #dirty = new Set<string>();
  readonly #seqs = new Map<string, number>();
  readonly #devices = new Map<string, { deviceId: string; seq: number; dropped: number; at: number; bundleId: string }>();
  #timer: NodeJS.Timeout | null = null;
  readonly stats: IngestStats = { accepted: 0, flushes: 0, cellsWritten: 0, pendingCells: 0 };

  constructor(d: IngestDeps) { this.#d = d; }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => { try { this.flush(); } catch (e) { this.#d.logger.error({ err: e }, 'telemetry flush failed'); } }, this.#d.options.flushMs);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.flush();
  }

  #plan(bundleId: string): TelemetryPlan {
    let p = this.#plans.get(bundleId);
    if (p === undefined) {
      const m = this.#d.manifest(bundleId);
      p = m ? compilePlan(bundleId, m) : null;
      // Unknown bundles are not cached: the bundle may be published a moment later.
      if (p) this.#plans.set(bundleId, p);
    }
    if (!p) throw hubError('HUB_ERR_TELEMETRY_UNKNOWN_BUNDLE', `bundle ${bundleId.slice(0, 16)}…`);
    return p;
  }

  /** Validate a report against its bundle, then merge it. Throws a coded error and changes nothing when refused. */
  handle(r: TelemetryReport): void {
    const last = this.#seqs.get(r.deviceId) ?? this.#d.store.lastSeq(r.deviceId) ?? -1;
    if (r.seq <= last) throw hubError('HUB_ERR_TELEMETRY_REPLAY', `device ${r.deviceId} sent seq ${r.seq}, last seen ${last}`);
    const plan = this.#plan(r.bundleId);
    const bad = (why: string): never => { throw hubError('HUB_ERR_BAD_TELEMETRY', `device ${r.deviceId}, bundle ${r.bundleId.slice(0, 12)}…: ${why}`); };
    if (r.to < r.from) bad('window ends before it starts');
    if (r.part >= r.parts) bad(`part ${r.part} of ${r.parts}`);
    const cells: [string, Cell][] = [];
    const wrap = <T>(what: string, fn: () => T): T => { try { return fn(); } catch (e) { return bad(`${what}: ${(e as Error).message}`); } };
    const numeric = new Map(plan.features.filter((f) => f.kind === 'numeric').map((f) => [f.name, f]));
    const categorical = new Set(plan.features.filter((f) => f.kind === 'categorical').map((f) => f.name));
    const outputs = new Map(plan.outputs.map((o) => [o.name, o]));
    for (const [name, w] of Object.entries(r.features)) {
      const f = numeric.get(name) ?? bad(`feature ${JSON.stringify(name)} is not a numeric feature of this bundle`);
      cells.push([`f:${name}`, { kind: 'f', s: wrap(`feature ${name}`, () => fromWire(w, f.edges)) }]);
    }
    for (const [name, w] of Object.entries(r.categorical)) {
      if (!categorical.has(name)) bad(`feature ${JSON.stringify(name)} is not a categorical feature of this bundle`);
      cells.push([`c:${name}`, { kind: 'c', s: wrap(`feature ${name}`, () => categoricalFromWire(w, HARD_MAX_CATEGORIES)) }]);
    }
    for (const [name, w] of Object.entries(r.outputs)) {
      const o = outputs.get(name) ?? bad(`output ${JSON.stringify(name)} is not an output column of this bundle`);
      cells.push([`o:${name}`, { kind: 'o', s: wrap(`output ${name}`, () => fromWire(w, o.edges)) }]);
    }
    if (r.latency) cells.push(['latency', { kind: 'latency', s: wrap('latency', () => DDSketch.fromJSON(r.latency)) }]);
    cells.push(['meta', { kind: 'meta', s: { ...emptyMeta(), requests: r.requests, sampled: r.sampled, reports: r.part === 0 ? 1 : 0, failures: { ...r.failures } } }]);

    // Accepted: from here on nothing throws on the report's account.
    const now = this.#d.now();
    const { bucketMs, retentionMs } = this.#d.options;
    // A window is filed under the bucket of its start (so a range from time T holds windows that began at T or
    // later); device clocks drift, so never in the future or past retention.
    const at = Math.min(Math.max(r.from, now - retentionMs), now);
    const bucket = Math.floor(at / bucketMs) * bucketMs;
    const ring = this.#d.ringOf(r.deviceId, r.bundleId);
    for (const [key, c] of cells) this.#merge({ bundleId: r.bundleId, ring, key, bucket }, c);
    this.#seqs.set(r.deviceId, r.seq);
    const prev = this.#devices.get(r.deviceId);
    this.#devices.set(r.deviceId, { deviceId: r.deviceId, seq: r.seq, dropped: Math.max(r.dropped, prev?.dropped ?? 0), at: now, bundleId: r.bundleId });
    this.stats.accepted++;
    if (this.#dirty.size >= this.#d.options.maxPendingCells) this.flush();
  }

  #merge(k: CellKey, c: Cell): void {
    const id = `${k.bundleId}\0${k.ring}\0${k.key}\0${k.bucket}`;
    const have = this.#cells.get(id);
    if (have) have[1] = mergeCell(have[1], c);
    else {
      // First touch since start-up or eviction: continue from what is stored.
      const stored = this.#d.store.getCell('fine', k);
      this.#cells.set(id, [k, stored ? mergeCell(stored, c) : c]);
    }
    this.#dirty.add(id);
  }

  /** Write every touched cell in one transaction; forget cells of buckets that are closed. */
  flush(): void {
    if (this.#dirty.size === 0 && this.#devices.size === 0) return;
    const batch = [...this.#dirty].map((id) => this.#cells.get(id)!);
    this.#d.store.writeBatch(batch, [...this.#devices.values()]);
    this.#dirty.clear();
    this.#devices.clear();
    this.stats.flushes++;
    this.stats.cellsWritten += batch.length;
    const open = Math.floor(this.#d.now() / this.#d.options.bucketMs) * this.#d.options.bucketMs - this.#d.options.bucketMs;
    for (const [id, [k]] of this.#cells) if (k.bucket < open) this.#cells.delete(id);
    this.stats.pendingCells = this.#cells.size;
  }
}
