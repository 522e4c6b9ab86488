/**
 * Mergeable per-window summaries of one feature, as agents report them in
 * telemetry (DESIGN.md "Telemetry and drift": raw values stay on the device).
 * Every field merges exactly by addition (or min/max), so the hub's merge of
 * many devices' summaries equals the summary of all their values; the hub
 * compares the merge against the bundle's reference profile (hub/drift/).
 *
 * Bin convention (the agent and the hub must agree, so it is fixed here): for
 * strictly increasing edges e_0 < … < e_{k−1} there are k+1 bins, all closed
 * on the left and open on the right:
 *   bin 0 = (−∞, e_0),  bin i = [e_{i−1}, e_i) for 1 ≤ i ≤ k−1,  bin k = [e_{k−1}, +∞).
 * A value equal to an edge goes to the bin that edge opens. The edges come from
 * `referenceProfile` (interior quantiles of the reference data), so the two
 * outer bins are the reference's tails, not "values never seen": every bin
 * holds about 1/bins of the reference and PSI has no empty reference bins.
 */
import { DDSketch, ddSketchWireSchema, type DDSketchOptions, type DDSketchWire } from './ddsketch.js';
import { protocolError } from './errors.js';
import { arr, int, nullable, num, obj, optional, parse, record, type Schema } from './schema.js';

/** At most this many edges (so 1,025 bins) in a profile or a summary. */
export const MAX_EDGES = 1024;
/**
 * Sketch accuracy for telemetry summaries. 2 % (not the sketch's 1 % default)
 * keeps a 32-feature report of 1,000-value windows under 32 KB even for
 * standardised features centred on 0, the worst case for a log-bucketed
 * sketch (about 1.1 KB per feature at 1 %, 0.6 KB at 2 %). 2 % relative error
 * moves a normalised Wasserstein figure by at most 0.02·E|X|/σ, far below the
 * 0.1 alarm threshold.
 */
export const SUMMARY_ALPHA = 0.02;

/**
 * Where a feature sits and how wide it is, fixed by the reference profile
 * (`centre`, `scale`): summaries sketch and sum the standardised value
 * z = (x − centre) / scale instead of x. A relative-accuracy sketch resolves
 * values near 0 finely and values far from 0 coarsely (bucket width α·|x|), so
 * a feature at N(1000, 1) put every value into one bucket of x and the sketch
 * saw no spread at all; in z every feature is near 0 with unit spread and the
 * sketch's accuracy no longer depends on the feature's location or scale.
 * Bins, min and max stay in the feature's own units (they are exact anyway).
 */
export interface Frame { readonly centre: number; readonly scale: number }

/**
 * |z| beyond this is sketched (and summed) as ±Z_LIMIT: 10⁹ reference spreads
 * is no measurement, and one such value would otherwise stretch the sketch's
 * store past its bucket bound and fold away every small |z|. min, max and the
 * bins still record the exact value.
 */
export const Z_LIMIT = 1e9;
/**
 * Moments add values clamped to ±MOMENT_LIMIT (features without a frame): a
 * legal double above ~1.3·10¹⁵⁴ squares to Infinity, and one Infinity made the
 * whole report (every feature) unsendable. 10¹⁰⁰ squared times any count a hub
 * can merge stays finite.
 */
export const MOMENT_LIMIT = 1e100;

/** The frame a profile fixes, or undefined for profiles built before frames (values sketched as they are). */
export function frameOf(p: Pick<ReferenceProfile, 'centre' | 'scale'> | undefined): Frame | undefined {
  return p && p.centre !== undefined && p.scale !== undefined ? { centre: p.centre, scale: p.scale } : undefined;
}

/** x in a frame's units, clamped to ±Z_LIMIT; x itself without a frame. */
export function standardise(f: Frame | undefined, x: number): number {
  if (!f) return x;
  const z = (x - f.centre) / f.scale;
  return z > Z_LIMIT ? Z_LIMIT : z < -Z_LIMIT ? -Z_LIMIT : z;
}

export interface FeatureSummary {
  /** The edges the bins were counted over (from the bundle's reference profile); never on the wire. */
  readonly edges: readonly number[];
  /** The reference's frame: sum, sumSq and the sketch are of standardised values (see Frame); never on the wire. */
  readonly frame?: Frame;
  /** Finite values seen. */
  count: number;
  /** Sum and sum of squares of the standardised values (of x without a frame), each clamped to ±MOMENT_LIMIT. */
  sum: number;
  sumSq: number;
  /** +Infinity / −Infinity while count is 0 (null on the wire). */
  min: number;
  max: number;
  /** null or undefined values (a missing feature). */
  nulls: number;
  /** NaN, ±Infinity and values that are not numbers. */
  invalid: number;
  /** edges.length + 1 counts, see the bin convention above. */
  bins: number[];
  sketch: DDSketch;
}

