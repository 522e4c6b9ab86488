/**
 * Figures the reference-profile comparisons in metrics.ts do not cover:
 * the two-sample KS p-value, and comparing two merged fleet summaries (a ring
 * on the new version against the fleet still on the previous one), where the
 * bins come from the baseline's own sketch deciles (the two versions' reference
 * edges may differ, their sketches share one bucket mapping).
 */
import type { DDSketch } from '../../protocol/ddsketch.js';
import { summaryMoments, type FeatureSummary } from '../../protocol/feature-summary.js';
import { jsDistance, ksFromSketches, psi, wassersteinFromSketches, type NumericFigures } from './metrics.js';

/**
 * P(D ≥ d) for the two-sample Kolmogorov–Smirnov statistic under H0, by the
 * asymptotic Kolmogorov distribution Q(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²}
 * with λ = (√nₑ + 0.12 + 0.11/√nₑ)·d, nₑ = n·m/(n+m) (Stephens 1970; Numerical
 * Recipes §14.3). Conservative here: sketch-based D is measured on bucketed
 * data, a lower bound of the exact D.
 */
export function ksPValue(d: number, n: number, m: number): number {
  if (!(n > 0) || !(m > 0) || !(d > 0)) return 1;
  const ne = (n * m) / (n + m);
  const s = Math.sqrt(ne);
  const lambda = (s + 0.12 + 0.11 / s) * d;
  if (lambda < 0.2) return 1;
  let sum = 0;
  for (let k = 1; k <= 100; k++) {
    const term = Math.exp(-2 * k * k * lambda * lambda);
    sum += (k % 2 ? 1 : -1) * term;
    if (term < 1e-16) break;
  }
  return Math.min(Math.max(2 * sum, 0), 1);
}

/** Deciles of a sketch as bin edges (deduplicated), and the counts of a sketch over them. */
function sketchEdges(s: DDSketch, bins = 10): number[] {
  const qs = s.quantiles(Array.from({ length: bins - 1 }, (_, i) => (i + 1) / bins));
  return qs.filter((e, i) => i === 0 || e > qs[i - 1]);
}
function sketchCounts(s: DDSketch, edges: readonly number[]): number[] {
  const out: number[] = [];
  let prev = 0;
  // cdf(e) includes e's bucket; edges are bucket representatives of the baseline, the same buckets on both sides.
  for (const e of edges) { const c = s.cdf(e) * s.count; out.push(Math.max(c - prev, 0)); prev = c; }
  out.push(Math.max(s.count - prev, 0));
  return out;
}

/** Every figure of `obs` against a baseline fleet summary (both merged telemetry). */
export function compareSummaries(base: FeatureSummary, obs: FeatureSummary): NumericFigures {
  const bm = summaryMoments(base);
  const scale = bm.std > 0 ? bm.std : 1;
  const seen = obs.count + obs.nulls + obs.invalid;
  const head = { kind: 'numeric' as const, n: obs.count, referenceN: base.count, scale, nullRate: seen ? obs.nulls / seen : 0, invalidRate: seen ? obs.invalid / seen : 0, method: 'sketch' as const };
  if (obs.count === 0 || base.count === 0) return { ...head, psi: null, js: null, ks: null, wasserstein: null, wassersteinNorm: null, meanShift: null, stdRatio: null };
  const edges = sketchEdges(base.sketch);
  const b = sketchCounts(base.sketch, edges);
  const o = sketchCounts(obs.sketch, edges);
  const w = wassersteinFromSketches(base.sketch, obs.sketch);
  const om = summaryMoments(obs);
  return {
    ...head,
    psi: psi(b, o), js: jsDistance(b, o), ks: ksFromSketches(base.sketch, obs.sketch),
    wasserstein: w, wassersteinNorm: w / scale,
    meanShift: (om.mean - bm.mean) / scale, stdRatio: bm.std > 0 ? om.std / bm.std : null,
  };
}
