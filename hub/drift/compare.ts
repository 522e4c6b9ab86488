/**
 * Figures the reference-profile comparisons in metrics.ts do not cover:
 * the two-sample KS p-value, and comparing two merged fleet summaries (a ring
 * on the new version against the fleet still on the previous one), where the
 * bins come from the baseline's own sketch deciles (the two versions' reference
 * edges may differ, their sketches share one bucket mapping).
 */
import { rawMoments, standardise, type FeatureSummary, type Frame } from '@fleetcast/protocol/feature-summary.js';
import { jsDistance, psi, type NumericFigures } from './metrics.js';
import { missingRates } from './missing-rate.js';
import { stepCounts, stepDistances, stepPoints, stepQuantiles } from './step-distance.js';

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

/**
 * Every figure of `obs` against a baseline fleet summary (both merged
 * telemetry), each with its own version's frame (feature-summary.ts Frame; the
 * two references may fix different ones): both sketches are mapped back to the
 * feature's units (x = centre + scale·z, exact enough: the sketch's coarseness
 * is in z, not in x) and compared there. Bins are the baseline's deciles.
 */
export function compareSummaries(base: FeatureSummary, obs: FeatureSummary, baseFrame?: Frame, obsFrame?: Frame): NumericFigures {
  const bm = rawMoments(base, baseFrame);
  const scale = bm.std > 0 ? bm.std : 1;
  const seen = obs.count + obs.nulls + obs.invalid;
  const missing = missingRates(base.nulls + base.invalid, base.count + base.nulls + base.invalid, obs.nulls + obs.invalid, seen);
  const head = { kind: 'numeric' as const, n: obs.count, referenceN: base.count, scale, nullRate: seen ? obs.nulls / seen : 0, invalidRate: seen ? obs.invalid / seen : 0, method: 'sketch' as const, missing };
  if (obs.count === 0 || base.count === 0) return { ...head, psi: null, js: null, ks: null, wasserstein: null, wassersteinNorm: null, meanShift: null, stdRatio: null };
  const raw = (f: Frame | undefined) => (f ? (z: number) => f.centre + f.scale * z : undefined);
  const bp = stepPoints(base.sketch, standardise(baseFrame, base.min), standardise(baseFrame, base.max), raw(baseFrame));
  const op = stepPoints(obs.sketch, standardise(obsFrame, obs.min), standardise(obsFrame, obs.max), raw(obsFrame));
  const qs = stepQuantiles(bp, Array.from({ length: 9 }, (_, i) => (i + 1) / 10));
  const edges = qs.filter((e, i) => i === 0 || e > qs[i - 1]);
  const b = stepCounts(bp, edges);
  const o = stepCounts(op, edges);
  const d = stepDistances(bp, op);
  const om = rawMoments(obs, obsFrame);
  return {
    ...head,
    psi: psi(b, o), js: jsDistance(b, o), ks: d.ks,
    wasserstein: d.w1, wassersteinNorm: d.w1 / scale,
    meanShift: (om.mean - bm.mean) / scale, stdRatio: bm.std > 0 ? om.std / bm.std : null,
  };
}
