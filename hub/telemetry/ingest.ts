/**
 * Telemetry ingest. A report arrives as bytes (binary, what agents send, or
 * JSON, converted to binary first so there is one path) and is decoded into a
 * reusable scratch buffer (protocol/telemetry-binary.ts: every check of the
 * message schema, next to no allocation). It is then checked against the
 * bundle it names — every feature known, of the right kind, counted over the
 * reference edges, sketched with the telemetry α — and against the device's
 * sequence (a seq at or below the last one seen is a replay and is dropped).
 * Only then is it added, per (bundle, ring, key, bucket), into accumulators
 * that work on typed arrays (wire-acc.ts); a timer writes the touched cells in
 * one SQLite transaction. A refused report changes nothing and never stops
 * the others.
 *
 * Cells are grouped per (bundle, ring, bucket), so a report costs one group
 * lookup and then one small map lookup per feature.
 */
import type { Logger } from 'pino';
import { DEFAULT_MAX_BUCKETS, type DDSketchWire } from '@fleetcast/protocol/ddsketch.js';
import { HARD_MAX_CATEGORIES, SUMMARY_ALPHA, type CategoricalWire, type FeatureSummaryWire } from '@fleetcast/protocol/feature-summary.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { telemetryBytes } from '@fleetcast/protocol/messages.js';
import { encodeTelemetryBinary, TelemetryDecoder, type DecodedTelemetry, type SummaryView } from '@fleetcast/protocol/telemetry-binary.js';
import { compilePlan } from '@fleetcast/protocol/telemetry-plan.js';
import type { TelemetryReport } from '@fleetcast/protocol/telemetry.js';
import { hubError } from '../errors.js';
import { emptyMeta, type Meta } from './aggregate.js';
import type { TelemetryOptions } from './options.js';
import type { CellKey, TelemetryStore } from './telemetry-store.js';
import { CategoricalAcc, MetaAcc, SketchAcc, SummaryAcc } from './wire-acc.js';

type Acc = SummaryAcc | CategoricalAcc | SketchAcc | MetaAcc;

export interface IngestDeps {
  store: TelemetryStore;
  options: TelemetryOptions;
  /** The manifest of a published bundle, or undefined. */
  manifest(bundleId: string): Manifest | undefined;
  /** The ring a device's figures count towards (the rollout engine's view, or its assignment's ring). */
  ringOf(deviceId: string, bundleId: string): string;
  now: () => number;
  logger: Logger;
  /** Delta mode (ingest workers): every flush forgets every cell, so the next flush holds only what came since. */
  forgetAfterFlush?: boolean;
}

export interface IngestStats { accepted: number; flushes: number; cellsWritten: number; pendingCells: number; /** Stored cells that could not be read back and were started afresh. */ unreadableCells: number }

/** What a bundle's reference says each name is: numeric features and outputs with their edges, categorical names. */
interface Shape { numeric: Map<string, readonly number[]>; categorical: Set<string>; outputs: Map<string, readonly number[]> }

/** The cells of one (bundle, ring, bucket), keyed `f:NAME`, `c:NAME`, `o:NAME`, `latency`, `meta`. */
interface Group { bundleId: string; ring: string; bucket: number; shape: Shape; cells: Map<string, Acc>; features: Map<string, SummaryAcc>; outputs: Map<string, SummaryAcc>; /** Reports since the last flush. */ touched: boolean }

interface DeviceMark { deviceId: string; seq: number; dropped: number; at: number; bundleId: string }

/**
 * Most values one report may count in any field: 2^32, about 50,000 requests a second for a whole day in
 * one window. It keeps a cell's sums exact integers for two million reports per bucket; past that a stored
 * cell would not read back, and is skipped and counted (TelemetryStore.unreadableRows) rather than fatal.
 */
const MAX_COUNT = 2 ** 32;

/** α and bucket bound every telemetry sketch must have, or the merge would be meaningless. */
const sameAlpha = (s: { a: number; m: number } | { a: number; m?: number }) => s.a === SUMMARY_ALPHA && (s.m ?? DEFAULT_MAX_BUCKETS) === DEFAULT_MAX_BUCKETS;

