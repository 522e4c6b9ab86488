/**
 * KS and Wasserstein-1 between two sketched distributions, each read as the
 * step CDF of its bucket representatives (DDSketch.points: weights at
 * representatives clamped to the exact min and max). One merge-walk over both
 * point lists visits every jump of either CDF, so both figures are the exact
 * ones for those step functions:
 *
 *   KS = sup |F_a − F_b|,   W1 = ∫ |F_a(x) − F_b(x)| dx   (= ∫₀¹ |Q_a − Q_b| du).
 *
 * W1 used to be a midpoint rule over quantiles at rank q·(n−1), an
 * interpolating rule that pulls a small sample's quantiles toward its centre:
 * −8 % at n = 50 and −13 % on small unequal samples against the exact empirical
 * W1. Integrating the step CDFs has no such bias; what is left is the sketch's
 * bucketing, which moves each value by at most α·|x| in the sketched units
 * (standardised units for profiles with a frame), the same on both sides.
 *
 * `map` takes the sketched units to the units both sides are compared in
 * (centre + scale·z for a standardised sketch compared with another frame).
 */
import type { DDSketch } from '@fleetcast/protocol/ddsketch.js';

export interface StepPoints { xs: number[]; ws: number[]; n: number }

/** The sketch's points, clamped to [lo, hi] (in sketched units), then mapped by `map` (increasing). */
export function stepPoints(s: DDSketch, lo: number, hi: number, map?: (x: number) => number): StepPoints {
  const p = s.points(lo, hi);
  let n = 0;
  for (const w of p.ws) n += w;
  return { xs: map ? p.xs.map(map) : p.xs, ws: p.ws, n };
}

export function stepDistances(a: StepPoints, b: StepPoints): { ks: number; w1: number } {
  let i = 0;
  let j = 0;
  let ca = 0;
  let cb = 0;
  let ks = 0;
  let w1 = 0;
  let prev = NaN;
  let gap = 0;
  while (i < a.xs.length || j < b.xs.length) {
    const x = Math.min(i < a.xs.length ? a.xs[i] : Infinity, j < b.xs.length ? b.xs[j] : Infinity);
    // |F_a − F_b| holds from the previous jump up to this one.
    if (prev === prev) w1 += gap * (x - prev);
    while (i < a.xs.length && a.xs[i] === x) ca += a.ws[i++];
    while (j < b.xs.length && b.xs[j] === x) cb += b.ws[j++];
    gap = Math.abs(Math.min(ca / a.n, 1) - Math.min(cb / b.n, 1));
    if (gap > ks) ks = gap;
    prev = x;
  }
  return { ks, w1 };
}

/** The q-quantiles of step points: the smallest point whose cumulative weight reaches q·n. */
export function stepQuantiles(p: StepPoints, qs: readonly number[]): number[] {
  return qs.map((q) => {
    let cum = 0;
    for (let i = 0; i < p.xs.length; i++) {
      cum += p.ws[i];
      if (cum >= q * p.n * (1 - 1e-12)) return p.xs[i];
    }
    return p.xs[p.xs.length - 1];
  });
}

/** Weight of the points below each edge, as counts per bin (bin convention of feature-summary.ts: [e_{i−1}, e_i)). */
export function stepCounts(p: StepPoints, edges: readonly number[]): number[] {
  const out = new Array<number>(edges.length + 1).fill(0);
  let k = 0;
  for (let i = 0; i < p.xs.length; i++) {
    while (k < edges.length && p.xs[i] >= edges[k]) k++;
    out[k] += p.ws[i];
  }
  return out;
}
