import { describe, expect, it } from 'vitest';
import {
  SUMMARY_ALPHA, binIndex, categoricalFromWire, categoricalToWire, createCategorical, createCategoricalFor, createSummary, frameOf, fromWire, mergeCategorical,
  mergeSummaries, observe, observeCategory, parseReferenceProfile, rawMoments, referenceProfile, summaryMoments, toWire, type FeatureSummary,
} from '../../protocol/feature-summary.js';
import { prng, normal } from '../helpers/random.js';


const code = (c: string) => expect.objectContaining({ code: c });

describe('bins', () => {
  it('follow the documented convention: (−∞,e0), [e0,e1), …, [e_last,+∞); a value on an edge opens the next bin', () => {
    const edges = [0, 1, 2];
    expect([-5, -1e-12, 0, 0.5, 1 - 1e-12, 1, 1.5, 2, 99].map((x) => binIndex(edges, x))).toEqual([0, 0, 1, 1, 1, 2, 2, 3, 3]);
    const s = createSummary(edges);
    for (const x of [-1, 0, 1, 2, 2, 3]) observe(s, x);
    expect(s.bins).toEqual([1, 1, 1, 3]);
  });

  it('nulls and invalid values are counted apart and never reach the moments, bins or sketch', () => {
    const s = createSummary([0]);
    for (const v of [1, null, undefined, NaN, Infinity, -Infinity, '3', true, {}, -2]) observe(s, v);
    expect({ count: s.count, nulls: s.nulls, invalid: s.invalid, sum: s.sum, sumSq: s.sumSq, min: s.min, max: s.max, bins: s.bins })
      .toEqual({ count: 2, nulls: 2, invalid: 6, sum: -1, sumSq: 5, min: -2, max: 1, bins: [1, 1] });
    expect(s.sketch.count).toBe(2);
    expect(summaryMoments(s)).toEqual({ mean: -0.5, std: 1.5 });
  });

  it('refuses edges that are not strictly increasing finite numbers', () => {
    expect(() => createSummary([0, 0])).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => createSummary([1, 0])).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => createSummary([0, NaN])).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
  });
});

describe('merging summaries', () => {
  it('100 summaries over disjoint parts merge to the summary of all the data', () => {
    const r = prng(11);
    const n = normal(r);
    // Values on a 1/1024 grid with |x| < 64: every partial sum and sum of squares is exact in a double,
    // so "exactly equal" is a fair demand on sum and sumSq whatever the merge order.
    const values: unknown[] = Array.from({ length: 100_000 }, () => Math.round((5 + 4 * n()) * 1024) / 1024);
    for (let i = 0; i < values.length; i += 997) values[i] = i % 2 ? null : NaN;
    const ref = referenceProfile(values.slice(0, 10_000), 10);
    const whole = createSummary(ref.edges);
    for (const v of values) observe(whole, v);
    let merged = createSummary(ref.edges);
    for (let part = 0; part < 100; part++) {
      const s = createSummary(ref.edges);
      for (const v of values.slice(part * 1000, (part + 1) * 1000)) observe(s, v);
      merged = mergeSummaries(merged, fromWire(JSON.parse(JSON.stringify(toWire(s))), ref.edges));
    }
    for (const k of ['count', 'sum', 'sumSq', 'min', 'max', 'nulls', 'invalid', 'bins'] as const) expect(merged[k], k).toEqual(whole[k]);
    expect(merged.sketch.toJSON()).toEqual(whole.sketch.toJSON());
    const sorted = (values.filter((v) => typeof v === 'number' && Number.isFinite(v)) as number[]).sort((a, b) => a - b);
    for (const q of [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]) {
      const exact = sorted[Math.floor(q * (sorted.length - 1))];
      expect(Math.abs(merged.sketch.quantile(q) - exact)).toBeLessThanOrEqual(SUMMARY_ALPHA * Math.abs(exact) * (1 + 1e-9));
    }
  });

  it('leaves its inputs alone and refuses summaries over different edges', () => {
    const a = createSummary([0, 1]);
    const b = createSummary([0, 1]);
    observe(a, 0.5); observe(b, 2);
    const m = mergeSummaries(a, b);
    expect(m.bins).toEqual([0, 1, 1]);
    expect(a.bins).toEqual([0, 1, 0]);
    expect(a.sketch.count).toBe(1);
    expect(() => mergeSummaries(a, createSummary([0, 2]))).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => mergeSummaries(a, createSummary([0]))).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
  });
});

