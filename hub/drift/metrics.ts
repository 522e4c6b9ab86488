/**
 * Drift figures for one feature: a bundle's reference profile against the
 * fleet's merged telemetry summary (DESIGN.md "Telemetry and drift"). Pure
 * functions, no I/O; rollout gates and the dashboard call them.
 *
 * Why alarms use effect sizes (PSI, normalised Wasserstein) and not p-values:
 * a test's p-value measures how sure we are that the distributions differ at
 * all, and that certainty grows with n. A fleet merges millions of values, so a
 * shift of 0.01σ (harmless for the model) gets p ≈ 0 and every feature alarms
 * once n is large. PSI and W1/σ measure HOW MUCH the distribution moved and
 * converge to a fixed value as n grows, so a threshold on them means the same
 * thing at 500 values and at 50 million. KS and the chi-squared p-value are
 * still reported, for people, but never raise an alarm. Effect sizes have the
 * opposite weakness, noise at small n (PSI's expected value with no drift is
 * about (bins−1)·(1/n + 1/N)), hence `minN`: below it the verdict is
 * 'insufficient-data', never an alarm. Measured on N(0,1) with no drift
 * (test/unit/stats-drift-metrics.test.ts): at n = 500 the normalised W1 still
 * crosses 0.1 in 2–6 % of windows (PSI stays below 0.06); at n = 2,000 it
 * stays below 0.09. A gate over many features should raise minN or ask for
 * the alarm in consecutive windows.
 */
import { DDSketch } from '@fleetcast/protocol/ddsketch.js';
import { protocolError } from '@fleetcast/protocol/errors.js';
import { assertSameEdges, frameOf, rawMoments, standardise, type CategoricalSummary, type FeatureSummary, type ReferenceProfile } from '@fleetcast/protocol/feature-summary.js';
import { missingRates, type MissingFigures } from './missing-rate.js';
import { stepDistances, stepPoints } from './step-distance.js';

/**
 * Proportions below this count as this in PSI, whose ln(p/q) is infinite at 0.
 * 1e-4 (0.01 %) is small against any bin a 10-bin profile makes, so a bin that
 * empties completely still scores high ((0.1 − 1e-4)·ln(0.1/1e-4) ≈ 0.69 for
 * a decile) without one stray value in an empty bin dominating.
 */
export const PSI_EPSILON = 1e-4;
/** Points of the u grid for ∫|Q_ref(u) − Q_obs(u)| du (midpoint rule); error ≪ 1 % of σ for smooth quantile functions. */
export const WASSERSTEIN_GRID = 1000;

/** `missing`: the least change of the missing-value rate (absolute, 0.05 = 5 points) that counts as drift. */
export const DEFAULT_THRESHOLDS = Object.freeze({ psi: 0.2, wasserstein: 0.1, minN: 500, missing: 0.05 });
export type Thresholds = { psi: number; wasserstein: number; minN: number; missing?: number };

function bad(detail: string): never {
  throw protocolError('PROTO_ERR_INVALID_MESSAGE', detail);
}

function proportions(counts: readonly number[], what: string): number[] {
  let total = 0;
  for (const c of counts) {
    if (!(typeof c === 'number' && c >= 0 && Number.isFinite(c))) bad(`${what}: counts must be non-negative finite numbers, got ${String(c)}`);
    total += c;
  }
  if (total <= 0) bad(`${what}: counts are all zero, there is no distribution to compare`);
  return counts.map((c) => c / total);
}

function pair(ref: readonly number[], obs: readonly number[], what: string): [number[], number[]] {
  if (ref.length !== obs.length || ref.length === 0) bad(`${what}: reference has ${ref.length} bins and observed ${obs.length}; compare counts over the same bins`);
  return [proportions(ref, `${what} reference`), proportions(obs, `${what} observed`)];
}

