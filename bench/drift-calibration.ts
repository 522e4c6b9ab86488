/**
 * Drift calibration on the real path (drift-path.ts: agent collector → binary
 * report → hub ingest into SQLite → drift report), with seeded data:
 *
 * - false alarms per 1,000 feature-windows with no drift, per family: centred
 *   numeric features (N(0, σ), σ from 10⁻³ to 10³), offset ones (N(c, σ) with
 *   c from −10⁴ to 10⁶), categorical ones (100 and 1,000 equally likely
 *   categories);
 * - detection power for a 0.25σ and a 0.5σ mean shift and σ×1.5, per window
 *   and within 2 windows (an alarm in the first or the second), for centred
 *   and offset features;
 * at 500, 1,000 and 2,000 sampled values per window. The baseline is the same
 * data against profiles built as bundles built before frames are (raw
 * sketches): its false alarms at 1,000 values per window.
 *
 * Goals: ≤ 1 false alarm per 1,000 feature-windows in every family; power
 * ≥ 95 % within 2 windows for 0.25σ from 1,000 values per window.
 */
import { DriftPath, type PathFeature } from './drift-path.js';
import { benchDir } from './dirs.js';
import { nowMs, type BenchResult } from './lib.js';
import { rng } from '@fleetcast/bundle-build/onnx-build.js';

const REF_ROWS = 20_000;
const SIZES = [500, 1000, 2000];
const NULL_WINDOWS = 400;
const TRIALS = 40;

type Family = 'centred' | 'offset' | 'categorical';
/**
 * `missing`: fraction of values sent as null in the no-drift runs, reference and field alike (the missing-rate test
 * must not fire). Not in the power runs: at 500 values per window such a feature has fewer than minN = 500 finite
 * values and is "insufficient data" by design, which would measure minN, not power.
 */
interface Num { name: string; family: Family; c: number; s: number; missing?: number }
const NUMERIC: Num[] = [
  { name: 'c_1', family: 'centred', c: 0, s: 1, missing: 0.02 }, { name: 'c_1e-3', family: 'centred', c: 0, s: 1e-3 },
  { name: 'c_1e3', family: 'centred', c: 0, s: 1e3 }, { name: 'c_0.05', family: 'centred', c: 0, s: 0.05 },
  { name: 'o_300', family: 'offset', c: 300, s: 1, missing: 0.02 }, { name: 'o_1e3', family: 'offset', c: 1e3, s: 1e-3 },
  { name: 'o_1e6', family: 'offset', c: 1e6, s: 1 }, { name: 'o_-1e4', family: 'offset', c: -1e4, s: 1e3 },
];
const CATS = [{ name: 'k100', k: 100 }, { name: 'k1000', k: 1000 }];
const FEATURES: PathFeature[] = [...NUMERIC.map((f) => ({ name: f.name, kind: 'numeric' as const })), ...CATS.map((f) => ({ name: f.name, kind: 'categorical' as const }))];
const familyOf = new Map<string, Family>([...NUMERIC.map((f) => [f.name, f.family] as const), ...CATS.map((f) => [f.name, 'categorical' as Family] as const)]);

type Drift = { label: string; shift: number; stretch: number };
const DRIFTS: Drift[] = [{ label: '0.25σ', shift: 0.25, stretch: 1 }, { label: '0.5σ', shift: 0.5, stretch: 1 }, { label: 'σ×1.5', shift: 0, stretch: 1.5 }];

function generator(seed: number, withMissing: boolean) {
  const r = rng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return (count: number, d: Drift = { label: '', shift: 0, stretch: 1 }): Record<string, unknown[]> => {
    const out: Record<string, unknown[]> = {};
    for (const f of NUMERIC) out[f.name] = Array.from({ length: count }, () => (withMissing && f.missing && r() < f.missing ? null : f.c + f.s * (d.stretch * normal() + d.shift)));
    for (const f of CATS) out[f.name] = Array.from({ length: count }, () => `c${Math.floor(r() * f.k)}`);
    return out;
  };
}

type NullResult = Record<Family, { alarms: number; windows: number }> & { bytes: number };
async function nullRun(frames: boolean, n: number, windows: number, seed: number): Promise<NullResult> {
  const gen = generator(seed, true);
  const path = new DriftPath(benchDir('drift-calibration'), FEATURES, gen(REF_ROWS), { frames });
  const out: NullResult = { centred: { alarms: 0, windows: 0 }, offset: { alarms: 0, windows: 0 }, categorical: { alarms: 0, windows: 0 }, bytes: 0 };
  try {
    for (let w = 0; w < windows; w++) {
      const rep = await path.window(gen(n));
      out.bytes += path.lastBytes / windows;
      for (const row of rep.rows) {
        const f = out[familyOf.get(row.feature)!];
        f.windows++;
        if (row.verdict === 'drift') f.alarms++;
      }
    }
  } finally { path.close(); }
  return out;
}