describe('summary wire form', () => {
  const edges = [-1, 0, 1];
  const sample = (): FeatureSummary => {
    const s = createSummary(edges);
    for (const v of [-3, -0.5, 0, 0, 0.25, 2, null, NaN]) observe(s, v);
    return s;
  };

  it('round-trips, and an empty summary has null min and max', () => {
    const s = sample();
    const back = fromWire(JSON.parse(JSON.stringify(toWire(s))), edges);
    expect(toWire(back)).toEqual(toWire(s));
    expect(back.sketch.quantiles([0, 0.5, 1])).toEqual(s.sketch.quantiles([0, 0.5, 1]));
    const empty = toWire(createSummary(edges));
    expect(empty.min).toBeNull();
    expect(fromWire(JSON.parse(JSON.stringify(empty)), edges).min).toBe(Infinity);
  });

  const good = () => JSON.parse(JSON.stringify(toWire(sample()))) as Record<string, any>;
  const cases: [string, (w: Record<string, any>) => unknown][] = [
    ['bins that do not add up to count', (w) => ({ ...w, bins: [1, 1, 1, 1] })],
    ['a negative bin count', (w) => ({ ...w, bins: [2, 2, 3, -1] })],
    ['a fractional count', (w) => ({ ...w, nulls: 0.5 })],
    ['a null sum (NaN in JSON)', (w) => ({ ...w, sum: null })],
    ['a negative sum of squares', (w) => ({ ...w, sumSq: -1 })],
    ['min above max', (w) => ({ ...w, min: 3, max: -3 })],
    ['null min with values', (w) => ({ ...w, min: null })],
    ['count repeated inside the sketch', (w) => ({ ...w, sketch: { ...w.sketch, count: 6 } })],
    ['a sketch that holds fewer values than count', (w) => ({ ...w, sketch: { ...w.sketch, z: 0 } })],
    ['a sketch that is not an object', (w) => ({ ...w, sketch: [1, 2] })],
    ['an unknown key', (w) => ({ ...w, mean: 0 })],
    ['a missing key', (w) => { const { invalid: _, ...rest } = w; return rest; }],
    ['a string', () => 'summary'],
  ];
  for (const [name, mutate] of cases) {
    it(`refuses ${name} with PROTO_ERR_INVALID_MESSAGE`, () => {
      expect(() => fromWire(mutate(good()), edges)).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    });
  }

  it('refuses bins counted over other edges', () => {
    expect(() => fromWire(good(), [-1, 0, 1, 2])).toThrow(expect.objectContaining({ code: 'PROTO_ERR_INVALID_MESSAGE', details: { reason: 'edges-mismatch' } }));
  });

  it('a 32-feature report of 1,000-value windows with 10 bins each stays under 32 KB', () => {
    // Measured at the seed below: 26,959 bytes for 32 standard normals (centred on 0, the worst case
    // for a log-bucketed sketch: ~0.8 KB per feature), 39,308 at α = 0.01; a mixed report is far smaller.
    const r = prng(3);
    const n = normal(r);
    const report = (gen: (f: number) => number) => {
      const features: Record<string, unknown> = {};
      for (let f = 0; f < 32; f++) {
        const ref = referenceProfile(Array.from({ length: 5000 }, () => gen(f)), 10);
        expect(ref.edges).toHaveLength(9);
        const s = createSummary(ref.edges);
        for (let i = 0; i < 1000; i++) observe(s, gen(f));
        features[`feature_${f}`] = toWire(s);
      }
      return Buffer.byteLength(JSON.stringify({ features }));
    };
    const centred = report(() => n());
    const mixed = report((f) => [n() * 10 + 50, Math.exp(n()), Math.floor(r() * 20), r() * 1e4][f % 4]);
    expect(centred).toBeLessThan(32 * 1024);
    expect(centred).toBeGreaterThan(16 * 1024); // the bound is real, not vacuous
    expect(mixed).toBeLessThan(centred);
  });
});