/** Population stability index Σ (p_i − q_i)·ln(p_i / q_i), proportions clamped at `eps` (see PSI_EPSILON). */
export function psi(ref: readonly number[], obs: readonly number[], eps = PSI_EPSILON): number {
  const [p, q] = pair(ref, obs, 'PSI');
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    const a = Math.max(p[i], eps);
    const b = Math.max(q[i], eps);
    s += (a - b) * Math.log(a / b);
  }
  return s;
}

/** Jensen–Shannon distance: sqrt of the JS divergence in bits, so in [0, 1]; empty bins need no epsilon (0·log 0 = 0). */
export function jsDistance(ref: readonly number[], obs: readonly number[]): number {
  const [p, q] = pair(ref, obs, 'Jensen–Shannon');
  let d = 0;
  for (let i = 0; i < p.length; i++) {
    const m = (p[i] + q[i]) / 2;
    if (p[i] > 0) d += 0.5 * p[i] * Math.log2(p[i] / m);
    if (q[i] > 0) d += 0.5 * q[i] * Math.log2(q[i] / m);
  }
  return Math.sqrt(Math.min(Math.max(d, 0), 1));
}

/** KS D at the bin edges: the largest gap between the fractions below each edge (a lower bound of the true D). */
export function ksFromBins(ref: readonly number[], obs: readonly number[]): number {
  const [p, q] = pair(ref, obs, 'KS');
  let fp = 0;
  let fq = 0;
  let d = 0;
  // Bin i holds the values below edge i that bins < i do not, so the running sum up to i is F(e_i⁻).
  for (let i = 0; i < p.length - 1; i++) {
    fp += p[i];
    fq += q[i];
    d = Math.max(d, Math.abs(fp - fq));
  }
  return d;
}

function grid(m: number): number[] {
  return Array.from({ length: m }, (_, j) => (j + 0.5) / m);
}

/**
 * KS D between two sketches (same units): the largest gap between their step
 * CDFs (step-distance.ts), exact 0 below min and 1 from max on.
 */
export function ksFromSketches(ref: DDSketch, obs: DDSketch): number {
  if (ref.count === 0 || obs.count === 0) bad('KS: a sketch is empty');
  return stepDistances(stepPoints(ref, ref.min, ref.max), stepPoints(obs, obs.min, obs.max)).ks;
}

/**
 * Distance outward from a tail bin's inner edge at which a fraction g of the
 * tail's mass lies: an exponential density of rate λ truncated at length L,
 * g = (1 − e^(−λt)) / (1 − e^(−λL)). Uniform when λL is too small to matter.
 */
function tailDistance(g: number, lambda: number, L: number): number {
  const k = lambda * L;
  if (!(k > 1e-9) || !Number.isFinite(k)) return g * L;
  return Math.min(-Math.log1p(-g * -Math.expm1(-k)) / lambda, L);
}

/**
 * The rate λ of an exponential truncated at length L whose density at its start,
 * per unit of its own mass, is r: λ / (1 − e^(−λL)) = r. The left side grows from
 * 1/L (λ → 0, uniform) and is at least λ, so bisect on [0, r]; r ≤ 1/L (a tail
 * denser far out than at the edge) gives 0, i.e. uniform.
 */
