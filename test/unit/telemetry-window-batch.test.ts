/**
 * The window summarises sampled values a batch at a time (agent/telemetry/
 * sample-columns.ts); its report must be exactly the one of summarising every
 * value as it arrives, in request order: bins, moments, nulls/invalid and the
 * sketch buckets, across batches bigger than a column, odd values (NaN as a
 * missing feature but an invalid output, ±Infinity, bigints, absent inputs)
 * and a body read in the middle of the window. The latency sketch likewise.
 */
import { describe, expect, it } from 'vitest';
import type { TensorData } from '../../agent/runtime.js';
import { DDSketch } from '../../protocol/ddsketch.js';
import { SampleColumns } from '../../agent/telemetry/sample-columns.js';
import { TelemetryWindow } from '../../agent/telemetry/window.js';
import { categoricalToWire, createCategorical, createSummary, observe, observeCategory, referenceProfile, SUMMARY_ALPHA, toWire } from '../../protocol/feature-summary.js';
import type { Manifest } from '../../protocol/manifest.js';
import { compilePlan } from '../../protocol/telemetry-plan.js';
import { normal, prng } from '../helpers/random.js';

const r = prng(11);
const n = normal(r);
const ref = referenceProfile(Array.from({ length: 3000 }, n), 10);
const manifest = {
  inputs: [{ name: 'x', type: 'float32', shape: ['batch', 3] }, { name: 'k', type: 'int64', shape: ['batch', 2] }, { name: 's', type: 'string', shape: ['batch', 1] }],
  outputs: [{ name: 'y', type: 'float32', shape: ['batch', 2] }],
  reference: {
    type: 'fleetcast.reference/v1', rows: 3000, bins: 10,
    features: [
      { name: 'x[0]', input: 'x', index: 0, kind: 'numeric', profile: ref },
      { name: 'k[0]', input: 'k', index: 0, kind: 'categorical', categories: { counts: { 0: 1, 1: 1 }, other: 0, nulls: 0, invalid: 0 } },
      { name: 'x[2]', input: 'x', index: 2, kind: 'numeric', profile: ref },
      { name: 'k[1]', input: 'k', index: 1, kind: 'numeric', profile: ref },
      { name: 's[0]', input: 's', index: 0, kind: 'categorical', categories: { counts: { a: 1 }, other: 0, nulls: 0, invalid: 0 } },
    ],
    outputs: [{ name: 'y[1]', profile: ref }],
  },
} as unknown as Manifest;
const plan = compilePlan('b'.repeat(64), manifest);

/** One request of `rows` rows with a few odd values; `s` and `y` are left out now and then. */
function request(rows: number, i: number): { feeds: Record<string, TensorData>; out: Record<string, TensorData> | null } {
  const odd = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];
  const x = Float32Array.from({ length: rows * 3 }, (_, j) => ((i + j) % 17 === 0 ? odd[(i + j) % 3] : n()));
  const k = BigInt64Array.from({ length: rows * 2 }, (_, j) => BigInt(Math.floor(r() * 5) - 1));
  const feeds: Record<string, TensorData> = { x: { type: 'float32', dims: [rows, 3], data: x }, k: { type: 'int64', dims: [rows, 2], data: k } };
  if (i % 4 !== 3) feeds.s = { type: 'string', dims: [rows, 1], data: Array.from({ length: rows }, (_, j) => ['a', 'b', 'c'][(i + j) % 3]) };
  const y = Float32Array.from({ length: rows * 2 }, (_, j) => ((i + j) % 13 === 0 ? Number.NaN : r()));
  return { feeds, out: i % 5 === 4 ? null : { y: { type: 'float32', dims: [rows, 2], data: y } } };
}