export class TelemetryIngest {
  readonly #d: IngestDeps;
  readonly #decoder = new TelemetryDecoder();
  readonly #shapes = new Map<string, Shape>();
  readonly #groups = new Map<string, Group>();
  /** The groups used last, newest first (cleared with the groups they point to). */
  #recent: Group[] = [];
  /** Cells touched since the last flush. */
  #dirty: [Group, string, Acc][] = [];
  readonly #dirtySet = new Set<Acc>();
  readonly #seqs = new Map<string, number>();
  #devices = new Map<string, DeviceMark>();
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

  /**
   * Decode a report message of either form into the ingest's scratch (valid
   * until the next decode). Throws PROTO_ERR_MESSAGE_TOO_LARGE / _INVALID_JSON / _INVALID_MESSAGE.
   */
  decode(payload: Uint8Array): DecodedTelemetry {
    return this.#decoder.decode(telemetryBytes(payload));
  }

  /** A report already in object form (tools, tests): the same checks and merge as the wire path. */
  handle(r: TelemetryReport): void {
    this.handleDecoded(this.#decoder.decode(encodeTelemetryBinary(r)));
  }

  #shape(bundleId: string): Shape {
    let s = this.#shapes.get(bundleId);
    if (s) return s;
    const m = this.#d.manifest(bundleId);
    // Unknown bundles are not cached: the bundle may be published a moment later.
    if (!m) throw hubError('HUB_ERR_TELEMETRY_UNKNOWN_BUNDLE', `bundle ${bundleId.slice(0, 16)}…`);
    const plan = compilePlan(bundleId, m);
    s = {
      numeric: new Map(plan.features.filter((f) => f.kind === 'numeric').map((f) => [f.name, f.edges])),
      categorical: new Set(plan.features.filter((f) => f.kind === 'categorical').map((f) => f.name)),
      outputs: new Map(plan.outputs.map((o) => [o.name, o.edges])),
    };
    this.#shapes.set(bundleId, s);
    return s;
  }

