/**
 * DDSketch: a mergeable quantile sketch with relative-error guarantees
 * (Masson, Rim, Lee, "DDSketch: a fast and fully-mergeable quantile sketch with
 * relative-error guarantees", VLDB 2019). Agents put a sketch of each feature in
 * their telemetry; the hub merges sketches from many devices and reads quantiles
 * and CDFs off the merge for KS and Wasserstein distances. Merging is exact
 * (bucket counts add), so a merge of per-device sketches is the sketch of the
 * union of their data.
 *
 * Mapping (paper §2.1): gamma = (1+α)/(1−α), a value x > 0 goes to bucket
 * i = ceil(log_gamma(x)), which covers (gamma^(i−1), gamma^i]; the bucket's
 * representative 2·gamma^i/(gamma+1) is within relative error α of every value
 * in it (paper Lemma 2). Negative values use a second store keyed by |x|;
 * |x| below the smallest normal double counts as zero.
 *
 * Memory bound (paper §2.2): each store keeps at most `maxBuckets` consecutive
 * keys. When a new key would exceed that, the buckets of the LOWEST values are
 * folded into the lowest kept one: lowest keys of the positive store, highest
 * keys (most negative values) of the negative store. So high quantiles keep the
 * α guarantee and only the extreme low tail loses it. With α = 0.01 and 2048
 * buckets one store spans a ratio of gamma^2048 ≈ 6·10^17, so real features
 * rarely collapse at all.
 */
import { protocolError } from './errors.js';
import { nullable, num, int, obj, arr, optional, parse, type Issue, type Schema } from './schema.js';

export const DEFAULT_ALPHA = 0.01;
export const DEFAULT_MAX_BUCKETS = 2048;
/** Hard limits for what a wire sketch may claim, so a hostile message cannot make us allocate much. */
export const MAX_ALPHA = 0.5;
export const MIN_ALPHA = 1e-4;
export const HARD_MAX_BUCKETS = 65_536;
/** |key| bound: log_gamma of the double range for the smallest α is ≈ 3.6·10^6. */
const MAX_KEY = 10_000_000;
/** Values with |x| below the smallest normal double go to the zero bucket (their log is imprecise). */
const MIN_INDEXABLE = 2.2250738585072014e-308;

export interface DDSketchOptions {
  /** Relative accuracy α in [1e-4, 0.5]. */
  alpha?: number;
  /** Most buckets per store (positive, negative). */
  maxBuckets?: number;
}

/**
 * One store's buckets on the wire: `o` is the key of the first entry; `c` lists
 * counts of consecutive keys, where a NEGATIVE integer −k stands for k empty
 * buckets (counts are never negative, so this is unambiguous). Centered
 * features have sparse tails near zero; the run markers keep a 1,000-value
 * window's sketch around 1 KB of JSON instead of 2.
 */
export interface StoreWire { o: number; c: number[] }

export interface DDSketchWire {
  /** α */
  a: number;
  /** maxBuckets, omitted when it is the default. */
  m?: number;
  /** zero count */
  z: number;
  /** positive store, omitted when empty */
  p?: StoreWire;
  /** negative store (keys of |x|), omitted when empty */
  n?: StoreWire;
  count: number;
  sum: number;
  /** null exactly when count is 0 */
  min: number | null;
  max: number | null;
}

/** Dense run of bucket counts over consecutive keys, with the collapse policy of its sign. */
class Store {
  offset = 0;
  counts: number[] = [];

  constructor(readonly maxBuckets: number, readonly collapseLow: boolean) {}

  get empty(): boolean { return this.counts.length === 0; }
  get lo(): number { return this.offset; }
  get hi(): number { return this.offset + this.counts.length - 1; }

  total(): number {
    let t = 0;
    for (const c of this.counts) t += c;
    return t;
  }

  add(key: number, w: number): void {
    if (this.empty) { this.offset = key; this.counts.push(w); return; }
    if (this.collapseLow) {
      const hi = Math.max(this.hi, key);
      const floor = hi - this.maxBuckets + 1;
      if (this.lo < floor) this.foldBelow(floor);
      key = Math.max(key, floor);
    } else {
      const lo = Math.min(this.lo, key);
      const ceil = lo + this.maxBuckets - 1;
      if (this.hi > ceil) this.foldAbove(ceil);
      key = Math.min(key, ceil);
    }
    if (this.empty) { this.offset = key; this.counts.push(w); return; }
    if (key < this.lo) {
      // concat, not unshift(...spread): a spread of up to HARD_MAX_BUCKETS arguments can overflow the call stack.
      this.counts = new Array<number>(this.lo - key).fill(0).concat(this.counts);
      this.offset = key;
    } else if (key > this.hi) {
      for (let k = this.hi; k < key; k++) this.counts.push(0);
    }
    this.counts[key - this.offset] += w;
  }