/** What summarising each value as it arrives gives (the definition the batched window must match). */
function inline(reqs: ReturnType<typeof request>[]) {
  const num = new Map(plan.features.filter((f) => f.kind === 'numeric').map((f) => [f.name, createSummary(f.edges, { alpha: SUMMARY_ALPHA })]));
  const cat = new Map(plan.features.filter((f) => f.kind === 'categorical').map((f) => [f.name, createCategorical()]));
  const out = new Map(plan.outputs.map((o) => [o.name, createSummary(o.edges, { alpha: SUMMARY_ALPHA })]));
  for (const q of reqs) {
    for (const f of plan.features) {
      const t = q.feeds[f.input];
      if (!t) continue;
      for (let row = 0; row < t.dims[0]; row++) {
        const v = (t.data as ArrayLike<unknown>)[row * f.width + f.index];
        if (f.kind === 'categorical') { observeCategory(cat.get(f.name)!, v); continue; }
        const x = typeof v === 'bigint' ? Number(v) : v;
        observe(num.get(f.name)!, typeof x === 'number' && Number.isNaN(x) ? null : x);
      }
    }
    const t = q.out?.y;
    if (t) for (const o of plan.outputs) for (let row = 0; row < t.dims[0]; row++) observe(out.get(o.name)!, (t.data as Float32Array)[row * 2 + o.index]);
  }
  const wire = <T, W>(m: Map<string, T>, f: (s: T) => W) => Object.fromEntries([...m].map(([k, s]) => [k, f(s)]));
  return { features: wire(num, toWire), categorical: wire(cat, categoricalToWire), outputs: wire(out, toWire) };
}

describe('telemetry window, batched summarising', () => {
  it('reports exactly what summarising each sampled value at once reports, across full columns and a mid-window read', () => {
    const w = new TelemetryWindow(plan, 0);
    const rowsPerColumn = new SampleColumns(plan, new Map(), new Map(), new Map()).rows;
    // Batches of 1 to 150 rows: several fill a column (64 rows here) on their own, most do not.
    const reqs = Array.from({ length: 60 }, (_, i) => request(i % 7 === 0 ? 150 : 1 + (i % 5), i));
    expect(Math.max(...reqs.map((q) => q.feeds.x.dims[0]))).toBeGreaterThan(rowsPerColumn);
    // Latency of every request, more than one latency batch (256) of them; NaN and negatives are not latencies.
    const lat = Array.from({ length: 600 }, (_, i) => (i % 97 === 5 ? Number.NaN : i % 89 === 3 ? -1 : 0.01 + r() * 40));
    const sketch = new DDSketch({ alpha: SUMMARY_ALPHA });
    lat.forEach((l, i) => {
      const q = reqs[i % reqs.length];
      const sampled = i < reqs.length;
      w.request(l, sampled, sampled ? q.feeds : null, q.out, 0);
      if (Number.isFinite(l) && l >= 0) sketch.add(l);
    });
    const first = w.body();
    expect(first.sampled).toBe(60);
    expect(first.requests).toBe(600);
    expect(first.latency).toEqual(sketch.toJSON());
    expect(first.latency!.count).toBeLessThan(600);
    expect({ features: first.features, categorical: first.categorical, outputs: first.outputs }).toEqual(inline(reqs));
    expect(first.features['x[0]'].nulls).toBeGreaterThan(0);
    expect(first.features['x[0]'].invalid).toBeGreaterThan(0);
    expect(Object.keys(first.outputs)).toEqual(['y[0]', 'y[1]']);
    expect(first.outputs['y[1]'].invalid).toBeGreaterThan(0);
    expect(first.categorical['s[0]'].counts).toEqual(expect.objectContaining({ a: expect.any(Number), b: expect.any(Number) }));
    // Reading the body again changes nothing; later requests add to what was already summarised.
    expect(w.body()).toEqual(first);
    const more = Array.from({ length: 9 }, (_, i) => request(3, 100 + i));
    for (const q of more) w.request(1, true, q.feeds, q.out, 0);
    const second = w.body();
    expect({ features: second.features, categorical: second.categorical, outputs: second.outputs }).toEqual(inline([...reqs, ...more]));
  });

  it('keeps columns short for a wide model, so a window holds a bounded number of values', () => {
    const wide = { ...plan, outputs: [], features: Array.from({ length: 2000 }, (_, i) => ({ ...plan.features[0], name: `x${i}` })) };
    const summaries = new Map(wide.features.map((f) => [f.name, createSummary(f.edges)]));
    const c = new SampleColumns(wide, summaries, new Map(), new Map());
    expect(c.rows).toBe(8);
    const x: TensorData = { type: 'float32', dims: [20, 3], data: new Float32Array(60).fill(0.5) };
    c.add({ x }, null);
    c.summarise();
    expect(summaries.get('x0')!.count).toBe(20);
    expect(summaries.get('x1999')!.sum).toBe(10);
  });
});