  /** Check a decoded report against its bundle and sequence, then merge it. Throws a coded error and changes nothing when refused. */
  handleDecoded(r: DecodedTelemetry): void {
    let last = this.#seqs.get(r.deviceId);
    if (last === undefined) {
      // Read from the store once per device and kept, so a refused report cannot make the ingest forget it.
      last = this.#d.store.lastSeq(r.deviceId) ?? -1;
      this.#seqs.set(r.deviceId, last);
    }
    if (r.seq <= last) throw hubError('HUB_ERR_TELEMETRY_REPLAY', `device ${r.deviceId} sent seq ${r.seq}, last seen ${last}`);
    const shape = this.#shape(r.bundleId);
    if (r.to < r.from) this.#bad(r, 'window ends before it starts');
    if (r.part >= r.parts) this.#bad(r, `part ${r.part} of ${r.parts}`);
    // The decoder has checked every summary's shape and consistency; what is left is whether it fits this
    // bundle: known names, bins over the reference edges, the telemetry α.
    for (const v of r.features) this.#fits(r, v, shape.numeric.get(v.name), 'feature');
    for (const [name] of r.categorical) if (!shape.categorical.has(name)) this.#bad(r, `feature ${JSON.stringify(name)} is not a categorical feature of this bundle`);
    for (const v of r.outputs) this.#fits(r, v, shape.outputs.get(v.name), 'output');
    if (r.latency && !sameAlpha(r.latency)) this.#bad(r, `latency was sketched with α ${r.latency.a}, telemetry uses ${SUMMARY_ALPHA}`);
    this.#bounded(r);

    // Accepted: from here on nothing throws on the report's account.
    const now = this.#d.now();
    const { bucketMs, retentionMs } = this.#d.options;
    // A window is filed under the bucket of its start (so a range from time T holds windows that began at T or
    // later); device clocks drift, so never in the future or past retention.
    const at = Math.min(Math.max(r.from, now - retentionMs), now);
    const bucket = Math.floor(at / bucketMs) * bucketMs;
    const g = this.#group(r.bundleId, this.#d.ringOf(r.deviceId, r.bundleId), bucket, shape);
    g.touched = true;
    const vals = r.vals;
    for (const v of r.features) this.#summary(g, g.features, 'f:', v.name).addView(vals, v);
    for (const v of r.outputs) this.#summary(g, g.outputs, 'o:', v.name).addView(vals, v);
    for (const [name, w] of r.categorical) (this.#cell(g, `c:${name}`) as CategoricalAcc).addWire(w);
    if (r.latency) (this.#cell(g, 'latency') as SketchAcc).addView(vals, r.latency);
    const meta = this.#cell(g, 'meta') as MetaAcc;
    meta.m.requests += r.requests;
    meta.m.sampled += r.sampled;
    if (r.part === 0) meta.m.reports++;
    for (const [code, n] of r.failures) meta.addFailure(code, n);
    this.#seqs.set(r.deviceId, r.seq);
    const mark = this.#devices.get(r.deviceId);
    if (mark) { mark.seq = r.seq; mark.dropped = Math.max(r.dropped, mark.dropped); mark.at = now; mark.bundleId = r.bundleId; }
    else this.#devices.set(r.deviceId, { deviceId: r.deviceId, seq: r.seq, dropped: r.dropped, at: now, bundleId: r.bundleId });
    this.stats.accepted++;
    if (this.#dirty.length >= this.#d.options.maxPendingCells) this.flush();
  }

  #bad(r: DecodedTelemetry, why: string): never {
    throw hubError('HUB_ERR_BAD_TELEMETRY', `device ${r.deviceId}, bundle ${r.bundleId.slice(0, 12)}…: ${why}`);
  }

  /** Counts a device can have seen in one window are far below MAX_COUNT; a report claiming more is refused. */
  #bounded(r: DecodedTelemetry): void {
    const over = (x: number) => x > MAX_COUNT;
    if (over(r.requests) || over(r.sampled) || r.failures.some(([, n]) => over(n)) || (r.latency && over(r.latency.count))) this.#bad(r, `a request count is above ${MAX_COUNT}`);
    for (const list of [r.features, r.outputs]) for (const v of list) if (over(v.count) || over(v.nulls) || over(v.invalid)) this.#bad(r, `${v.name} counts more than ${MAX_COUNT} values`);
    for (const [name, c] of r.categorical) {
      if (over(c.other) || over(c.nulls) || over(c.invalid)) this.#bad(r, `${name} counts more than ${MAX_COUNT} values`);
      for (const k in c.counts) if (over(c.counts[k])) this.#bad(r, `${name} counts more than ${MAX_COUNT} values`);
    }
  }

  #fits(r: DecodedTelemetry, v: SummaryView, edges: readonly number[] | undefined, what: 'feature' | 'output'): void {
    if (!edges) this.#bad(r, `${what} ${JSON.stringify(v.name)} is not a ${what === 'feature' ? 'numeric feature' : 'output column'} of this bundle`);
    if (v.bins !== edges.length + 1) this.#bad(r, `${what} ${v.name} has ${v.bins} bins, the reference edges make ${edges.length + 1}`);
    if (!sameAlpha(v.sketch)) this.#bad(r, `${what} ${v.name} was sketched with α ${v.sketch.a}, telemetry uses ${SUMMARY_ALPHA}`);
  }