describe('reference profile', () => {
  it('puts decile edges so each of 10 bins holds a tenth, with mean, std, min and max', () => {
    const values = Array.from({ length: 10_000 }, (_, i) => i); // 0..9999
    const p = referenceProfile([...values, NaN, null], 10);
    expect(p.edges).toEqual([1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000]);
    expect(p.counts).toEqual(new Array(10).fill(1000));
    expect(p.count).toBe(10_000);
    expect(p.invalid).toBe(2);
    expect(p.mean).toBe(4999.5);
    // Population variance of 0..N−1 is (N²−1)/12.
    expect(p.std).toBeCloseTo(Math.sqrt((10_000 ** 2 - 1) / 12), 9);
    expect([p.min, p.max]).toEqual([0, 9999]);
  });

  it('deduplicates edges of a feature with repeated values, keeping them strictly increasing', () => {
    const values = [...new Array(600).fill(0), ...new Array(300).fill(1), ...Array.from({ length: 100 }, (_, i) => 2 + i)];
    const p = referenceProfile(values, 10);
    // Ranks 100…900: values 0 (ranks 100–500), 1 (600–800), then rank 900 = 2 + 0.
    expect(p.edges).toEqual([0, 1, 2]);
    expect(p.counts).toEqual([0, 600, 300, 100]);
    const c = referenceProfile(new Array(50).fill(7));
    expect(c.edges).toEqual([7]);
    expect(c.std).toBe(0);
  });

  it('carries a sketch with the telemetry α unless told not to, survives JSON, and a damaged profile is refused', () => {
    const r = prng(5);
    const p = referenceProfile(Array.from({ length: 2000 }, normal(r)), 10);
    expect(p.sketch?.count).toBe(2000);
    expect(p.sketch?.a).toBe(SUMMARY_ALPHA);
    expect(referenceProfile([1, 2, 3], 2, { sketch: false }).sketch).toBeUndefined();
    expect(parseReferenceProfile(JSON.parse(JSON.stringify(p)))).toEqual(p);
    const j = () => JSON.parse(JSON.stringify(p));
    expect(() => parseReferenceProfile({ ...j(), counts: j().counts.slice(1) })).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => parseReferenceProfile({ ...j(), edges: [...j().edges].reverse() })).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => parseReferenceProfile({ ...j(), count: 1999 })).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => parseReferenceProfile({ ...j(), std: -1 })).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => parseReferenceProfile({ ...j(), sketch: { ...j().sketch, count: 5 } })).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => referenceProfile([NaN, Infinity])).toThrow(code('PROTO_ERR_INVALID_OPTION'));
    expect(() => referenceProfile([1, 2], 1)).toThrow(code('PROTO_ERR_INVALID_OPTION'));
  });
});

