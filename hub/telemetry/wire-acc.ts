/**
 * Ingest's accumulators: they add already-validated wire summaries straight
 * into dense arrays, without building a DDSketch per report (building one
 * re-validates the wire form; the report was validated once at decode). The
 * result serialises to exactly what aggregate.ts `cellToJson` writes, so the
 * report side reads it with full validation as before.
 *
 * Sketch buckets add key by key (DDSketch merge is exact); if the union spans
 * more than maxBuckets keys, the store is folded the way DDSketch folds it
 * (positive store: lowest keys into the lowest kept one; negative store:
 * highest keys into the highest kept one), so a stored sketch always loads.
 */
import { DEFAULT_MAX_BUCKETS, type DDSketchWire, type StoreWire } from '../../protocol/ddsketch.js';
import type { CategoricalWire, FeatureSummaryWire } from '../../protocol/feature-summary.js';
import type { Meta } from './aggregate.js';

class StoreAcc {
  o = 0;
  c: number[] = [];

  add(w: StoreWire): void {
    let k = w.o;
    for (const v of w.c) {
      if (v < 0) { k -= v; continue; }
      this.put(k, v);
      k++;
    }
  }

  private put(k: number, v: number): void {
    if (this.c.length === 0) { this.o = k; this.c.push(v); return; }
    if (k < this.o) { this.c = new Array<number>(this.o - k).fill(0).concat(this.c); this.o = k; }
    const i = k - this.o;
    while (this.c.length <= i) this.c.push(0);
    this.c[i] += v;
  }

  toWire(maxBuckets: number, collapseLow: boolean): StoreWire | undefined {
    let a = 0;
    let b = this.c.length - 1;
    while (a <= b && this.c[a] === 0) a++;
    while (b >= a && this.c[b] === 0) b--;
    if (a > b) return undefined;
    let counts = this.c.slice(a, b + 1);
    let o = this.o + a;
    if (counts.length > maxBuckets) {
      const cut = counts.length - maxBuckets;
      if (collapseLow) {
        const folded = counts.slice(0, cut + 1).reduce((t, x) => t + x, 0);
        counts = [folded, ...counts.slice(cut + 1)];
        o += cut;
      } else {
        const folded = counts.slice(maxBuckets - 1).reduce((t, x) => t + x, 0);
        counts = [...counts.slice(0, maxBuckets - 1), folded];
      }
    }
    const c: number[] = [];
    for (const x of counts) {
      if (x === 0) { if (c.length && c[c.length - 1] < 0) c[c.length - 1]--; else c.push(-1); } else c.push(x);
    }
    return { o, c };
  }
}

/** A DDSketch in wire terms (with or without its count/sum/min/max). */
export class SketchAcc {
  readonly a: number;
  readonly m: number;
  z = 0;
  readonly p = new StoreAcc();
  readonly n = new StoreAcc();
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  constructor(a: number, m = DEFAULT_MAX_BUCKETS) { this.a = a; this.m = m; }

  /** Same α and bucket bound, or the merge would be meaningless; the caller refuses the report. */
  compatible(w: { a: number; m?: number }): boolean { return w.a === this.a && (w.m ?? DEFAULT_MAX_BUCKETS) === this.m; }

  addBody(w: Omit<DDSketchWire, 'count' | 'sum' | 'min' | 'max'>): void {
    this.z += w.z;
    if (w.p) this.p.add(w.p);
    if (w.n) this.n.add(w.n);
  }

  add(w: DDSketchWire): void {
    this.addBody(w);
    this.count += w.count;
    this.sum += w.sum;
    if (w.min !== null && w.min < this.min) this.min = w.min;
    if (w.max !== null && w.max > this.max) this.max = w.max;
  }

  body(): Omit<DDSketchWire, 'count' | 'sum' | 'min' | 'max'> {
    const out: Omit<DDSketchWire, 'count' | 'sum' | 'min' | 'max'> = { a: this.a, z: this.z };
    if (this.m !== DEFAULT_MAX_BUCKETS) out.m = this.m;
    const p = this.p.toWire(this.m, true);
    const n = this.n.toWire(this.m, false);
    if (p) out.p = p;
    if (n) out.n = n;
    return out;
  }

  toWire(): DDSketchWire {
    const has = this.count > 0;
    return { ...this.body(), count: this.count, sum: this.sum, min: has ? this.min : null, max: has ? this.max : null };
  }
}

export class SummaryAcc {
  readonly edges: readonly number[];
  count = 0;
  sum = 0;
  sumSq = 0;
  min = Infinity;
  max = -Infinity;
  nulls = 0;
  invalid = 0;
  readonly bins: number[];
  sketch: SketchAcc | null = null;

  constructor(edges: readonly number[]) {
    this.edges = edges;
    this.bins = new Array<number>(edges.length + 1).fill(0);
  }

  /** False when the wire form cannot be added (bins over other edges, another α); nothing is changed then. */
  canAdd(w: FeatureSummaryWire): boolean {
    return w.bins.length === this.bins.length && (this.sketch === null || this.sketch.compatible(w.sketch));
  }

  add(w: FeatureSummaryWire): void {
    this.count += w.count;
    this.sum += w.sum;
    this.sumSq += w.sumSq;
    if (w.min !== null && w.min < this.min) this.min = w.min;
    if (w.max !== null && w.max > this.max) this.max = w.max;
    this.nulls += w.nulls;
    this.invalid += w.invalid;
    for (let i = 0; i < this.bins.length; i++) this.bins[i] += w.bins[i];
    this.sketch ??= new SketchAcc(w.sketch.a, w.sketch.m);
    this.sketch.addBody(w.sketch);
  }

  toJson(): string {
    const has = this.count > 0;
    const w: FeatureSummaryWire = {
      count: this.count, sum: this.sum, sumSq: this.sumSq, min: has ? this.min : null, max: has ? this.max : null,
      nulls: this.nulls, invalid: this.invalid, bins: this.bins, sketch: this.sketch ? this.sketch.body() : { a: 0.02, z: 0 },
    };
    return JSON.stringify({ e: this.edges, w });
  }
}

export class CategoricalAcc {
  counts: Record<string, number> = Object.create(null);
  other = 0;
  nulls = 0;
  invalid = 0;

  add(w: CategoricalWire): void {
    for (const [k, v] of Object.entries(w.counts)) this.counts[k] = (this.counts[k] ?? 0) + v;
    this.other += w.other; this.nulls += w.nulls; this.invalid += w.invalid;
  }

  /** Bounded like CategoricalSummary: the largest counters keep a slot, the rest count as "other". */
  toJson(max: number): string {
    const ranked = Object.entries(this.counts).sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
    const counts: Record<string, number> = {};
    let other = this.other;
    ranked.forEach(([k, v], i) => { if (i < max) counts[k] = v; else other += v; });
    return JSON.stringify({ counts, other, nulls: this.nulls, invalid: this.invalid });
  }
}

export class MetaAcc {
  m: Meta = { requests: 0, sampled: 0, reports: 0, dropped: 0, failures: {} };
  add(x: Meta): void {
    this.m.requests += x.requests; this.m.sampled += x.sampled; this.m.reports += x.reports; this.m.dropped += x.dropped;
    for (const [k, v] of Object.entries(x.failures)) this.m.failures[k] = (this.m.failures[k] ?? 0) + v;
  }
  toJson(): string { return JSON.stringify(this.m); }
}