  #group(bundleId: string, ring: string, bucket: number, shape: Shape): Group {
    // A fleet's reports fall into a handful of groups at a time (its rings × the open bucket): look there first.
    for (const g of this.#recent) if (g.bucket === bucket && g.ring === ring && g.bundleId === bundleId) return g;
    const id = `${bundleId}\0${ring}\0${bucket}`;
    let g = this.#groups.get(id);
    if (!g) {
      g = { bundleId, ring, bucket, shape, cells: new Map(), features: new Map(), outputs: new Map(), touched: true };
      this.#groups.set(id, g);
    }
    this.#recent.unshift(g);
    if (this.#recent.length > 8) this.#recent.pop();
    return g;
  }

  #summary(g: Group, byName: Map<string, SummaryAcc>, prefix: 'f:' | 'o:', name: string): SummaryAcc {
    const acc = byName.get(name);
    if (acc) { this.#touch(g, acc, prefix + name); return acc; }
    const fresh = this.#cell(g, prefix + name) as SummaryAcc;
    byName.set(name, fresh);
    return fresh;
  }

  #touch(g: Group, acc: Acc, key: string): void {
    if (this.#dirtySet.has(acc)) return;
    this.#dirtySet.add(acc);
    this.#dirty.push([g, key, acc]);
  }

  /** The accumulator of a cell; on first touch since start-up (or eviction) it continues from what is stored. */
  #cell(g: Group, key: string): Acc {
    const have = g.cells.get(key);
    if (have) { this.#touch(g, have, key); return have; }
    const name = key.slice(2);
    const fresh = (): Acc => (key.startsWith('f:') ? new SummaryAcc(g.shape.numeric.get(name)!, SUMMARY_ALPHA) : key.startsWith('o:') ? new SummaryAcc(g.shape.outputs.get(name)!, SUMMARY_ALPHA)
      : key.startsWith('c:') ? new CategoricalAcc() : key === 'latency' ? new SketchAcc(SUMMARY_ALPHA) : new MetaAcc());
    let acc = fresh();
    const stored = this.#d.store.getRaw('fine', { bundleId: g.bundleId, ring: g.ring, key, bucket: g.bucket });
    if (stored !== undefined) {
      try {
        const v = JSON.parse(stored) as Record<string, unknown>;
        if (acc instanceof SummaryAcc) acc.addWire(v.w as FeatureSummaryWire);
        else if (acc instanceof CategoricalAcc) acc.addWire(v as unknown as CategoricalWire);
        else if (acc instanceof SketchAcc) acc.addWire(v as unknown as DDSketchWire);
        else acc.addWire({ ...emptyMeta(), ...(v as Partial<Meta>) });
      } catch {
        // A damaged stored cell must not stop every later flush: it starts afresh (and is overwritten), counted.
        this.stats.unreadableCells++;
        acc = fresh();
      }
    }
    // Marked dirty only once it exists, so flush() never meets a dirty cell that is not there.
    g.cells.set(key, acc);
    this.#touch(g, acc, key);
    return acc;
  }

  /**
   * Forget the cells of buckets before `bucket` (roll-up has folded their stored rows into hour buckets; a
   * cell kept here would write its whole content back as a fine row and be folded twice).
   */
  forgetBefore(bucket: number): void {
    this.#recent = [];
    for (const [id, g] of this.#groups) if (g.bucket < bucket) this.#groups.delete(id);
  }

  /** Write every touched cell in one transaction; forget cells of buckets that are closed. */
  flush(): void {
    if (this.#dirty.length === 0 && this.#devices.size === 0) return;
    const batch = this.#dirty.map(([g, key, acc]): [CellKey, string] => [
      { bundleId: g.bundleId, ring: g.ring, key, bucket: g.bucket },
      acc instanceof CategoricalAcc ? acc.toJson(HARD_MAX_CATEGORIES) : acc.toJson(),
    ]);
    this.#d.store.writeBatchJson(batch, [...this.#devices.values()]);
    this.#dirty = [];
    this.#dirtySet.clear();
    this.#devices = new Map();
    this.stats.flushes++;
    this.stats.cellsWritten += batch.length;
    const open = Math.floor(this.#d.now() / this.#d.options.bucketMs) * this.#d.options.bucketMs - this.#d.options.bucketMs;
    let cells = 0;
    this.#recent = [];
    if (this.#d.forgetAfterFlush) this.#groups.clear();
    // A closed bucket's cells are forgotten once a flush interval passes without reports for it (late reports of
    // a device that was offline come in bursts: keeping the group saves reading its cells back per report).
    for (const [id, g] of this.#groups) {
      if (g.bucket < open && !g.touched) this.#groups.delete(id);
      else { cells += g.cells.size; g.touched = false; }
    }
    this.stats.pendingCells = cells;
  }
}