  /** Fold every bucket below `floor` into `floor` (this store's lowest kept key). */
  private foldBelow(floor: number): void {
    const cut = Math.min(floor - this.offset, this.counts.length);
    let folded = 0;
    for (let i = 0; i < cut; i++) folded += this.counts[i];
    this.counts.splice(0, cut);
    if (this.counts.length === 0) { this.offset = floor; this.counts.push(folded); return; }
    this.offset = floor;
    this.counts[0] += folded;
  }

  private foldAbove(ceil: number): void {
    const keep = Math.max(ceil - this.offset + 1, 0);
    let folded = 0;
    for (let i = keep; i < this.counts.length; i++) folded += this.counts[i];
    this.counts.length = keep;
    if (keep === 0) { this.offset = ceil; this.counts.push(folded); return; }
    this.counts[keep - 1] += folded;
  }

  toWire(): StoreWire {
    let a = 0;
    let b = this.counts.length - 1;
    while (a <= b && this.counts[a] === 0) a++;
    while (b >= a && this.counts[b] === 0) b--;
    const c: number[] = [];
    for (let i = a; i <= b; i++) {
      if (this.counts[i] === 0) {
        if (c.length && c[c.length - 1] < 0) c[c.length - 1]--;
        else c.push(-1);
      } else c.push(this.counts[i]);
    }
    return { o: this.offset + a, c };
  }
}

function checkAlpha(alpha: number): void {
  if (!(typeof alpha === 'number' && alpha >= MIN_ALPHA && alpha <= MAX_ALPHA)) {
    throw protocolError('PROTO_ERR_INVALID_OPTION', `DDSketch alpha must be a number in [${MIN_ALPHA}, ${MAX_ALPHA}], got ${String(alpha)}`);
  }
}

export class DDSketch {
  readonly alpha: number;
  readonly gamma: number;
  readonly maxBuckets: number;
  private readonly logGamma: number;
  private readonly pos: Store;
  private readonly neg: Store;
  private zero = 0;
  private n = 0;
  private total = 0;
  private lo = Infinity;
  private hi = -Infinity;

  constructor(opts: DDSketchOptions = {}) {
    const alpha = opts.alpha ?? DEFAULT_ALPHA;
    const maxBuckets = opts.maxBuckets ?? DEFAULT_MAX_BUCKETS;
    checkAlpha(alpha);
    if (!Number.isSafeInteger(maxBuckets) || maxBuckets < 2 || maxBuckets > HARD_MAX_BUCKETS) {
      throw protocolError('PROTO_ERR_INVALID_OPTION', `DDSketch maxBuckets must be an integer in [2, ${HARD_MAX_BUCKETS}], got ${String(maxBuckets)}`);
    }
    this.alpha = alpha;
    this.gamma = (1 + alpha) / (1 - alpha);
    this.logGamma = Math.log(this.gamma);
    this.maxBuckets = maxBuckets;
    this.pos = new Store(maxBuckets, true);
    this.neg = new Store(maxBuckets, false);
  }

  get count(): number { return this.n; }
  get sum(): number { return this.total; }
  /** Exact smallest value added (NaN when empty). */
  get min(): number { return this.n ? this.lo : NaN; }
  /** Exact largest value added (NaN when empty). */
  get max(): number { return this.n ? this.hi : NaN; }

  private key(abs: number): number { return Math.ceil(Math.log(abs) / this.logGamma); }
  private value(key: number): number { return (2 * Math.exp(key * this.logGamma)) / (this.gamma + 1); }