/** Per family: fraction of (feature, trial) alarmed in window 1, and in window 1 or 2. */
async function powerRun(n: number, d: Drift, seed: number): Promise<Record<'centred' | 'offset', { first: number; within2: number }>> {
  const gen = generator(seed, false);
  const path = new DriftPath(benchDir('drift-calibration'), FEATURES, gen(REF_ROWS));
  const hits = { centred: { first: 0, within2: 0, total: 0 }, offset: { first: 0, within2: 0, total: 0 } };
  try {
    for (let t = 0; t < TRIALS; t++) {
      const a = await path.window(gen(n, d));
      const b = await path.window(gen(n, d));
      for (const f of NUMERIC) {
        const h = hits[f.family as 'centred' | 'offset'];
        const one = a.rows.find((r) => r.feature === f.name)!.verdict === 'drift';
        const two = b.rows.find((r) => r.feature === f.name)!.verdict === 'drift';
        h.total++;
        if (one) h.first++;
        if (one || two) h.within2++;
      }
    }
  } finally { path.close(); }
  const rate = (h: { first: number; within2: number; total: number }) => ({ first: h.first / h.total, within2: h.within2 / h.total });
  return { centred: rate(hits.centred), offset: rate(hits.offset) };
}

export async function benchDriftCalibration(): Promise<BenchResult> {
  const t0 = nowMs();
  const ours: Record<string, number> = {};
  const baseline: Record<string, number> = {};
  const ratios: BenchResult['ratios'] = [];
  const lines: string[] = [];
  const per1000 = (x: { alarms: number; windows: number }) => (1000 * x.alarms) / Math.max(x.windows, 1);
  const total: Record<Family, { alarms: number; windows: number }> = { centred: { alarms: 0, windows: 0 }, offset: { alarms: 0, windows: 0 }, categorical: { alarms: 0, windows: 0 } };
  lines.push('false alarms per 1,000 feature-windows, no drift (feature-windows):');
  for (const [i, n] of SIZES.entries()) {
    const r = await nullRun(true, n, NULL_WINDOWS, 100 + i);
    lines.push(`  n ${String(n).padStart(4)}: centred ${per1000(r.centred).toFixed(2)} (${r.centred.windows}), offset ${per1000(r.offset).toFixed(2)} (${r.offset.windows}), categorical ${per1000(r.categorical).toFixed(2)} (${r.categorical.windows}); report ${(r.bytes / 1024).toFixed(1)} KB`);
    ours[`report KB n=${n}`] = r.bytes / 1024;
    for (const f of ['centred', 'offset', 'categorical'] as const) {
      total[f].alarms += r[f].alarms;
      total[f].windows += r[f].windows;
      ours[`FA/1000 ${f} n=${n}`] = per1000(r[f]);
      ratios.push({ name: `FA/1000 ${f} n=${n} vs 1`, value: per1000(r[f]) / 1, goal: 1 });
    }
  }
  // One-sided 95 % upper bound of the rate from k alarms in N windows (k = 0: 1 − 0.05^(1/N), about 3/N).
  for (const f of ['centred', 'offset', 'categorical'] as const) {
    const { alarms, windows } = total[f];
    const bound = alarms === 0 ? 1 - 0.05 ** (1 / windows) : (alarms + 1.645 * Math.sqrt(alarms) + 1) / windows;
    lines.push(`  all sizes, ${f}: ${alarms} in ${windows} (95 % upper bound ${(1000 * bound).toFixed(2)} per 1,000)`);
  }
  const legacy = await nullRun(false, 1000, 40, 200);
  for (const f of ['centred', 'offset', 'categorical'] as const) baseline[`FA/1000 ${f} n=1000`] = per1000(legacy[f]);
  baseline['report KB n=1000'] = legacy.bytes / 1024;
  lines.push(`  baseline (profiles without a frame, as bundles built before), n 1000: centred ${per1000(legacy.centred).toFixed(1)}, offset ${per1000(legacy.offset).toFixed(1)}, categorical ${per1000(legacy.categorical).toFixed(1)}; report ${(legacy.bytes / 1024).toFixed(1)} KB`);
  lines.push(`power (alarm in window 1 / within 2 windows), ${TRIALS} trials × ${NUMERIC.length / 2} features per family:`);
  for (const [i, n] of SIZES.entries()) {
    for (const [j, d] of DRIFTS.entries()) {
      const p = await powerRun(n, d, 300 + 10 * i + j);
      lines.push(`  n ${String(n).padStart(4)} ${d.label.padEnd(6)}: centred ${(100 * p.centred.first).toFixed(1)} % / ${(100 * p.centred.within2).toFixed(1)} %, offset ${(100 * p.offset.first).toFixed(1)} % / ${(100 * p.offset.within2).toFixed(1)} %`);
      for (const f of ['centred', 'offset'] as const) ours[`power2 ${d.label} ${f} n=${n}`] = p[f].within2;
      if (d.label === '0.25σ' && n === 1000) {
        // Misses within 2 windows against the 5 % the goal allows (≤ 1 means ≥ 95 % power).
        for (const f of ['centred', 'offset'] as const) ratios.push({ name: `miss2 0.25σ ${f} n=1000 vs 5 %`, value: (1 - p[f].within2) / 0.05, goal: 1 });
      }
    }
  }
  lines.push(`took ${((nowMs() - t0) / 1000).toFixed(1)} s`);
  process.stdout.write(`\n${lines.join('\n')}\n`);
  return {
    name: 'drift calibration: agent collector → binary report → hub ingest (SQLite) → drift report; false alarms and power by family and window size',
    ours, baseline, ratios,
    notes: ['FA ratio: false alarms per 1,000 feature-windows over the goal of 1; miss2 ratio: misses within 2 windows over the 5 % allowed', 'baseline: same data against reference profiles without a frame (bundles built before), n = 1,000'],
  };
}