function checkEdges(edges: readonly number[], what: string): void {
  if (!Array.isArray(edges) || edges.length > MAX_EDGES) throw protocolError('PROTO_ERR_INVALID_MESSAGE', `${what}: bin edges must be an array of at most ${MAX_EDGES} numbers`);
  for (let i = 0; i < edges.length; i++) {
    if (typeof edges[i] !== 'number' || !Number.isFinite(edges[i])) throw protocolError('PROTO_ERR_INVALID_MESSAGE', `${what}: bin edge ${i} is ${String(edges[i])}, edges must be finite numbers`);
    if (i > 0 && !(edges[i] > edges[i - 1])) throw protocolError('PROTO_ERR_INVALID_MESSAGE', `${what}: bin edges must be strictly increasing (edge ${i} is ${edges[i]} after ${edges[i - 1]})`);
  }
}

export function createSummary(edges: readonly number[], sketch: DDSketchOptions = {}, frame?: Frame): FeatureSummary {
  checkEdges(edges, 'createSummary');
  return {
    edges: Object.freeze([...edges]),
    ...(frame ? { frame } : {}),
    count: 0, sum: 0, sumSq: 0, min: Infinity, max: -Infinity, nulls: 0, invalid: 0,
    bins: new Array<number>(edges.length + 1).fill(0),
    sketch: new DDSketch({ alpha: SUMMARY_ALPHA, ...sketch }),
  };
}

/** The bin of a finite x: the number of edges ≤ x (binary search). */
export function binIndex(edges: readonly number[], x: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Count one value; never throws, so a device's bad input only shows up as nulls/invalid. */
export function observe(s: FeatureSummary, value: unknown): void {
  if (value === null || value === undefined) { s.nulls++; return; }
  if (typeof value !== 'number' || !Number.isFinite(value)) { s.invalid++; return; }
  s.count++;
  const z = standardise(s.frame, value);
  const m = z > MOMENT_LIMIT ? MOMENT_LIMIT : z < -MOMENT_LIMIT ? -MOMENT_LIMIT : z;
  s.sum += m;
  s.sumSq += m * m;
  if (value < s.min) s.min = value;
  if (value > s.max) s.max = value;
  s.bins[binIndex(s.edges, value)]++;
  s.sketch.add(z);
}

export function sameEdges(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((e, i) => e === b[i]);
}

/** Throws unless both were counted over identical edges (merging or comparing them otherwise is meaningless). */
export function assertSameEdges(a: readonly number[], b: readonly number[], what: string): void {
  if (!sameEdges(a, b)) {
    throw protocolError('PROTO_ERR_INVALID_MESSAGE', `${what}: bins were counted over different edges (${a.length} vs ${b.length} edges); agents must count over the edges of the bundle's reference profile`, { reason: 'edges-mismatch' });
  }
}

/** Add `src` into `dst` (mutates dst): the cheap path for a hub folding many reports. */
export function mergeInto(dst: FeatureSummary, src: FeatureSummary): FeatureSummary {
  assertSameEdges(dst.edges, src.edges, 'mergeSummaries');
  dst.sketch.merge(src.sketch);
  dst.count += src.count;
  dst.sum += src.sum;
  dst.sumSq += src.sumSq;
  dst.min = Math.min(dst.min, src.min);
  dst.max = Math.max(dst.max, src.max);
  dst.nulls += src.nulls;
  dst.invalid += src.invalid;
  for (let i = 0; i < dst.bins.length; i++) dst.bins[i] += src.bins[i];
  return dst;
}

/** A new summary of both inputs' values; the inputs are left alone. */
export function mergeSummaries(a: FeatureSummary, b: FeatureSummary): FeatureSummary {
  assertSameEdges(a.edges, b.edges, 'mergeSummaries');
  return mergeInto({ ...a, bins: [...a.bins], sketch: a.sketch.clone() }, b);
}

/**
 * Mean and population standard deviation in the feature's own units: the
 * summary's moments are of standardised values (more digits than raw moments
 * of an offset feature, whose sumSq/n − mean² cancels), mapped back by the frame.
 */
export function rawMoments(s: Pick<FeatureSummary, 'count' | 'sum' | 'sumSq'>, frame: Frame | undefined): { mean: number; std: number } {
  const m = summaryMoments(s);
  return frame ? { mean: frame.centre + frame.scale * m.mean, std: frame.scale * m.std } : m;
}

/**
 * Mean and population standard deviation from the moments (std clamped at 0
 * against rounding); NaN when empty. sumSq/n − mean² loses digits when the mean
 * dwarfs the spread (a timestamp ± 1), which is why alarms never rest on it.
 */
export function summaryMoments(s: Pick<FeatureSummary, 'count' | 'sum' | 'sumSq'>): { mean: number; std: number } {
  if (s.count === 0) return { mean: NaN, std: NaN };
  const mean = s.sum / s.count;
  return { mean, std: Math.sqrt(Math.max(s.sumSq / s.count - mean * mean, 0)) };
}

/**
 * A summary on the wire. The sketch travels without its count/sum/min/max (they
 * equal the summary's, since only finite values are sketched), and the edges do
 * not travel at all: the telemetry message names the bundle, whose reference
 * profile holds them.
 */
export interface FeatureSummaryWire {
  count: number;
  sum: number;
  sumSq: number;
  min: number | null;
  max: number | null;
  nulls: number;
  invalid: number;
  bins: number[];
  sketch: Omit<DDSketchWire, 'count' | 'sum' | 'min' | 'max'>;
}

export function toWire(s: FeatureSummary): FeatureSummaryWire {
  const { count: _c, sum: _s, min: _l, max: _h, ...sketch } = s.sketch.toJSON();
  return {
    count: s.count, sum: s.sum, sumSq: s.sumSq,
    min: s.count ? s.min : null, max: s.count ? s.max : null,
    nulls: s.nulls, invalid: s.invalid, bins: [...s.bins], sketch,
  };
}

const count = () => int({ min: 0 });

/** The sketch body as it sits in a summary: an object here, checked in full once the summary's figures are put back. */
const sketchBody: Schema<Record<string, unknown>> = {
  json: { type: 'object' },
  check(v, path, issues) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) { issues.push({ path, problem: 'expected an object', kind: 'invalid' }); return undefined; }
    for (const k of ['count', 'sum', 'min', 'max']) {
      if (Object.hasOwn(v, k)) { issues.push({ path: `${path}.${k}`, problem: 'is not a known key (the summary carries it)', kind: 'unknown' }); return undefined; }
    }
    return v as Record<string, unknown>;
  },
};