  /** Add `x` with a positive weight (a device sampling 1 in k may add with weight k). */
  add(x: number, weight = 1): this {
    if (typeof x !== 'number' || !Number.isFinite(x)) throw protocolError('PROTO_ERR_INVALID_OPTION', `DDSketch.add needs a finite number, got ${String(x)}; count NaN/Infinity as invalid before sketching`);
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) throw protocolError('PROTO_ERR_INVALID_OPTION', `DDSketch.add weight must be a positive finite number, got ${String(weight)}`);
    if (x >= MIN_INDEXABLE) this.pos.add(this.key(x), weight);
    else if (x <= -MIN_INDEXABLE) this.neg.add(this.key(-x), weight);
    else this.zero += weight;
    this.n += weight;
    this.total += x * weight;
    if (x < this.lo) this.lo = x;
    if (x > this.hi) this.hi = x;
    return this;
  }

  /** Add every bucket of `other` into this sketch; both must use the same α. */
  merge(other: DDSketch): this {
    if (other.alpha !== this.alpha) {
      throw protocolError('PROTO_ERR_INVALID_MESSAGE', `cannot merge DDSketches with different alpha (${this.alpha} and ${other.alpha}); every agent must sketch with the α the bundle's telemetry settings name`, { reason: 'alpha-mismatch' });
    }
    if (other.n === 0) return this;
    // Bucket counts add; the collapse policy gives the same result in any order (the fold line only moves up).
    other.pos.counts.forEach((c, i) => { if (c > 0) this.pos.add(other.pos.offset + i, c); });
    for (let i = other.neg.counts.length - 1; i >= 0; i--) { const c = other.neg.counts[i]; if (c > 0) this.neg.add(other.neg.offset + i, c); }
    this.zero += other.zero;
    this.n += other.n;
    this.total += other.total;
    if (other.lo < this.lo) this.lo = other.lo;
    if (other.hi > this.hi) this.hi = other.hi;
    return this;
  }

  clone(): DDSketch {
    return DDSketch.fromJSON(this.toJSON());
  }

  /** Visit buckets in increasing value order: (representative value, weight). */
  private *buckets(): Generator<[number, number]> {
    for (let i = this.neg.counts.length - 1; i >= 0; i--) {
      const c = this.neg.counts[i];
      if (c > 0) yield [-this.value(this.neg.offset + i), c];
    }
    if (this.zero > 0) yield [0, this.zero];
    for (let i = 0; i < this.pos.counts.length; i++) {
      const c = this.pos.counts[i];
      if (c > 0) yield [this.value(this.pos.offset + i), c];
    }
  }

  /**
   * Every non-empty bucket as (representative, weight), in increasing value
   * order, representatives clamped to `[lo, hi]` (default: the exact min and
   * max). Distance code (KS, Wasserstein) walks these step functions; a caller
   * whose min/max live elsewhere (a summary in standardised units) passes them.
   */
  points(lo = this.lo, hi = this.hi): { xs: number[]; ws: number[] } {
    const xs: number[] = [];
    const ws: number[] = [];
    for (const [v, c] of this.buckets()) { xs.push(Math.min(Math.max(v, lo), hi)); ws.push(c); }
    return { xs, ws };
  }

  /**
   * The q-quantile: the representative of the bucket holding the value of rank
   * q·(count−1) (0-based, lower), clamped to the exact [min, max]. Relative error
   * ≤ α unless that bucket was collapsed. NaN for an empty sketch.
   */
  quantile(q: number): number {
    return this.quantiles([q])[0];
  }

  /** Quantiles for many q at once in one pass over the buckets (q in any order). */
  quantiles(qs: readonly number[]): number[] {
    for (const q of qs) {
      if (typeof q !== 'number' || !(q >= 0 && q <= 1)) throw protocolError('PROTO_ERR_INVALID_OPTION', `quantile q must be in [0, 1], got ${String(q)}`);
    }
    const out = new Array<number>(qs.length).fill(NaN);
    if (this.n === 0) return out;
    const order = qs.map((q, i) => [q, i] as const).sort((x, y) => x[0] - y[0]);
    let j = 0;
    let cum = 0;
    for (const [v, c] of this.buckets()) {
      cum += c;
      while (j < order.length && order[j][0] * (this.n - 1) < cum) {
        out[order[j][1]] = order[j][0] === 0 ? this.lo : order[j][0] === 1 ? this.hi : Math.min(Math.max(v, this.lo), this.hi);
        j++;
      }
    }
    // Floating-point leftovers (cum a hair below n): the top value.
    for (; j < order.length; j++) out[order[j][1]] = this.hi;
    return out;
  }

  /**
   * Estimated fraction of weight ≤ x, treating each bucket as a point mass at
   * its representative (consistent with `quantile`); exact outside [min, max].
   */
  cdf(x: number): number {
    if (this.n === 0 || Number.isNaN(x)) return NaN;
    if (x < this.lo) return 0;
    if (x >= this.hi) return 1;
    let cum = 0;
    for (const [v, c] of this.buckets()) {
      if (v > x) break;
      cum += c;
    }
    return Math.min(cum / this.n, 1);
  }

  toJSON(): DDSketchWire {
    const w: DDSketchWire = { a: this.alpha, z: this.zero, count: this.n, sum: this.total, min: this.n ? this.lo : null, max: this.n ? this.hi : null };
    if (this.maxBuckets !== DEFAULT_MAX_BUCKETS) w.m = this.maxBuckets;
    if (this.pos.total() > 0) w.p = this.pos.toWire();
    if (this.neg.total() > 0) w.n = this.neg.toWire();
    return w;
  }

  /** Validate a wire sketch (schema and consistency) and rebuild it; throws PROTO_ERR_INVALID_MESSAGE. */
  static fromJSON(value: unknown): DDSketch {
    const w = parse(ddSketchWireSchema, value, { what: 'DDSketch' });
    const s = new DDSketch({ alpha: w.a, maxBuckets: w.m ?? DEFAULT_MAX_BUCKETS });
    if (w.p) loadStore(s.pos, w.p);
    if (w.n) loadStore(s.neg, w.n);
    s.zero = w.z;
    s.n = w.count;
    s.total = w.sum;
    s.lo = w.min ?? Infinity;
    s.hi = w.max ?? -Infinity;
    return s;
  }
}

