/**
 * Summaries merged from 100 devices give the same figures as one summary over
 * all their data: the devices' windows go through the wire form and the hub's
 * cell merge (hub/telemetry/aggregate.ts), exactly as ingest does.
 */
import { describe, expect, it } from 'vitest';
import { TelemetryWindow } from '../../agent/telemetry/window.js';
import type { TensorData } from '../../agent/runtime.js';
import { DDSketch } from '../../protocol/ddsketch.js';
import { categoricalFromWire, fromWire, HARD_MAX_CATEGORIES, referenceProfile, type FeatureSummary } from '../../protocol/feature-summary.js';
import type { Manifest } from '../../protocol/manifest.js';
import { compilePlan } from '../../protocol/telemetry-plan.js';
import { mergeCell, type Cell } from '../../hub/telemetry/aggregate.js';
import { compareNumeric, judge } from '../../hub/drift/metrics.js';
import { prng, normal } from '../helpers/random.js';

const r = prng(5);
const n = normal(r);
const ref = referenceProfile(Array.from({ length: 4000 }, n), 10);
const manifest = {
  inputs: [{ name: 'x', type: 'float32', shape: ['batch', 2] }, { name: 'c', type: 'int64', shape: ['batch', 1] }],
  outputs: [{ name: 'y', type: 'float32', shape: ['batch', 1] }],
  reference: {
    type: 'fleetcast.reference/v1', rows: 4000, bins: 10,
    features: [
      { name: 'x[0]', input: 'x', index: 0, kind: 'numeric', profile: ref },
      { name: 'x[1]', input: 'x', index: 1, kind: 'numeric', profile: ref },
      { name: 'c[0]', input: 'c', index: 0, kind: 'categorical', categories: { counts: { 0: 10, 1: 10, 2: 10 }, other: 0, nulls: 0, invalid: 0 } },
    ],
    outputs: [],
  },
} as unknown as Manifest;
const plan = compilePlan('a'.repeat(64), manifest);
const num = (c: Cell | undefined) => (c as { s: FeatureSummary }).s;

function feeds(rows: number[][], cats: number[]): Record<string, TensorData> {
  return {
    x: { type: 'float32', dims: [rows.length, 2], data: Float32Array.from(rows.flat()) },
    c: { type: 'int64', dims: [cats.length, 1], data: BigInt64Array.from(cats.map(BigInt)) },
  };
}

/** The hub's cells from one window's wire body. */
function cells(w: TelemetryWindow): Map<string, Cell> {
  const b = JSON.parse(JSON.stringify(w.body())) as ReturnType<TelemetryWindow['body']>;
  const m = new Map<string, Cell>();
  for (const [k, v] of Object.entries(b.features)) m.set(`f:${k}`, { kind: 'f', s: fromWire(v, plan.features.find((f) => f.name === k)!.edges) });
  for (const [k, v] of Object.entries(b.categorical)) m.set(`c:${k}`, { kind: 'c', s: categoricalFromWire(v, HARD_MAX_CATEGORIES) });
  m.set('latency', { kind: 'latency', s: DDSketch.fromJSON(b.latency) });
  return m;
}

describe('merging 100 devices', () => {
  it('gives the figures of one summary over all the data (counts and bins exact, sketch quantiles exact, moments to rounding)', () => {
    const all = new TelemetryWindow(plan, 0);
    let merged: Map<string, Cell> | null = null;
    for (let d = 0; d < 100; d++) {
      const dev = new TelemetryWindow(plan, 0);
      // Devices differ: each its own offset and spread, a few missing values, its own categories.
      const rows = Array.from({ length: 50 }, (_, i) => [n() * (1 + d / 100) + d / 50, i === 7 && d % 3 === 0 ? NaN : n()]);
      const cats = rows.map((_, i) => (i + d) % 4);
      const f = feeds(rows, cats);
      for (const w of [dev, all]) w.request(1 + d / 10, true, f, null, 0);
      const c = cells(dev);
      if (!merged) merged = c;
      else for (const [k, v] of c) merged.set(k, mergeCell(merged.get(k)!, v));
    }
    const one = cells(all);
    for (const name of ['x[0]', 'x[1]']) {
      const a = num(merged!.get(`f:${name}`));
      const b = num(one.get(`f:${name}`));
      expect({ count: a.count, nulls: a.nulls, bins: a.bins, min: a.min, max: a.max }).toEqual({ count: b.count, nulls: b.nulls, bins: b.bins, min: b.min, max: b.max });
      expect(a.sum).toBeCloseTo(b.sum, 6);
      expect(a.sumSq).toBeCloseTo(b.sumSq, 4);
      const qs = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99];
      expect(a.sketch.quantiles(qs)).toEqual(b.sketch.quantiles(qs));
      // And the drift figures built on them.
      const fa = compareNumeric(ref, a);
      const fb = compareNumeric(ref, b);
      for (const k of ['psi', 'js', 'ks', 'wassersteinNorm', 'meanShift'] as const) expect(fa[k]!).toBeCloseTo(fb[k]!, 9);
      expect(judge(fa).verdict).toBe(judge(fb).verdict);
    }
    expect(num(one.get('f:x[1]')).nulls).toBe(34);
    const ca = (merged!.get('c:c[0]') as Extract<Cell, { kind: 'c' }>).s;
    const cb = (one.get('c:c[0]') as Extract<Cell, { kind: 'c' }>).s;
    expect(ca.counts).toEqual(cb.counts);
    const la = (merged!.get('latency') as Extract<Cell, { kind: 'latency' }>).s;
    const lb = (one.get('latency') as Extract<Cell, { kind: 'latency' }>).s;
    expect(la.count).toBe(100);
    expect(la.quantiles([0.5, 0.95, 0.99])).toEqual(lb.quantiles([0.5, 0.95, 0.99]));
    // Within the sketch's stated error of the exact p95 latency (1 + d/10 for d = 0…99 → rank 94 → 10.4).
    expect(Math.abs(la.quantile(0.95) - 10.4) / 10.4).toBeLessThanOrEqual(0.02 + 1e-12);
  });
});
