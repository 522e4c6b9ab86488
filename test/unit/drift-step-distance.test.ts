/**
 * KS and W1 from one walk over two step CDFs (hub/drift/step-distance.ts) on
 * hand-worked cases (the comparison with raw samples' exact W1 is in
 * stats-drift-metrics.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { stepCounts, stepDistances, stepQuantiles } from '../../hub/drift/step-distance.js';

describe('step distances', () => {
  it('walks hand-worked step functions exactly', () => {
    // a: mass ½ at 0 and 1; b: mass 1 at 2. F_a − F_b = ½ on [0,1), 1 on [1,2): W1 = 1.5, KS = 1.
    const a = { xs: [0, 1], ws: [5, 5], n: 10 };
    const b = { xs: [2], ws: [3], n: 3 };
    expect(stepDistances(a, b)).toEqual({ ks: 1, w1: 1.5 });
    expect(stepDistances(a, a)).toEqual({ ks: 0, w1: 0 });
    expect(stepQuantiles(a, [0.25, 0.5, 0.75])).toEqual([0, 0, 1]);
    expect(stepCounts(a, [0.5, 1])).toEqual([5, 0, 5]);
  });
});