function tailRate(r: number, L: number): number {
  if (!(L > 0) || !(r * L > 1) || !Number.isFinite(r)) return 0;
  let lo = 0;
  let hi = r;
  for (let it = 0; it < 100; it++) {
    const mid = (lo + hi) / 2;
    if (mid / -Math.expm1(-mid * L) < r) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * The quantile function of binned data. Inside an interior bin values are
 * taken as uniform. The two tail bins reach to the data's min and max, but
 * spreading their mass uniformly out to an extreme value badly overstates how
 * far a tail reaches (for a decile tail of a normal, by about 2.5×), so a tail
 * gets an exponential density, truncated at min/max, whose density at the edge
 * equals the neighbouring bin's (continuity). A bell-shaped tail is close to
 * that, and a flat tail solves to rate 0, i.e. uniform, so uniform data stay
 * exact. Every range is clamped to [min, max].
 */
export function binQuantiles(edges: readonly number[], counts: readonly number[], min: number, max: number, us: readonly number[]): number[] {
  if (counts.length !== edges.length + 1) bad(`quantiles from bins: ${counts.length} counts for ${edges.length} edges`);
  const total = counts.reduce((t, c) => t + c, 0);
  if (!(total > 0) || !(min <= max)) bad('quantiles from bins: no values, or min above max');
  const k = edges.length;
  const clamp = (x: number) => Math.min(Math.max(x, min), max);
  const rate = (tail: number, neighbour: number, width: number, L: number) => (counts[tail] > 0 && width > 0 ? tailRate(counts[neighbour] / width / counts[tail], L) : 0);
  const leftRate = k >= 2 ? rate(0, 1, edges[1] - edges[0], clamp(edges[0]) - min) : 0;
  const rightRate = k >= 2 ? rate(k, k - 1, edges[k - 1] - edges[k - 2], max - clamp(edges[k - 1])) : 0;
  const out: number[] = [];
  let i = 0;
  let before = 0;
  for (const u of us) {
    const rank = u * total;
    while (i < counts.length - 1 && before + counts[i] <= rank) { before += counts[i]; i++; }
    const frac = counts[i] > 0 ? Math.min(Math.max((rank - before) / counts[i], 0), 1) : 0;
    if (k > 0 && i === 0) {
      const e = clamp(edges[0]);
      out.push(e - tailDistance(1 - frac, leftRate, e - min));
    } else if (k > 0 && i === k) {
      const e = clamp(edges[k - 1]);
      out.push(e + tailDistance(frac, rightRate, max - e));
    } else {
      const lo = k === 0 ? min : clamp(edges[i - 1]);
      const hi = Math.max(k === 0 ? max : clamp(edges[i]), lo);
      out.push(lo + (hi - lo) * frac);
    }
  }
  return out;
}

/** W1 = ∫₀¹ |Q_a(u) − Q_b(u)| du by the midpoint rule over quantile values at `grid(m)`. */
export function wassersteinFromQuantiles(qa: readonly number[], qb: readonly number[]): number {
  if (qa.length !== qb.length || qa.length === 0) bad('Wasserstein: quantile lists differ in length');
  let s = 0;
  for (let j = 0; j < qa.length; j++) s += Math.abs(qa[j] - qb[j]);
  return s / qa.length;
}

/** W1 between two sketches (same units): ∫|F_a − F_b| over their step CDFs (step-distance.ts, no quantile rule). */
export function wassersteinFromSketches(a: DDSketch, b: DDSketch): number {
  if (a.count === 0 || b.count === 0) bad('Wasserstein: a sketch is empty');
  return stepDistances(stepPoints(a, a.min, a.max), stepPoints(b, b.min, b.max)).w1;
}

// A fleet report compares the same (immutable) reference profile every evaluation: parse its sketch once.
const refSketches = new WeakMap<ReferenceProfile, DDSketch>();
function referenceSketch(ref: ReferenceProfile): DDSketch {
  let s = refSketches.get(ref);
  if (!s) refSketches.set(ref, (s = DDSketch.fromJSON(ref.sketch)));
  return s;
}

export interface NumericFigures {
  kind: 'numeric';
  /** Finite observed values the figures rest on. */
  n: number;
  referenceN: number;
  /** Figures are null when n is 0. */
  psi: number | null;
  js: number | null;
  ks: number | null;
  /** W1 in the feature's units, and divided by `scale` (the reference std, or 1 for a constant reference). */
  wasserstein: number | null;
  wassersteinNorm: number | null;
  scale: number;
  /** (observed mean − reference mean) / scale, and observed std / reference std (null if either is 0). */
  meanShift: number | null;
  stdRatio: number | null;
  nullRate: number;
  invalidRate: number;
  /** Where KS and Wasserstein come from: both sketches, or the bins alone. */
  method: 'sketch' | 'bins';
  /** Missing-value rates (null, NaN or not a finite number) and the two-proportion test between them (missing-rate.ts). */
  missing: MissingFigures;
}

/**
 * Every figure for one numeric feature. Wasserstein uses the sketches when the
 * reference has one and the bins otherwise: both sides always use the same
 * method, so an estimator's bias does not itself look like drift. With a frame
 * (feature-summary.ts Frame) both sketches are in standardised units, where a
 * sketch's accuracy does not depend on the feature's location or scale.
 */
export function compareNumeric(ref: ReferenceProfile, obs: FeatureSummary): NumericFigures {
  assertSameEdges(ref.edges, obs.edges, 'compare with reference profile');
  const scale = ref.std > 0 ? ref.std : 1;
  const frame = frameOf(ref);
  const seen = obs.count + obs.nulls + obs.invalid;
  const missing = missingRates(ref.invalid, ref.count + ref.invalid, obs.nulls + obs.invalid, seen);
  const base = { kind: 'numeric' as const, n: obs.count, referenceN: ref.count, scale, nullRate: seen ? obs.nulls / seen : 0, invalidRate: seen ? obs.invalid / seen : 0, missing };
  const refSketch = ref.sketch ? referenceSketch(ref) : undefined;
  const method = refSketch ? ('sketch' as const) : ('bins' as const);
  if (obs.count === 0) return { ...base, psi: null, js: null, ks: null, wasserstein: null, wassersteinNorm: null, meanShift: null, stdRatio: null, method };
  let ks = ksFromBins(ref.counts, obs.bins);
  let w: number;
  if (refSketch) {
    // The observed sketch's exact min/max are the summary's, in the sketch's units.
    const d = stepDistances(stepPoints(refSketch, refSketch.min, refSketch.max), stepPoints(obs.sketch, standardise(frame, obs.min), standardise(frame, obs.max)));
    ks = Math.max(ks, d.ks);
    w = d.w1 * (frame?.scale ?? 1);
  } else {
    const u = grid(WASSERSTEIN_GRID);
    w = wassersteinFromQuantiles(binQuantiles(ref.edges, ref.counts, ref.min, ref.max, u), binQuantiles(obs.edges, obs.bins, obs.min, obs.max, u));
  }
  const m = rawMoments(obs, frame);
  return {
    ...base,
    psi: psi(ref.counts, obs.bins),
    js: jsDistance(ref.counts, obs.bins),
    ks,
    wasserstein: w,
    wassersteinNorm: w / scale,
    meanShift: (m.mean - ref.mean) / scale,
    stdRatio: ref.std > 0 ? m.std / ref.std : null,
    method,
  };
}

export interface CategoricalFigures {
  kind: 'categorical';
  /** Observed values with a category (named or "other"). */
  n: number;
  referenceN: number;
  psi: number | null;
  js: number | null;
  chi2: number | null;
  dof: number | null;
  pValue: number | null;
  nullRate: number;
  /** Categories the fleet sent that the reference never saw. */
  newCategories: string[];
  missing: MissingFigures;
}

/** Expected observed count a pooled group of rare categories must reach (Cochran's rule, with margin). */
export const MIN_EXPECTED = 10;

/**
 * Figures for a categorical feature. The baseline's categories are compared
 * one by one; everything else (the baseline's "other" and every category it
 * never saw) is one "other" category on both sides, whose new names are listed.
 * Baseline categories too rare to expect MIN_EXPECTED observed values each are
 * pooled, in name order, until a group does: with 1,000 equally likely
 * categories and 1,000 values, single cells hold about one value each, the
 * χ² approximation fails and PSI's noise floor, about (cells − 1)/n, would sit
 * far above its threshold with no drift at all. Name order, not frequency
 * order: pooling the categories the baseline happened to count least selects
 * cells whose baseline counts are low by chance, and that bias alone made
 * 2 % of windows with identical data alarm.
 */
export function compareCategorical(ref: CategoricalSummary, obs: CategoricalSummary): CategoricalFigures {
  const keys = Object.keys(ref.counts).filter((k) => ref.counts[k] > 0).sort();
  const newCategories = Object.keys(obs.counts).filter((k) => !(k in ref.counts) && obs.counts[k] > 0).sort();
  let obsOther = obs.other;
  for (const k of newCategories) obsOther += obs.counts[k];
  let n = obsOther;
  for (const k of keys) n += obs.counts[k] ?? 0;
  let referenceN = ref.other;
  for (const k of keys) referenceN += ref.counts[k];
  const seen = n + obs.nulls + obs.invalid;
  const missing = missingRates(ref.nulls + ref.invalid, referenceN + ref.nulls + ref.invalid, obs.nulls + obs.invalid, seen);
  const base = { kind: 'categorical' as const, n, referenceN, nullRate: seen ? obs.nulls / seen : 0, newCategories, missing };
  if (n === 0 || referenceN === 0) return { ...base, psi: null, js: null, chi2: null, dof: null, pValue: null };
  const r: number[] = [];
  const o: number[] = [];
  let gr = 0;
  let go = 0;
  for (const k of keys) {
    gr += ref.counts[k];
    go += obs.counts[k] ?? 0;
    if ((gr / referenceN) * n >= MIN_EXPECTED) { r.push(gr); o.push(go); gr = 0; go = 0; }
  }
  if (gr > 0 || go > 0) {
    if (r.length) { r[r.length - 1] += gr; o[o.length - 1] += go; } else { r.push(gr); o.push(go); }
  }
  r.push(ref.other);
  o.push(obsOther);
  const t = chiSquaredHomogeneity(r, o);
  return { ...base, psi: psi(r, o), js: jsDistance(r, o), chi2: t.stat, dof: t.dof, pValue: t.pValue };
}

export interface Alarm { metric: 'psi' | 'wassersteinNorm' | 'missingRate'; value: number; threshold: number }
export interface Verdict<F extends NumericFigures | CategoricalFigures = NumericFigures | CategoricalFigures> {
  verdict: 'drift' | 'ok' | 'insufficient-data';
  /** The observed n the verdict rests on, and the minimum it needed. */
  n: number;
  referenceN: number;
  minN: number;
  alarms: Alarm[];
  thresholds: Thresholds;
  figures: F;
}

/**
 * Apply the thresholds: drift when PSI ≥ psi or normalised W1 ≥ wasserstein,
 * but only once both the observed and the reference sample reach `minN`.
 */
export function judge<F extends NumericFigures | CategoricalFigures>(figures: F, thresholds: Partial<Thresholds> = {}): Verdict<F> {
  const t: Thresholds = { ...DEFAULT_THRESHOLDS, ...thresholds };
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) throw protocolError('PROTO_ERR_INVALID_OPTION', `drift threshold ${k} must be a non-negative number, got ${String(v)}`);
  }
  const out = { n: figures.n, referenceN: figures.referenceN, minN: t.minN, thresholds: t, figures, alarms: [] as Alarm[] };
  // The missing rate rests on every value seen, finite or not: a dead sensor has n = 0 but plenty seen.
  const mf = figures.missing;
  const missing = t.missing ?? DEFAULT_THRESHOLDS.missing;
  const dm = Math.abs(mf.rate - mf.referenceRate);
  if (mf.seen >= t.minN && mf.referenceSeen >= t.minN && dm >= missing) out.alarms.push({ metric: 'missingRate', value: dm, threshold: missing });
  if (figures.n < t.minN || figures.referenceN < t.minN) return { ...out, verdict: out.alarms.length ? 'drift' : 'insufficient-data' };
  if (figures.psi !== null && figures.psi >= t.psi) out.alarms.push({ metric: 'psi', value: figures.psi, threshold: t.psi });
  if (figures.kind === 'numeric' && figures.wassersteinNorm !== null && figures.wassersteinNorm >= t.wasserstein) {
    out.alarms.push({ metric: 'wassersteinNorm', value: figures.wassersteinNorm, threshold: t.wasserstein });
  }
  return { ...out, verdict: out.alarms.length ? 'drift' : 'ok' };
}

