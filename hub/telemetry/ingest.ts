/**
 * Telemetry ingest: a decoded report (the dispatcher has checked its schema,
 * size and that the topic's device id is the body's) is checked against the
 * bundle it names — every feature known, of the right kind, counted over the
 * reference edges — and against the device's sequence (a seq at or below the
 * last one seen is a replay and is dropped). Then it is added in memory per
 * (bundle, ring, key, bucket) into accumulators that work on the validated
 * wire form (wire-acc.ts); a timer writes the touched cells in one SQLite
 * transaction. A refused report changes nothing and never stops the others.
 */
import type { Logger } from 'pino';
import { DEFAULT_MAX_BUCKETS, type DDSketchWire } from '../../protocol/ddsketch.js';
import { HARD_MAX_CATEGORIES, SUMMARY_ALPHA, type CategoricalWire, type FeatureSummaryWire } from '../../protocol/feature-summary.js';
import type { Manifest } from '../../protocol/manifest.js';
import { compilePlan, type TelemetryPlan } from '../../protocol/telemetry-plan.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import { hubError } from '../errors.js';
import { emptyMeta, kindOf, type Meta } from './aggregate.js';
import { CategoricalAcc, MetaAcc, SketchAcc, SummaryAcc } from './wire-acc.js';

type Acc = SummaryAcc | CategoricalAcc | SketchAcc | MetaAcc;
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

export interface IngestStats { accepted: number; flushes: number; cellsWritten: number; pendingCells: number; /** Stored cells that could not be read back and were started afresh. */ unreadableCells: number }

export class TelemetryIngest {
  readonly #d: IngestDeps;
  readonly #plans = new Map<string, TelemetryPlan | null>();
  readonly #cells = new Map<string, [CellKey, Acc]>();
  readonly #edgeMaps = new Map<string, { numeric: Map<string, readonly number[]>; categorical: Set<string>; outputs: Map<string, readonly number[]> }>();
  readonly #dirty = new Set<string>();
  readonly #seqs = new Map<string, number>();
  readonly #devices = new Map<string, { deviceId: string; seq: number; dropped: number; at: number; bundleId: string }>();
  #timer: NodeJS.Timeout | null = null;
  readonly stats: IngestStats = { accepted: 0, flushes: 0, cellsWritten: 0, pendingCells: 0, unreadableCells: 0 };

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
    // The message schema (decode) has checked every summary's shape and consistency; what is left is
    // whether it fits this bundle: known names, bins over the reference edges, the telemetry α.
    const sameAlpha = (w: { a: number; m?: number }) => w.a === SUMMARY_ALPHA && (w.m === undefined || w.m === DEFAULT_MAX_BUCKETS);
    const edges = this.#edges(plan);
    for (const [name, w] of Object.entries(r.features)) {
      const e = edges.numeric.get(name) ?? bad(`feature ${JSON.stringify(name)} is not a numeric feature of this bundle`);
      if (w.bins.length !== e.length + 1) bad(`feature ${name} has ${w.bins.length} bins, the reference edges make ${e.length + 1}`);
      if (!sameAlpha(w.sketch)) bad(`feature ${name} was sketched with α ${w.sketch.a}, telemetry uses ${SUMMARY_ALPHA}`);
    }
    for (const name of Object.keys(r.categorical)) if (!edges.categorical.has(name)) bad(`feature ${JSON.stringify(name)} is not a categorical feature of this bundle`);
    for (const [name, w] of Object.entries(r.outputs)) {
      const e = edges.outputs.get(name) ?? bad(`output ${JSON.stringify(name)} is not an output column of this bundle`);
      if (w.bins.length !== e.length + 1) bad(`output ${name} has ${w.bins.length} bins, the reference edges make ${e.length + 1}`);
      if (!sameAlpha(w.sketch)) bad(`output ${name} was sketched with α ${w.sketch.a}, telemetry uses ${SUMMARY_ALPHA}`);
    }
    if (r.latency && !sameAlpha(r.latency)) bad(`latency was sketched with α ${r.latency.a}, telemetry uses ${SUMMARY_ALPHA}`);

