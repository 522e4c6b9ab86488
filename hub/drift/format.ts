/**
 * A drift report as a text table, worst first (the order the report already
 * has): `fleetcast drift report` prints it and the demo ends with it.
 */
import type { DriftReport } from './report.js';

const f = (v: number | null, d = 3) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(d));
const p = (v: number | null) => (v === null ? '-' : v < 1e-4 ? v.toExponential(0) : v.toFixed(4));

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function formatDriftReport(r: DriftReport, o: { limit?: number } = {}): string {
  const out: string[] = [];
  const t = r.thresholds;
  out.push(`drift ${r.name}@${r.version} (${r.bundleId.slice(0, 12)}…) from ${new Date(r.since).toISOString()} to ${new Date(Math.min(r.until, Date.now())).toISOString()}`);
  out.push(`thresholds: PSI ≥ ${t.psi} or W1/σ ≥ ${t.wasserstein} or missing rate ±${t.missing ?? 0.05}, n ≥ ${t.minN}, family-wise α ${t.alpha}; previous version: ${r.previous ? `v${r.previous.version}` : 'none with telemetry'}`);
  const noReference = `no reference profile: ${r.name}@${r.version} was built without \`bundle build --reference DATA\`, so nothing is compared with the training data${r.previous ? ` (only with v${r.previous.version})` : ''}; rebuild it with --reference to judge drift`;
  if (!r.hasReference) out.push(noReference);
  if (r.rings.length === 0) { out.push('no telemetry in this range'); return out.join('\n') + '\n'; }
  out.push(table(['RING', 'REQUESTS', 'SAMPLED', 'FAILURES', 'LATENCY p50/p95/p99 ms'], r.rings.map((g) => [
    g.ring, String(g.requests), String(g.sampled),
    Object.entries(g.failures).map(([k, v]) => `${k}:${v}`).join(' ') || '0',
    g.latencyMs ? `${f(g.latencyMs.p50, 2)} / ${f(g.latencyMs.p95, 2)} / ${f(g.latencyMs.p99, 2)}` : '-',
  ])).trimEnd());
  const rows = o.limit ? r.rows.slice(0, o.limit) : r.rows;
  out.push(table(['VERDICT', 'RING', 'FEATURE', 'VS', 'N', 'PSI', 'W1/σ', 'KS', 'CHI2', 'P', 'SHIFT/σ', 'MISSING (BASELINE)'], rows.map((x) => [
    x.verdict === 'drift' ? 'DRIFT' : x.verdict === 'ok' ? 'ok' : 'n<min',
    x.ring, `${x.kind === 'output' ? 'out ' : ''}${x.feature}`, x.baseline === 'reference' ? 'reference' : `v${x.baselineVersion}`,
    String(x.n), f(x.psi), f(x.wassersteinNorm), f(x.ks), f(x.chi2, 1), p(x.pValue), f(x.meanShift, 2),
    `${(x.missingRate * 100).toFixed(1)}% (${(x.baselineMissingRate * 100).toFixed(1)}%)`,
  ])).trimEnd());
  if (rows.length < r.rows.length) out.push(`… ${r.rows.length - rows.length} more rows (--json for all)`);
  const news = r.rows.filter((x) => x.newCategories.length).map((x) => `${x.ring} ${x.feature}: new categories ${x.newCategories.join(', ')}`);
  if (news.length) out.push(...new Set(news));
  out.push(r.drift ? `verdict: drift in ${r.rows.filter((x) => x.verdict === 'drift').length} comparison(s)`
    : r.rows.length === 0 ? `verdict: not judged (${r.hasReference ? 'no comparison had data' : 'no reference profile and no previous version with telemetry'})`
      : r.hasReference ? 'verdict: no drift' : `verdict: no drift against v${r.previous?.version}; not judged against a reference (none in the bundle)`);
  return out.join('\n') + '\n';
}
