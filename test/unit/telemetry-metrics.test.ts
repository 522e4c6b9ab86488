/**
 * The drift figures added for fleet reports, against values worked out by hand:
 * the KS p-value (Kolmogorov's distribution), sketch-vs-sketch comparison of
 * two fleet summaries (PSI over the baseline's deciles, W1/σ, KS), the exact
 * sketch KS, and the family alarm rule (effect size AND Bonferroni-significant).
 */
import { describe, expect, it } from 'vitest';
import { DDSketch } from '../../protocol/ddsketch.js';
import { createSummary, frameOf, observe, referenceProfile } from '../../protocol/feature-summary.js';
import { compareSummaries, ksPValue } from '../../hub/drift/compare.js';
import { judgeInFamily } from '../../hub/drift/judge-family.js';
import { ksFromSketches, type NumericFigures } from '../../hub/drift/metrics.js';
import { prng, normal } from '../helpers/random.js';

describe('KS p-value', () => {
  it('matches the Kolmogorov distribution at its tabulated critical values (large n, so the small-n correction vanishes)', () => {
    // P(K > λ): 1.2238 → 0.10, 1.3581 → 0.05, 1.6276 → 0.01 (Smirnov's table).
    const ne = 1e10;
    const at = (lambda: number) => ksPValue(lambda / Math.sqrt(ne), 2 * ne, 2 * ne);
    expect(at(1.2238)).toBeCloseTo(0.10, 3);
    expect(at(1.3581)).toBeCloseTo(0.05, 3);
    expect(at(1.6276)).toBeCloseTo(0.01, 3);
    expect(ksPValue(0, 100, 100)).toBe(1);
    expect(ksPValue(1, 1000, 1000)).toBeLessThan(1e-100);
  });

  it('uses the effective size n·m/(n+m) with Stephens\' correction', () => {
    // n = m = 200 → nₑ = 100, √nₑ = 10; λ = (10 + 0.12 + 0.011)·0.13581
    const lambda = (10 + 0.12 + 0.11 / 10) * 0.13581;
    let q = 0;
    for (let k = 1; k < 50; k++) q += 2 * (k % 2 ? 1 : -1) * Math.exp(-2 * k * k * lambda * lambda);
    expect(ksPValue(0.13581, 200, 200)).toBeCloseTo(q, 12);
  });
});

describe('sketch KS', () => {
  it('is the exact gap of the two step CDFs, found between quantile points too', () => {
    // ref: 1000 at 1, obs: 999 at 1 and 1 at 1000 → D = 0.001 only at x in [1, 1000).
    const a = new DDSketch().add(1, 1000);
    const b = new DDSketch().add(1, 999).add(1000, 1);
    expect(ksFromSketches(a, b)).toBeCloseTo(0.001, 12);
    // Disjoint supports → D = 1.
    expect(ksFromSketches(new DDSketch().add(-5, 10), new DDSketch().add(5, 10))).toBe(1);
  });
});

describe('comparing two fleet summaries (a ring against the previous version)', () => {
  const uniform = (lo: number, n: number) => {
    const s = createSummary([]);
    for (let i = 0; i < n; i++) observe(s, lo + (i + 0.5) / n);
    return s;
  };

  it('U(0,1) against U(0.05,1.05): PSI over the baseline deciles, W1 and the mean shift in σ units', () => {
    const f = compareSummaries(uniform(0, 20_000), uniform(0.05, 20_000));
    // Decile bins of U(0,1) catch 0.05, 0.1 × 8, 0.15 of U(0.05,1.05):
    // PSI = 0.05·ln 2 + 0.05·ln 1.5 = 0.05493; W1 = 0.05, σ = 1/√12 → W1/σ = 0.1732.
    expect(f.psi!).toBeCloseTo(0.05493, 2);
    expect(f.wassersteinNorm!).toBeGreaterThan(0.1732 * 0.95);
    expect(f.wassersteinNorm!).toBeLessThan(0.1732 * 1.05);
    expect(f.meanShift!).toBeCloseTo(0.1732, 3);
    expect(f.stdRatio!).toBeCloseTo(1, 3);
    expect(f.ks!).toBeGreaterThan(0.05 - 0.02);
    expect(f.ks!).toBeLessThan(0.05 + 0.02);
  });

  it('a distribution against itself scores zero', () => {
    const s = uniform(0, 5000);
    const f = compareSummaries(s, s);
    expect(f.psi).toBe(0);
    expect(f.wasserstein).toBe(0);
    expect(f.ks).toBe(0);
  });

  it('N(0,1) against N(0.5,1): W1/σ = 0.5, KS = 2Φ(0.25) − 1 = 0.1974', () => {
    const r = prng(3);
    const n = normal(r);
    const a = createSummary([]);
    const b = createSummary([]);
    for (let i = 0; i < 50_000; i++) { observe(a, n()); observe(b, n() + 0.5); }
    const f = compareSummaries(a, b);
    expect(f.wassersteinNorm!).toBeCloseTo(0.5, 1);
    expect(Math.abs(f.ks! - 0.1974)).toBeLessThan(0.015);
  });
});