    // Accepted: from here on nothing throws on the report's account.
    const now = this.#d.now();
    const { bucketMs, retentionMs } = this.#d.options;
    // A window is filed under the bucket of its start (so a range from time T holds windows that began at T or
    // later); device clocks drift, so never in the future or past retention.
    const at = Math.min(Math.max(r.from, now - retentionMs), now);
    const bucket = Math.floor(at / bucketMs) * bucketMs;
    const ring = this.#d.ringOf(r.deviceId, r.bundleId);
    const k = (key: string): CellKey => ({ bundleId: r.bundleId, ring, key, bucket });
    for (const [name, w] of Object.entries(r.features)) (this.#acc(k(`f:${name}`)) as SummaryAcc).add(w);
    for (const [name, w] of Object.entries(r.categorical)) (this.#acc(k(`c:${name}`)) as CategoricalAcc).add(w);
    for (const [name, w] of Object.entries(r.outputs)) (this.#acc(k(`o:${name}`)) as SummaryAcc).add(w);
    if (r.latency) (this.#acc(k('latency')) as SketchAcc).add(r.latency);
    (this.#acc(k('meta')) as MetaAcc).add({ requests: r.requests, sampled: r.sampled, reports: r.part === 0 ? 1 : 0, dropped: 0, failures: r.failures });
    this.#seqs.set(r.deviceId, r.seq);
    const prev = this.#devices.get(r.deviceId);
    this.#devices.set(r.deviceId, { deviceId: r.deviceId, seq: r.seq, dropped: Math.max(r.dropped, prev?.dropped ?? 0), at: now, bundleId: r.bundleId });
    this.stats.accepted++;
    if (this.#dirty.size >= this.#d.options.maxPendingCells) this.flush();
  }

  #edges(plan: TelemetryPlan): { numeric: Map<string, readonly number[]>; categorical: Set<string>; outputs: Map<string, readonly number[]> } {
    let e = this.#edgeMaps.get(plan.bundleId);
    if (!e) {
      e = {
        numeric: new Map(plan.features.filter((f) => f.kind === 'numeric').map((f) => [f.name, f.edges])),
        categorical: new Set(plan.features.filter((f) => f.kind === 'categorical').map((f) => f.name)),
        outputs: new Map(plan.outputs.map((o) => [o.name, o.edges])),
      };
      this.#edgeMaps.set(plan.bundleId, e);
    }
    return e;
  }

  /** The accumulator of a cell; on first touch since start-up (or eviction) it continues from what is stored. */
  #acc(k: CellKey): Acc {
    const id = `${k.bundleId}\0${k.ring}\0${k.key}\0${k.bucket}`;
    const have = this.#cells.get(id);
    if (have) { this.#dirty.add(id); return have[1]; }
    const plan = this.#plans.get(k.bundleId)!;
    const kind = kindOf(k.key);
    const edges = this.#edges(plan);
    const name = k.key.slice(2);
    const fresh = (): Acc => (kind === 'f' ? new SummaryAcc(edges.numeric.get(name)!) : kind === 'o' ? new SummaryAcc(edges.outputs.get(name)!)
      : kind === 'c' ? new CategoricalAcc() : kind === 'latency' ? new SketchAcc(SUMMARY_ALPHA) : new MetaAcc());
    let acc = fresh();
    const stored = this.#d.store.getRaw('fine', k);
    if (stored !== undefined) {
      try {
        const v = JSON.parse(stored) as Record<string, unknown>;
        if (acc instanceof SummaryAcc) acc.add(v.w as FeatureSummaryWire);
        else if (acc instanceof CategoricalAcc) acc.add(v as unknown as CategoricalWire);
        else if (acc instanceof SketchAcc) acc.add(v as unknown as DDSketchWire);
        else acc.add({ ...emptyMeta(), ...(v as Partial<Meta>) });
      } catch {
        // A damaged stored cell must not stop every later flush: it starts afresh (and is overwritten), counted.
        this.stats.unreadableCells++;
        acc = fresh();
      }
    }
    // Marked dirty only once it exists, so flush() never meets a dirty id without a cell.
    this.#cells.set(id, [k, acc]);
    this.#dirty.add(id);
    return acc;
  }

  /** Write every touched cell in one transaction; forget cells of buckets that are closed. */
  flush(): void {
    if (this.#dirty.size === 0 && this.#devices.size === 0) return;
    const batch = [...this.#dirty].map((id): [CellKey, string] => {
      const [k, acc] = this.#cells.get(id)!;
      return [k, acc instanceof CategoricalAcc ? acc.toJson(HARD_MAX_CATEGORIES) : acc instanceof SketchAcc ? JSON.stringify(acc.toWire()) : acc.toJson()];
    });
    this.#d.store.writeBatchJson(batch, [...this.#devices.values()]);
    this.#dirty.clear();
    this.#devices.clear();
    this.stats.flushes++;
    this.stats.cellsWritten += batch.length;
    const open = Math.floor(this.#d.now() / this.#d.options.bucketMs) * this.#d.options.bucketMs - this.#d.options.bucketMs;
    for (const [id, [k]] of this.#cells) if (k.bucket < open) this.#cells.delete(id);
    this.stats.pendingCells = this.#cells.size;
  }
}
