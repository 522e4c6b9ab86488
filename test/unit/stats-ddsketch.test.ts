import { describe, expect, it } from 'vitest';
import { DDSketch, type DDSketchWire } from '../../protocol/ddsketch.js';
import { prng, normal } from '../helpers/random.js';


/** The value of 0-based rank floor(q·(n−1)): what DDSketch.quantile promises to approximate. */
function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.floor(q * (sorted.length - 1))];
}

const QS = Array.from({ length: 101 }, (_, i) => i / 100).concat([0.001, 0.005, 0.995, 0.999]);

function expectWithinAlpha(sk: DDSketch, values: number[]): void {
  const sorted = [...values].sort((a, b) => a - b);
  const est = sk.quantiles(QS);
  QS.forEach((q, i) => {
    const exact = exactQuantile(sorted, q);
    // Relative error ≤ α (paper Lemma 2), plus a hair for ceil(log) at a bucket boundary.
    expect(Math.abs(est[i] - exact), `q=${q} exact=${exact} est=${est[i]}`).toBeLessThanOrEqual(sk.alpha * Math.abs(exact) * (1 + 1e-9) + 1e-300);
  });
}

describe('DDSketch quantiles', () => {
  const r = prng(42);
  const dists: Record<string, () => number> = {
    'uniform(0, 1)': r,
    'uniform(-5, 5)': () => -5 + 10 * r(),
    'normal(0, 1)': normal(r),
    'normal(100, 15)': ((n) => () => 100 + 15 * n())(normal(r)),
    'lognormal(0, 2)': ((n) => () => Math.exp(2 * n()))(normal(r)),
    'mixed signs with 20 % exact zeros': ((n) => () => (r() < 0.2 ? 0 : n() * 1000))(normal(r)),
  };
  for (const [name, gen] of Object.entries(dists)) {
    it(`are within α of the exact quantiles for ${name}`, () => {
      for (const alpha of [0.01, 0.02]) {
        const values = Array.from({ length: 20_000 }, gen);
        const sk = new DDSketch({ alpha });
        for (const v of values) sk.add(v);
        expect(sk.count).toBe(values.length);
        expect(sk.min).toBe(Math.min(...values));
        expect(sk.max).toBe(Math.max(...values));
        expectWithinAlpha(sk, values);
      }
    });
  }

  it('weights count as repeated values', () => {
    const a = new DDSketch();
    const b = new DDSketch();
    for (let i = 1; i <= 100; i++) { a.add(i, 3); for (let k = 0; k < 3; k++) b.add(i); }
    expect(a.count).toBe(300);
    expect(a.sum).toBe(b.sum);
    expect(a.toJSON()).toEqual(b.toJSON());
  });

  it('cdf is the fraction ≤ x up to one bucket, exact outside [min, max]', () => {
    const values = Array.from({ length: 10_000 }, (_, i) => i + 1); // 1..10000
    const sk = new DDSketch();
    for (const v of values) sk.add(v);
    expect(sk.cdf(0.5)).toBe(0);
    expect(sk.cdf(10_000)).toBe(1);
    for (const x of [10, 100, 1234, 5000, 9000]) {
      // True F(x) = x/10000; the bucket holding x spans a relative width ≈ 2α, so F is off by at most ≈ 2α·x/10000.
      expect(Math.abs(sk.cdf(x) - x / 10_000)).toBeLessThanOrEqual(2.1 * sk.alpha * (x / 10_000) + 1e-4);
    }
  });

  it('an empty sketch answers NaN rather than inventing a value', () => {
    const sk = new DDSketch();
    expect(sk.quantile(0.5)).toBeNaN();
    expect(sk.cdf(1)).toBeNaN();
    expect(sk.toJSON()).toEqual({ a: 0.01, z: 0, count: 0, sum: 0, min: null, max: null });
  });
});

describe('DDSketch bucket limit', () => {
  it('collapses the lowest buckets and keeps high quantiles within α', () => {
    // Log-uniform over 1e-6 … 1e7 spans ln(1e13)/ln(γ) ≈ 1497 keys at α = 0.01; allow only 200.
    const values = Array.from({ length: 13_000 }, (_, i) => 10 ** (-6 + i / 1000));
    const sk = new DDSketch({ maxBuckets: 200 });
    for (const v of values) sk.add(v);
    const w = sk.toJSON();
    let span = 0;
    for (const c of w.p!.c) span += c < 0 ? -c : 1;
    expect(span).toBeLessThanOrEqual(200);
    expect(sk.count).toBe(values.length);
    const sorted = [...values].sort((a, b) => a - b);
    // The top 200 keys cover values above 1e7/γ^200 = 1e7/e^4.0 ≈ 1.8e5, i.e. q above (5.26 + 6)/13 ≈ 0.87.
    for (const q of [0.9, 0.95, 0.99, 0.999]) {
      const exact = exactQuantile(sorted, q);
      expect(Math.abs(sk.quantile(q) - exact)).toBeLessThanOrEqual(0.01 * exact * (1 + 1e-9));
    }
    // Below the fold line the guarantee is gone (the paper's trade-off), but min stays exact.
    expect(sk.quantile(0.01)).toBeGreaterThan(exactQuantile(sorted, 0.01) * 1.5);
    expect(sk.quantile(0)).toBe(1e-6);
  });

  it('collapses the most negative values first in the negative store', () => {
    const sk = new DDSketch({ maxBuckets: 100 });
    const values = Array.from({ length: 5000 }, (_, i) => -(10 ** (-2 + i / 1000)));
    for (const v of values) sk.add(v);
    const sorted = [...values].sort((a, b) => a - b);
    // Values near zero (the high end for negatives) keep their accuracy.
    for (const q of [0.9, 0.99]) {
      const exact = exactQuantile(sorted, q);
      expect(Math.abs(sk.quantile(q) - exact)).toBeLessThanOrEqual(0.01 * Math.abs(exact) * (1 + 1e-9));
    }
  });
});