describe('a ring against the previous version, each in its own frame', () => {
  it('compares offset features sketched in two different frames in the feature\'s units: no drift reads as none, 0.5σ as 0.5σ', () => {
    const n = normal(prng(44));
    // Version 1's reference put the frame at 10⁶ with scale 1, version 2's at 10⁶ + 3 with scale 2.
    const f1 = frameOf(referenceProfile(Array.from({ length: 5000 }, () => 1e6 + n()), 10))!;
    const f2 = frameOf(referenceProfile(Array.from({ length: 5000 }, () => 1e6 + 3 + 2 * n()), 10))!;
    const base = createSummary([], {}, f1);
    const same = createSummary([], {}, f2);
    const moved = createSummary([], {}, f2);
    for (let i = 0; i < 20_000; i++) { observe(base, 1e6 + n()); observe(same, 1e6 + n()); observe(moved, 1e6 + 0.5 + n()); }
    const a = compareSummaries(base, same, f1, f2);
    // The two frames' buckets do not line up: KS can read up to about one bucket's mass high (α·|z| wide; here
    // z ≈ −1.5 in version 2's frame, so about 0.035); sampling noise alone is about 0.01 at these n.
    expect(a.ks!).toBeLessThan(0.05);
    expect(a.wassersteinNorm!).toBeLessThan(0.05);
    expect(Math.abs(a.meanShift!)).toBeLessThan(0.05);
    const b = compareSummaries(base, moved, f1, f2);
    expect(Math.abs(b.wassersteinNorm! - 0.5)).toBeLessThan(0.05);
    expect(Math.abs(b.ks! - 0.1974)).toBeLessThan(0.03);
  });
});

describe('the family alarm rule', () => {
  const fig = (o: Partial<NumericFigures>): NumericFigures => ({ kind: 'numeric', n: 1000, referenceN: 5000, psi: 0.01, js: 0, ks: 0, wasserstein: 0, wassersteinNorm: 0.01, scale: 1, meanShift: 0, stdRatio: 1, nullRate: 0, invalidRate: 0, method: 'sketch', missing: { rate: 0, referenceRate: 0, seen: 1000, referenceSeen: 5000, pValue: 1 }, ...o });
  const t = { psi: 0.2, wasserstein: 0.1, minN: 500, alpha: 0.001 };

  it('alarms on a large effect that is also significant after Bonferroni', () => {
    const v = judgeInFamily(fig({ wassersteinNorm: 0.3 }), 1e-9, t, 20);
    expect(v.verdict).toBe('drift');
    expect(v.score).toBeCloseTo(3, 12);
  });

  it('does not alarm on a large effect that is noise once 20 features are tested (p ≥ α/m)', () => {
    // p = 1e-4 would pass for one feature (α/(2m) = 5e-4) but not for 20 (α/(2m) = 2.5e-5).
    expect(judgeInFamily(fig({ wassersteinNorm: 0.12 }), 1e-4, t, 1).verdict).toBe('drift');
    const v = judgeInFamily(fig({ wassersteinNorm: 0.12 }), 1e-4, t, 20);
    expect(v.verdict).toBe('ok');
    expect(v.note).toMatch(/α\/\(2m\)/);
  });

  it('does not alarm on a tiny effect however significant (huge n), nor on a tiny sample', () => {
    expect(judgeInFamily(fig({ n: 10_000_000, wassersteinNorm: 0.02, psi: 0.001 }), 1e-30, t, 1).verdict).toBe('ok');
    expect(judgeInFamily(fig({ n: 100, wassersteinNorm: 2 }), 1e-12, t, 1).verdict).toBe('insufficient-data');
  });
});
