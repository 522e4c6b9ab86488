/** Read a Prometheus text exposition with parse-prometheus-text-format (the shape of prom2json). */
import { createRequire } from 'node:module';

export interface Sample { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string; sum?: string }
export interface Family { name: string; type: string; metrics: Sample[] }
// A CommonJS package without types.
const parseText = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

/**
 * The families of an exposition, by name. parse-prometheus-text-format 1.1 folds a LABELLED histogram into
 * one unlabelled sample, so each histogram is also read untyped (its TYPE line dropped): its `_bucket`,
 * `_sum` and `_count` series then come out as families of their own, labels intact (one family per
 * label set, as the series alternate: merged here).
 */
export function parse(text: string): Map<string, Family> {
  const m = new Map(parseText(text).map((f) => [f.name, f]));
  const split = new Map<string, Family>();
  for (const f of parseText(text.replace(/^# TYPE \S+ histogram\n/gm, ''))) {
    if (!/_(bucket|sum|count)$/.test(f.name) || m.has(f.name)) continue;
    const have = split.get(f.name);
    if (have) have.metrics.push(...f.metrics); else split.set(f.name, f);
  }
  for (const [name, f] of split) m.set(name, f);
  return m;
}
/** The samples of a family whose labels include `labels`. */
export function samples(m: Map<string, Family>, name: string, labels: Record<string, string> = {}): Sample[] {
  const f = m.get(name);
  if (!f) throw new Error(`no metric family ${name} (have ${[...m.keys()].filter((k) => k.startsWith('fleetcast_')).join(', ')})`);
  return f.metrics.filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
}
/** The one value of a family with these labels (0 when absent). */
export function value(m: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const s = samples(m, name, labels);
  if (s.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${s.length} series`);
  return s.length ? Number(s[0].value) : 0;
}