describe('categorical summaries', () => {
  it('NaN (a float input\'s missing value) counts as missing, not as an invalid category, like null', () => {
    const a = createCategorical(8);
    for (const v of [1, Number.NaN, null, 2, Number.NaN, Infinity]) observeCategory(a, v);
    expect({ ...a.counts }).toEqual({ 1: 1, 2: 1 });
    expect([a.nulls, a.invalid]).toEqual([3, 1]);
  });

  it('count categories up to the limit, the rest in "other", and merge exactly below the limit', () => {
    const a = createCategorical(3);
    for (const v of ['red', 'red', 'green', 7, 7n, null, 1.5, {}, 'x'.repeat(200), 'blue', 'pink']) observeCategory(a, v);
    expect({ ...a.counts }).toEqual({ red: 2, green: 1, '7': 2 });
    expect([a.other, a.nulls, a.invalid]).toEqual([2, 1, 3]);
    const b = createCategorical(3);
    for (const v of ['green', 'green', '7']) observeCategory(b, v);
    const m = mergeCategorical(a, b);
    expect({ ...m.counts }).toEqual({ red: 2, green: 3, '7': 3 });
    expect(m.other).toBe(2);
  });

  it('when a merge exceeds the limit the smallest counters move to "other", whatever the order', () => {
    const a = createCategorical(2);
    const b = createCategorical(2);
    for (const v of ['a', 'a', 'a', 'b']) observeCategory(a, v);
    for (const v of ['c', 'c', 'c', 'b']) observeCategory(b, v);
    const ab = mergeCategorical(a, b);
    const ba = mergeCategorical(b, a);
    // Union: a 3, b 1+1, c 3; the two largest keep slots, b's 2 go to "other".
    expect({ ...ab.counts }).toEqual({ a: 3, c: 3 });
    expect(ab.other).toBe(2);
    expect(categoricalToWire(ab)).toEqual(categoricalToWire(ba));
  });

  it('round-trips on the wire and refuses malformed input', () => {
    const s = createCategorical();
    for (const v of ['a', 'b', 'b', null]) observeCategory(s, v);
    expect(categoricalToWire(categoricalFromWire(JSON.parse(JSON.stringify(categoricalToWire(s)))))).toEqual(categoricalToWire(s));
    const w = categoricalToWire(s);
    expect(() => categoricalFromWire({ ...w, counts: { a: -1 } })).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => categoricalFromWire({ ...w, other: 'many' })).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => categoricalFromWire({ ...w, counts: { a: 1, b: 1, c: 1 } }, 2)).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
    expect(() => categoricalFromWire({ ...w, counts: { ['y'.repeat(129)]: 1 } })).toThrow(code('PROTO_ERR_INVALID_MESSAGE'));
  });
});

describe('field values', () => {
  it('a legal double above 1.3·10¹⁵⁴ keeps every moment finite and the summary valid on the wire; min, max and bins stay exact', () => {
    for (const frame of [undefined, { centre: 1e6, scale: 2 }]) {
      const s = createSummary([0, 1], {}, frame);
      for (const x of [0.5, 1e300, -Number.MAX_VALUE, Number.MAX_VALUE, 2e154]) observe(s, x);
      expect(Number.isFinite(s.sum) && Number.isFinite(s.sumSq)).toBe(true);
      expect([s.min, s.max]).toEqual([-Number.MAX_VALUE, Number.MAX_VALUE]);
      expect(s.bins).toEqual([1, 1, 3]);
      const back = fromWire(JSON.parse(JSON.stringify(toWire(s))), [0, 1], frame);
      expect(back.count).toBe(5);
    }
  });

  it('a standardised summary sketches (x − centre)/scale, and its moments map back to the feature\'s units', () => {
    const frame = { centre: 1e6, scale: 1e-3 };
    const s = createSummary([], {}, frame);
    for (const x of [1e6 - 1e-3, 1e6, 1e6 + 1e-3, 1e6 + 2e-3]) observe(s, x);
    expect(s.sketch.min).toBeCloseTo(-1, 6);
    expect(s.sketch.max).toBeCloseTo(2, 6);
    const m = rawMoments(s, frame);
    expect(m.mean).toBeCloseTo(1e6 + 0.5e-3, 9);
    expect(m.std).toBeCloseTo(Math.sqrt(1.25) * 1e-3, 9);
    expect(frameOf(referenceProfile([1, 2, 3, 4, 5], 2))).toEqual({ centre: 3, scale: 2 / 1.349 });
    expect(frameOf(referenceProfile([1, 2, 3, 4, 5], 2, { frame: false }))).toBeUndefined();
  });

  it('counts against the reference\'s categories: all 1,000 by name whatever the order, new ones by name while slots last, the rest as other', () => {
    const known = Array.from({ length: 1000 }, (_, i) => `k${i}`);
    const s = createCategoricalFor(known);
    for (let i = 0; i < 30; i++) observeCategory(s, `new${i}`);
    for (const k of [...known].reverse()) observeCategory(s, k);
    expect(known.every((k) => s.counts[k] === 1)).toBe(true);
    // 1,024 names at most: 24 new ones get a slot, 6 count as other.
    expect(Object.keys(s.counts).filter((k) => k.startsWith('new'))).toHaveLength(24);
    expect(s.other).toBe(6);
  });
});
