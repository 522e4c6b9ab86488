/**
 * One merged cell of telemetry: (bundle, ring, key, time bucket). Keys:
 * `f:NAME` numeric feature, `c:NAME` categorical feature, `o:NAME` model
 * output, `latency` (DDSketch of ms), `meta` (requests, sampled, failures by
 * code, reports, devices' dropped reports). Every kind merges exactly by
 * addition (protocol/feature-summary.ts), so buckets roll up and ranges merge
 * in any order.
 */
import { DDSketch } from '@fleetcast/protocol/ddsketch.js';
import { categoricalFromWire, categoricalToWire, fromWire, mergeCategorical, mergeInto, toWire, HARD_MAX_CATEGORIES, type CategoricalSummary, type FeatureSummary } from '@fleetcast/protocol/feature-summary.js';

export interface Meta { requests: number; sampled: number; reports: number; dropped: number; failures: Record<string, number> }

export type Cell =
  | { kind: 'f' | 'o'; s: FeatureSummary }
  | { kind: 'c'; s: CategoricalSummary }
  | { kind: 'latency'; s: DDSketch }
  | { kind: 'meta'; s: Meta };

export const emptyMeta = (): Meta => ({ requests: 0, sampled: 0, reports: 0, dropped: 0, failures: {} });

export function kindOf(key: string): Cell['kind'] {
  if (key === 'latency' || key === 'meta') return key;
  return key[0] as 'f' | 'o' | 'c';
}

/** Merge b into a (a is mutated for f/o/latency/meta; categorical returns a new one). */
export function mergeCell(a: Cell, b: Cell): Cell {
  if (a.kind !== b.kind) return a;
  switch (a.kind) {
    case 'f': case 'o': mergeInto(a.s, (b as typeof a).s); return a;
    case 'c': return { kind: 'c', s: mergeCategorical(a.s, (b as typeof a).s) };
    case 'latency': a.s.merge((b as typeof a).s); return a;
    case 'meta': {
      const m = (b as typeof a).s;
      a.s.requests += m.requests; a.s.sampled += m.sampled; a.s.reports += m.reports; a.s.dropped += m.dropped;
      for (const [k, v] of Object.entries(m.failures)) a.s.failures[k] = (a.s.failures[k] ?? 0) + v;
      return a;
    }
  }
}

export function cellToJson(c: Cell): string {
  switch (c.kind) {
    case 'f': case 'o': return JSON.stringify({ e: c.s.edges, w: toWire(c.s) });
    case 'c': return JSON.stringify(categoricalToWire(c.s));
    case 'latency': return JSON.stringify(c.s.toJSON());
    case 'meta': return JSON.stringify(c.s);
  }
}

/** Rows were written by cellToJson; they are still validated (a hand-edited database must not crash a report). */
export function cellFromJson(key: string, text: string): Cell {
  const v = JSON.parse(text) as Record<string, unknown>;
  const kind = kindOf(key);
  switch (kind) {
    case 'f': case 'o': return { kind, s: fromWire(v.w, v.e as number[]) };
    case 'c': return { kind, s: categoricalFromWire(v, HARD_MAX_CATEGORIES) };
    case 'latency': return { kind, s: DDSketch.fromJSON(v) };
    case 'meta': return { kind, s: { ...emptyMeta(), ...(v as Partial<Meta>), failures: { ...(v.failures as Record<string, number>) } } };
  }
}

export function cloneCell(c: Cell): Cell {
  return cellFromJson(c.kind === 'f' || c.kind === 'o' || c.kind === 'c' ? `${c.kind}:x` : c.kind, cellToJson(c));
}