const summaryShape = obj({
  count: count(), sum: num(), sumSq: num({ min: 0 }), min: nullable(num()), max: nullable(num()),
  nulls: count(), invalid: count(),
  bins: arr(count(), { min: 1, max: MAX_EDGES + 1 }),
  sketch: sketchBody,
});

/** Wire schema of one summary (shape and internal consistency), usable inside a telemetry message schema. */
export const featureSummaryWireSchema: Schema<FeatureSummaryWire> = {
  json: summaryShape.json,
  check(value, path, issues) {
    const before = issues.length;
    const w = summaryShape.check(value, path, issues);
    if (!w || issues.length > before) return undefined;
    const at = (k: string) => (path ? `${path}.${k}` : k);
    const binTotal = w.bins.reduce((t, c) => t + c, 0);
    if (binTotal !== w.count) issues.push({ path: at('bins'), problem: `hold ${binTotal} values but count is ${w.count}`, kind: 'invalid' });
    if ((w.count > 0) !== (w.min !== null) || (w.count > 0) !== (w.max !== null)) issues.push({ path: at('min'), problem: 'min and max must be numbers when count > 0 and null when it is 0', kind: 'invalid' });
    else if (w.min !== null && w.max !== null && w.min > w.max) issues.push({ path: at('min'), problem: `min ${w.min} is above max ${w.max}`, kind: 'invalid' });
    if (issues.length > before) return undefined;
    const sketch = ddSketchWireSchema.check({ ...w.sketch, count: w.count, sum: w.sum, min: w.min, max: w.max }, at('sketch'), issues);
    if (!sketch || issues.length > before) return undefined;
    const { count: _c, sum: _s, min: _l, max: _h, ...body } = sketch;
    return { ...w, sketch: body };
  },
};

