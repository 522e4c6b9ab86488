/** Benchmark helpers: percentiles, timing, and one result line format for every benchmark. */

export interface BenchResult {
  name: string;
  /** What was measured on our side and on the baseline side, in the same run. */
  ours: Record<string, number>;
  baseline: Record<string, number>;
  /** Ratios ours / baseline (lower is better), each with the goal where there is one. */
  ratios: { name: string; value: number; goal?: number }[];
  notes?: string[];
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summarize(samples: number[]): { n: number; p50: number; p95: number; p99: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length) };
}

/** "fetching 12/40/95, verifying …": first, median and last of each phase's entry times. */
export function phaseSpread(times: Record<string, number[]>): string {
  return Object.entries(times).map(([p, t]) => {
    const s = [...t].sort((a, b) => a - b);
    return `${p} ${s[0].toFixed(0)}/${s[s.length >> 1].toFixed(0)}/${s[s.length - 1].toFixed(0)}`;
  }).join(', ');
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

export function printResult(r: BenchResult): void {
  const out = process.stdout;
  out.write(`\n## ${r.name}\n`);
  const keys = [...new Set([...Object.keys(r.ours), ...Object.keys(r.baseline)])];
  for (const k of keys) out.write(`  ${k.padEnd(28)} ours ${fmt(r.ours[k] ?? Number.NaN).padStart(10)}   baseline ${fmt(r.baseline[k] ?? Number.NaN).padStart(10)}\n`);
  for (const q of r.ratios) {
    const verdict = q.goal === undefined ? '' : q.value <= q.goal ? `  (goal ≤ ${q.goal}: met)` : `  (goal ≤ ${q.goal}: NOT met)`;
    out.write(`  ratio ${q.name.padEnd(22)} ${fmt(q.value, 3)}${verdict}\n`);
  }
  for (const n of r.notes ?? []) out.write(`  note: ${n}\n`);
}