function expand(c: readonly number[]): number[] {
  const out: number[] = [];
  for (const v of c) {
    if (v < 0) for (let k = 0; k < -v; k++) out.push(0);
    else out.push(v);
  }
  return out;
}

function loadStore(store: Store, w: StoreWire): void {
  store.offset = w.o;
  store.counts = expand(w.c);
}

/** Semantic checks the shape language cannot say; pushes issues, returns the expanded length. */
function checkStore(w: StoreWire, maxBuckets: number, path: string, issues: Issue[]): number {
  let len = 0;
  let total = 0;
  for (let i = 0; i < w.c.length; i++) {
    const v = w.c[i];
    if (v < 0 && !Number.isInteger(v)) { issues.push({ path: `${path}.c[${i}]`, problem: 'a negative entry is a run of empty buckets and must be an integer', kind: 'invalid' }); return 0; }
    len += v < 0 ? -v : 1;
    if (v > 0) total += v;
    if (len > maxBuckets) { issues.push({ path: `${path}.c`, problem: `spans more than maxBuckets (${maxBuckets}) buckets`, kind: 'invalid' }); return 0; }
  }
  if (Math.abs(w.o + len) > MAX_KEY) issues.push({ path: `${path}.o`, problem: `keys must stay within ±${MAX_KEY}`, kind: 'invalid' });
  return total;
}

const storeWireSchema = obj({ o: int({ min: -MAX_KEY, max: MAX_KEY }), c: arr(num(), { max: HARD_MAX_BUCKETS }) });

const ddSketchShape = obj({
  a: num({ min: MIN_ALPHA, max: MAX_ALPHA }),
  m: optional(int({ min: 2, max: HARD_MAX_BUCKETS })),
  z: num({ min: 0 }),
  p: optional(storeWireSchema),
  n: optional(storeWireSchema),
  count: num({ min: 0 }),
  sum: num(),
  min: nullable(num()),
  max: nullable(num()),
});

/**
 * The wire schema of a sketch, usable inside message schemas: shape first, then
 * consistency (bucket totals equal `count`, min/max present exactly when
 * count > 0, min ≤ max, bounded bucket spans).
 */
export const ddSketchWireSchema: Schema<DDSketchWire> = {
  json: ddSketchShape.json,
  check(value, path, issues) {
    const before = issues.length;
    const w = ddSketchShape.check(value, path, issues) as DDSketchWire | undefined;
    if (!w || issues.length > before) return undefined;
    const at = (k: string) => (path ? `${path}.${k}` : k);
    const m = w.m ?? DEFAULT_MAX_BUCKETS;
    let total = w.z;
    if (w.p) total += checkStore(w.p, m, at('p'), issues);
    if (w.n) total += checkStore(w.n, m, at('n'), issues);
    if (issues.length > before) return undefined;
    if (Math.abs(total - w.count) > 1e-9 * Math.max(1, w.count)) issues.push({ path: at('count'), problem: `is ${w.count} but the buckets hold ${total}`, kind: 'invalid' });
    if ((w.count > 0) !== (w.min !== null && w.max !== null) || (w.count === 0 && (w.min !== null || w.max !== null))) issues.push({ path: at('min'), problem: 'min and max must be numbers when count > 0 and null when it is 0', kind: 'invalid' });
    else if (w.min !== null && w.max !== null && w.min > w.max) issues.push({ path: at('min'), problem: `min ${w.min} is above max ${w.max}`, kind: 'invalid' });
    return issues.length > before ? undefined : w;
  },
};