/** Validate a wire summary against the edges it must have been counted over; throws PROTO_ERR_INVALID_MESSAGE. */
export function fromWire(value: unknown, edges: readonly number[], frame?: Frame): FeatureSummary {
  checkEdges(edges, 'fromWire');
  const w = parse(featureSummaryWireSchema, value, { what: 'feature summary' });
  if (w.bins.length !== edges.length + 1) {
    throw protocolError('PROTO_ERR_INVALID_MESSAGE', `Invalid feature summary: it has ${w.bins.length} bins but the reference profile's ${edges.length} edges make ${edges.length + 1}; count over the bundle's reference edges`, { reason: 'edges-mismatch' });
  }
  // The sketch holds standardised values, so its exact min/max are the summary's, standardised.
  const z = (x: number | null) => (x === null ? null : standardise(frame, x));
  return {
    edges: Object.freeze([...edges]),
    ...(frame ? { frame } : {}),
    count: w.count, sum: w.sum, sumSq: w.sumSq,
    min: w.min ?? Infinity, max: w.max ?? -Infinity,
    nulls: w.nulls, invalid: w.invalid, bins: [...w.bins],
    sketch: DDSketch.fromJSON({ ...w.sketch, count: w.count, sum: w.sum, min: z(w.min), max: z(w.max) }),
  };
}


// ---------------------------------------------------------------- reference profile

/**
 * What the release team records about one numeric feature of the training (or
 * validation) data; it goes into the bundle manifest's `reference`. `edges`
 * are the interior quantiles at i/bins (i = 1 … bins−1), deduplicated, so each
 * bin holds about 1/bins of the reference (fewer bins when values repeat).
 */
export interface ReferenceProfile {
  edges: number[];
  /** edges.length + 1 counts over the bin convention above. */
  counts: number[];
  count: number;
  mean: number;
  /** Population standard deviation. */
  std: number;
  min: number;
  max: number;
  /**
   * Values left out: missing (null, NaN) or not a finite number. Their rate,
   * invalid / (count + invalid), is the reference's missing rate that a dead
   * sensor's telemetry (nulls + invalid) is tested against.
   */
  invalid: number;
  /**
   * The frame (see Frame): median and spread (IQR/1.349, else the std, else 1).
   * Present in profiles built since frames exist; then the sketch below and
   * every telemetry summary of this feature are in standardised units. Absent
   * in older bundles: values are sketched as they are (and an offset feature's
   * sketch figures are as coarse as they were then); rebuild the bundle.
   */
  centre?: number;
  scale?: number;
  /** Optional sketch of the reference, for sketch-based KS and Wasserstein. */
  sketch?: DDSketchWire;
}

export interface ReferenceProfileOptions {
  /**
   * Also store a DDSketch of the reference (default true). Bins suffice for PSI,
   * JS and KS at the edges; the sketch makes Wasserstein and KS between edges
   * accurate (a few KB in the manifest).
   */
  sketch?: boolean;
  /** The sketch's α; default SUMMARY_ALPHA, the telemetry sketches' α, so both have the same buckets. */
  alpha?: number;
  /** Fix a frame (centre, scale) for standardised sketches (default true; false builds a profile as before frames). */
  frame?: boolean;
}

export function referenceProfile(values: readonly unknown[], bins = 10, opts: ReferenceProfileOptions = {}): ReferenceProfile {
  if (!Number.isInteger(bins) || bins < 2 || bins > MAX_EDGES + 1) throw protocolError('PROTO_ERR_INVALID_OPTION', `referenceProfile bins must be an integer in [2, ${MAX_EDGES + 1}], got ${String(bins)}`);
  if (!Array.isArray(values)) throw protocolError('PROTO_ERR_INVALID_OPTION', 'referenceProfile needs an array of numbers');
  const xs: number[] = [];
  for (const v of values) if (typeof v === 'number' && Number.isFinite(v)) xs.push(v);
  if (xs.length === 0) throw protocolError('PROTO_ERR_INVALID_OPTION', `referenceProfile needs at least one finite value, got ${values.length} values and none finite`);
  xs.sort((a, b) => a - b);
  const n = xs.length;
  const edges: number[] = [];
  for (let i = 1; i < bins; i++) {
    // The value of 0-based rank floor(i·n/bins): without ties exactly that many values lie below it.
    const e = xs[Math.floor((i * n) / bins)];
    if (edges.length === 0 || e > edges[edges.length - 1]) edges.push(e);
  }
  const counts = new Array<number>(edges.length + 1).fill(0);
  let sum = 0;
  for (const x of xs) { counts[binIndex(edges, x)]++; sum += x; }
  const mean = sum / n;
  let ss = 0;
  for (const x of xs) ss += (x - mean) * (x - mean);
  const std = Math.sqrt(ss / n);
  const profile: ReferenceProfile = { edges, counts, count: n, mean, std, min: xs[0], max: xs[n - 1], invalid: values.length - n };
  let frame: Frame | undefined;
  if (opts.frame ?? true) {
    // Robust to outliers in the reference (IQR), falling back for features that are mostly one value.
    const at = (q: number) => { const h = (n - 1) * q; const i = Math.floor(h); return xs[i] + (h - i) * ((xs[Math.min(i + 1, n - 1)] ?? xs[i]) - xs[i]); };
    const iqr = (at(0.75) - at(0.25)) / 1.349;
    const scale = iqr > 0 && Number.isFinite(iqr) ? iqr : std > 0 && Number.isFinite(std) ? std : 1;
    frame = { centre: at(0.5), scale };
    profile.centre = frame.centre;
    profile.scale = frame.scale;
  }
  if (opts.sketch ?? true) {
    const sk = new DDSketch({ alpha: opts.alpha ?? SUMMARY_ALPHA });
    for (const x of xs) sk.add(standardise(frame, x));
    profile.sketch = sk.toJSON();
  }
  return profile;
}