// ---------------------------------------------------------------- chi-squared

/**
 * Pearson's chi-squared test of homogeneity for two rows of counts over the same
 * categories (a 2×k contingency table): expected count of a cell = row total ×
 * column total / N. Columns empty in both rows are dropped; dof = columns − 1.
 */
export function chiSquaredHomogeneity(a: readonly number[], b: readonly number[]): { stat: number; dof: number; pValue: number } {
  pair(a, b, 'chi-squared');
  const na = a.reduce((t, c) => t + c, 0);
  const nb = b.reduce((t, c) => t + c, 0);
  const n = na + nb;
  let stat = 0;
  let cols = 0;
  for (let i = 0; i < a.length; i++) {
    const col = a[i] + b[i];
    if (col === 0) continue;
    cols++;
    const ea = (na * col) / n;
    const eb = (nb * col) / n;
    stat += ((a[i] - ea) ** 2) / ea + ((b[i] - eb) ** 2) / eb;
  }
  const dof = Math.max(cols - 1, 0);
  return { stat, dof, pValue: dof === 0 ? 1 : chiSquaredPValue(stat, dof) };
}

/** P(X ≥ stat) for X ~ χ²(dof): the regularized upper incomplete gamma Q(dof/2, stat/2). */
export function chiSquaredPValue(stat: number, dof: number): number {
  if (!(dof > 0) || !(stat >= 0) || !Number.isFinite(stat) || !Number.isFinite(dof)) throw protocolError('PROTO_ERR_INVALID_OPTION', `chi-squared p-value needs stat ≥ 0 and dof > 0, got stat ${stat}, dof ${dof}`);
  return gammaQ(dof / 2, stat / 2);
}

