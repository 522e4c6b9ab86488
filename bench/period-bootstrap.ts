/**
 * How sure a p99 ratio between two kinds of period is. A series' p99 is the ~1 % slowest of its requests, and with
 * short periods that is a handful per period: one episode of the machine (a descheduled thread, a collection) in
 * either kind moves the ratio far (an A/A run, FLEETCAST_BENCH_SWAP_AA=1, with no swap at all, gave 0.44-0.91 on a
 * busy machine). Resampling whole periods with replacement (requests inside a period are not independent, so they
 * are resampled together) gives the spread the ratio would have over repeated series: its 5th-95th percentiles.
 */
import { rng } from '@fleetcast/bundle-build/onnx-build.js';

function resampledP(periods: Float64Array[], p: number, next: () => number): number {
  const picked: Float64Array[] = [];
  let n = 0;
  for (let i = 0; i < periods.length; i++) {
    const q = periods[Math.floor(next() * periods.length)];
    picked.push(q);
    n += q.length;
  }
  const all = new Float64Array(n);
  let o = 0;
  for (const q of picked) { all.set(q, o); o += q.length; }
  all.sort();
  return all[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))];
}

/** The 5th, 50th and 95th percentiles of percentile-p(a) / percentile-p(b) over `rounds` resamplings of whole periods. */
export function bootstrapRatio(a: Float64Array[], b: Float64Array[], p: number, rounds = 400, seed = 1): { p5: number; p50: number; p95: number } {
  const next = rng(seed);
  const ratios = new Float64Array(rounds);
  for (let r = 0; r < rounds; r++) ratios[r] = resampledP(a, p, next) / resampledP(b, p, next);
  ratios.sort();
  const at = (q: number) => ratios[Math.min(rounds - 1, Math.floor(q * rounds))];
  return { p5: at(0.05), p50: at(0.5), p95: at(0.95) };
}
