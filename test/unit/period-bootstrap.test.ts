import { describe, expect, it } from 'vitest';
import { rng } from '../../bundle-build/onnx-build.js';
import { bootstrapRatio } from '../../bench/period-bootstrap.js';

/** Periods of 100 latencies each, lognormal-ish with an occasional slow episode, scaled by `scale`. */
function periods(count: number, scale: number, seed: number): Float64Array[] {
  const next = rng(seed);
  return Array.from({ length: count }, () => {
    const episode = next() < 0.05 ? 10 : 1;
    return Float64Array.from({ length: 100 }, () => scale * episode * Math.exp(next()));
  });
}

describe('period bootstrap', () => {
  it('Period_bootstrap_brackets_an_equal_ratio_and_finds_a_doubled_one', () => {
    const same = bootstrapRatio(periods(80, 1, 1), periods(80, 1, 2), 99);
    expect(same.p5).toBeLessThan(1);
    expect(same.p95).toBeGreaterThan(1);
    const doubled = bootstrapRatio(periods(80, 2, 3), periods(80, 1, 4), 50);
    expect(doubled.p5).toBeGreaterThan(1.6);
    expect(doubled.p95).toBeLessThan(2.5);
    expect(doubled.p5).toBeLessThanOrEqual(doubled.p50);
    expect(doubled.p50).toBeLessThanOrEqual(doubled.p95);
  });

  it('Period_bootstrap_is_deterministic_for_a_seed', () => {
    const a = periods(40, 1, 5); const b = periods(40, 1, 6);
    expect(bootstrapRatio(a, b, 99, 200, 7)).toEqual(bootstrapRatio(a, b, 99, 200, 7));
  });
});