/**
 * ln Γ(x) for x > 0: shift x up to ≥ 10 with Γ(x+1) = x·Γ(x), then Stirling's
 * series ln Γ(z) ≈ (z − ½)·ln z − z + ½·ln 2π + 1/(12z) − 1/(360z³) + 1/(1260z⁵) − 1/(1680z⁷) + 1/(1188z⁹),
 * whose next term, 691/(360360z¹¹), is below 2e-14 at z ≥ 10.
 */
export function lnGamma(x: number): number {
  if (!(x > 0)) throw protocolError('PROTO_ERR_INVALID_OPTION', `lnGamma needs x > 0, got ${x}`);
  let shift = 0;
  let z = x;
  while (z < 10) { shift += Math.log(z); z += 1; }
  const z2 = z * z;
  const series = 1 / (12 * z) - 1 / (360 * z * z2) + 1 / (1260 * z * z2 * z2) - 1 / (1680 * z * z2 * z2 * z2) + 1 / (1188 * z * z2 * z2 * z2 * z2);
  return (z - 0.5) * Math.log(z) - z + 0.5 * Math.log(2 * Math.PI) + series - shift;
}

/**
 * Regularized upper incomplete gamma Q(a, x) = Γ(a, x)/Γ(a). For x < a + 1 the
 * power series of the lower function P = γ(a,x)/Γ(a) = x^a e^(−x)/Γ(a+1) · Σ x^k / ((a+1)…(a+k))
 * converges fast and Q = 1 − P; otherwise Q's continued fraction
 * Γ(a,x) = e^(−x) x^a · 1/(x+1−a − 1·(1−a)/(x+3−a − 2·(2−a)/(x+5−a − …))) does,
 * evaluated with the modified Lentz method.
 */
export function gammaQ(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) throw protocolError('PROTO_ERR_INVALID_OPTION', `gammaQ needs a > 0 and x ≥ 0, got a ${a}, x ${x}`);
  if (x === 0) return 1;
  const front = Math.exp(a * Math.log(x) - x - lnGamma(a));
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let k = 1; k < 10_000; k++) {
      term *= x / (a + k);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
    }
    return Math.min(Math.max(1 - front * sum, 0), 1);
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let f = d;
  for (let k = 1; k < 10_000; k++) {
    const an = -k * (k - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.min(Math.max(front * f, 0), 1);
}