const profileShape = obj({
  edges: arr(num(), { max: MAX_EDGES }),
  counts: arr(count(), { min: 1, max: MAX_EDGES + 1 }),
  count: int({ min: 1 }),
  mean: num(), std: num({ min: 0 }), min: num(), max: num(),
  invalid: count(),
  centre: optional(num()),
  scale: optional(num({ min: Number.MIN_VALUE })),
  sketch: optional(ddSketchWireSchema),
});

/** Validate a reference profile read from a manifest; throws PROTO_ERR_INVALID_MESSAGE naming what is wrong. */
export function parseReferenceProfile(value: unknown): ReferenceProfile {
  const p = parse(profileShape, value, { what: 'reference profile' }) as ReferenceProfile;
  checkEdges(p.edges, 'reference profile');
  const bad = (why: string) => protocolError('PROTO_ERR_INVALID_MESSAGE', `Invalid reference profile: ${why}; rebuild it with referenceProfile()`);
  if (p.counts.length !== p.edges.length + 1) throw bad(`${p.counts.length} counts for ${p.edges.length} edges (need edges + 1)`);
  if (p.counts.reduce((t, c) => t + c, 0) !== p.count) throw bad('counts do not add up to count');
  if (p.min > p.max) throw bad(`min ${p.min} is above max ${p.max}`);
  if ((p.centre === undefined) !== (p.scale === undefined)) throw bad('centre and scale come together (a frame) or not at all');
  return p;
}

// ---------------------------------------------------------------- categorical features

/** Longest category string kept; longer ones are counted as invalid (a device must not send free text). */
export const MAX_CATEGORY_LENGTH = 128;
/** A UTF-16 surrogate without its pair. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
export const DEFAULT_MAX_CATEGORIES = 64;
export const HARD_MAX_CATEGORIES = 1024;

/**
 * Counts per category. The first `maxCategories` distinct categories get their
 * own counter, later ones count in `other`. Merging adds counters; if the union
 * of categories exceeds the limit, the smallest counters move into `other`, so a
 * merge is exact as long as the fleet sees at most `maxCategories` categories
 * (set it above the number of categories the model knows).
 */
export interface CategoricalSummary {
  readonly maxCategories: number;
  /**
   * The reference's categories (agents of a bundle with a reference): each is
   * counted by name whichever order they arrive in, and only the slots left
   * over (at least NEW_CATEGORY_SLOTS up to the hard limit) go to categories
   * the reference never saw, so the hub can name them; the rest is `other`.
   * Without it, the first maxCategories categories seen get a slot: with 100
   * reference categories and 64 slots, a third of identical data landed in
   * `other` and every window alarmed.
   */
  readonly known?: ReadonlySet<string>;
  /** Slots taken by categories not in `known`. */
  fresh?: number;
  counts: Record<string, number>;
  other: number;
  nulls: number;
  invalid: number;
}

/** Named slots for categories the reference never saw (so a new category is flagged by name), room permitting. */
export const NEW_CATEGORY_SLOTS = 64;