describe('DDSketch merge', () => {
  it('100 sketches over disjoint parts merge to the sketch of all the data', () => {
    const r = prng(7);
    const n = normal(r);
    const values = Array.from({ length: 50_000 }, () => (r() < 0.05 ? 0 : n() * 3 + 1));
    const whole = new DDSketch();
    for (const v of values) whole.add(v);
    const merged = new DDSketch();
    for (let part = 0; part < 100; part++) {
      const s = new DDSketch();
      for (const v of values.slice(part * 500, (part + 1) * 500)) s.add(v);
      merged.merge(DDSketch.fromJSON(JSON.parse(JSON.stringify(s))));
    }
    const a = merged.toJSON();
    const b = whole.toJSON();
    // Bucket counts add exactly; float sums differ only by addition order.
    expect({ ...a, sum: 0 }).toEqual({ ...b, sum: 0 });
    expect(a.sum).toBeCloseTo(b.sum, 6);
    expectWithinAlpha(merged, values);
  });

  it('refuses to merge sketches of different α', () => {
    expect(() => new DDSketch({ alpha: 0.01 }).merge(new DDSketch({ alpha: 0.02 }).add(1))).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_MESSAGE' }));
  });
});

describe('DDSketch wire form', () => {
  const sample = () => {
    const sk = new DDSketch();
    for (const v of [-3, -2.5, -0.001, 0, 0, 1, 1, 2, 1000]) sk.add(v);
    return sk;
  };

  it('round-trips through JSON, with empty runs written as negative counts', () => {
    const sk = sample();
    const w = JSON.parse(JSON.stringify(sk)) as DDSketchWire;
    expect(w.z).toBe(2);
    expect(w.p!.c.some((c) => c < 0)).toBe(true);
    const back = DDSketch.fromJSON(w);
    expect(back.toJSON()).toEqual(sk.toJSON());
    expect(back.quantiles([0, 0.25, 0.5, 0.75, 1])).toEqual(sk.quantiles([0, 0.25, 0.5, 0.75, 1]));
  });

  const good = () => JSON.parse(JSON.stringify(sample())) as Record<string, unknown> & DDSketchWire;
  const cases: [string, (w: ReturnType<typeof good>) => unknown][] = [
    ['not an object', () => 'sketch'],
    ['NaN alpha (as JSON null)', (w) => ({ ...w, a: null })],
    ['alpha 0', (w) => ({ ...w, a: 0 })],
    ['alpha 1', (w) => ({ ...w, a: 1 })],
    ['a string count', (w) => ({ ...w, count: '9' })],
    ['a count the buckets do not hold', (w) => ({ ...w, count: 10 })],
    ['a negative zero count', (w) => ({ ...w, z: -1, count: w.count - 3 })],
    ['a fractional empty run', (w) => ({ ...w, p: { o: w.p!.o, c: [...w.p!.c, -1.5, 1] } })],
    ['a run longer than maxBuckets', (w) => ({ ...w, p: { o: w.p!.o, c: [...w.p!.c, -5000, 1] }, count: w.count + 1 })],
    ['an array far too long', (w) => ({ ...w, p: { o: 0, c: new Array(70_000).fill(0) } })],
    ['a key beyond the bound', (w) => ({ ...w, p: { o: 1e9, c: w.p!.c } })],
    ['min above max', (w) => ({ ...w, min: 5, max: 1 })],
    ['min missing while count > 0', (w) => ({ ...w, min: null })],
    ['an unknown key', (w) => ({ ...w, extra: 1 })],
    ['Infinity sum', (w) => ({ ...w, sum: Infinity })],
  ];
  for (const [name, mutate] of cases) {
    it(`refuses ${name} with PROTO_ERR_INVALID_MESSAGE`, () => {
      expect(() => DDSketch.fromJSON(mutate(good()))).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_MESSAGE' }));
    });
  }

  it('refuses non-finite values and bad weights at add() with a coded error', () => {
    const sk = new DDSketch();
    for (const bad of [NaN, Infinity, -Infinity]) expect(() => sk.add(bad)).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
    expect(() => sk.add(1, 0)).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
    expect(() => sk.quantile(1.5)).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_OPTION' }));
    expect(sk.count).toBe(0);
  });
});