export function createCategorical(maxCategories = DEFAULT_MAX_CATEGORIES): CategoricalSummary {
  if (!Number.isInteger(maxCategories) || maxCategories < 1 || maxCategories > HARD_MAX_CATEGORIES) throw protocolError('PROTO_ERR_INVALID_OPTION', `maxCategories must be an integer in [1, ${HARD_MAX_CATEGORIES}], got ${String(maxCategories)}`);
  return { maxCategories, counts: Object.create(null) as Record<string, number>, other: 0, nulls: 0, invalid: 0 };
}

/** A summary that counts against the reference's categories (see `known`); at most HARD_MAX_CATEGORIES names in all. */
export function createCategoricalFor(categories: readonly string[]): CategoricalSummary {
  const known = new Set(categories.slice(0, HARD_MAX_CATEGORIES));
  const max = Math.min(HARD_MAX_CATEGORIES, Math.max(known.size + NEW_CATEGORY_SLOTS, DEFAULT_MAX_CATEGORIES));
  return { ...createCategorical(max), known, fresh: 0 };
}

/** Count one category value (strings, integers such as an int64 `category` input, bigints, booleans as "true"/"false"); never throws. */
export function observeCategory(s: CategoricalSummary, value: unknown, weight = 1): void {
  // NaN is how a float input carries a missing value (allowNaN), as in numeric summaries: missing, not invalid.
  if (value === null || value === undefined || (typeof value === 'number' && value !== value)) { s.nulls += weight; return; }
  let key: string;
  // A lone surrogate cannot travel as UTF-8 (two of them would arrive as the same U+FFFD): invalid.
  if (typeof value === 'string') { if (LONE_SURROGATE.test(value)) { s.invalid += weight; return; } key = value; }
  else if (typeof value === 'bigint' || typeof value === 'boolean' || (typeof value === 'number' && Number.isInteger(value))) key = String(value);
  else { s.invalid += weight; return; }
  if (key.length > MAX_CATEGORY_LENGTH) { s.invalid += weight; return; }
  if (key in s.counts) s.counts[key] += weight;
  else if (s.known) {
    if (s.known.has(key)) s.counts[key] = weight;
    else if (s.known.size + (s.fresh ?? 0) < s.maxCategories) { s.counts[key] = weight; s.fresh = (s.fresh ?? 0) + 1; } else s.other += weight;
  } else if (Object.keys(s.counts).length < s.maxCategories) s.counts[key] = weight;
  else s.other += weight;
}

export function mergeCategorical(a: CategoricalSummary, b: CategoricalSummary): CategoricalSummary {
  const out = createCategorical(Math.min(a.maxCategories, b.maxCategories));
  out.other = a.other + b.other;
  out.nulls = a.nulls + b.nulls;
  out.invalid = a.invalid + b.invalid;
  const all: Record<string, number> = Object.create(null);
  for (const src of [a.counts, b.counts]) for (const [k, c] of Object.entries(src)) all[k] = (all[k] ?? 0) + c;
  // Largest counters keep their own slot; ties by name, so the result does not depend on argument order.
  const ranked = Object.entries(all).sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  ranked.forEach(([k, c], i) => { if (i < out.maxCategories) out.counts[k] = c; else out.other += c; });
  return out;
}

export interface CategoricalWire { counts: Record<string, number>; other: number; nulls: number; invalid: number }

export function categoricalToWire(s: CategoricalSummary): CategoricalWire {
  return { counts: { ...s.counts }, other: s.other, nulls: s.nulls, invalid: s.invalid };
}

export const categoricalWireSchema = obj({
  counts: record(count(), { maxKeys: HARD_MAX_CATEGORIES }),
  other: count(), nulls: count(), invalid: count(),
});

export function categoricalFromWire(value: unknown, maxCategories = DEFAULT_MAX_CATEGORIES): CategoricalSummary {
  const w = parse(categoricalWireSchema, value, { what: 'categorical summary' });
  const keys = Object.keys(w.counts);
  if (keys.length > maxCategories) throw protocolError('PROTO_ERR_INVALID_MESSAGE', `Invalid categorical summary: ${keys.length} categories, at most ${maxCategories} allowed; count the rest in "other"`);
  const long = keys.find((k) => k.length > MAX_CATEGORY_LENGTH);
  if (long !== undefined) throw protocolError('PROTO_ERR_INVALID_MESSAGE', `Invalid categorical summary: a category name is ${long.length} characters, at most ${MAX_CATEGORY_LENGTH} allowed`);
  const s = createCategorical(maxCategories);
  for (const k of keys) s.counts[k] = w.counts[k];
  s.other = w.other; s.nulls = w.nulls; s.invalid = w.invalid;
  return s;
}
