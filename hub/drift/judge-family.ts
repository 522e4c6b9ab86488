/**
 * The alarm rule for a family of comparisons (every feature and output of one
 * ring against one baseline). Drift tools' users complain of three false-alarm
 * sources; each has its own guard here:
 *
 * - Huge n: every feature "differs significantly" once n is large. The alarm
 *   rests on effect sizes (PSI ≥ psi, normalised W1 ≥ wasserstein; metrics.ts
 *   judge()), which do not grow with n.
 * - Tiny samples: effect sizes are noisy at small n. Below minN the verdict is
 *   'insufficient-data', never an alarm.
 * - Many features at once: with 32 features, one of them crosses an effect-size
 *   threshold by chance far more often than any single one. So an alarm also
 *   needs the shift to be statistically clear at a family-wise α: its KS (or,
 *   for categories, chi-squared) p-value must be below α/m, m the number of
 *   comparisons in the family (Bonferroni; conservative, never too lenient).
 *   Each comparison makes two tests (the distribution, and the missing-value
 *   rate, missing-rate.ts), so the per-test level is α / (2m): `perTestAlpha`,
 *   which the report and the rollout gate both call.
 *
 * Both conditions together: a large effect that is also not noise.
 */
import { DEFAULT_THRESHOLDS, judge, type Alarm, type CategoricalFigures, type NumericFigures, type Thresholds } from './metrics.js';

export interface FamilyThresholds extends Thresholds { alpha: number }
export type VerdictKind = 'drift' | 'ok' | 'insufficient-data';

export interface FamilyVerdict { verdict: VerdictKind; alarms: Alarm[]; pValue: number | null; significant: boolean; score: number; note?: string }

/** How far past its threshold the worst effect size is (1 = at the threshold); ranks rows worst first. */
export function score(f: NumericFigures | CategoricalFigures, t: Thresholds): number {
  const a = f.psi !== null && t.psi > 0 ? f.psi / t.psi : 0;
  const b = f.kind === 'numeric' && f.wassersteinNorm !== null && t.wasserstein > 0 ? f.wassersteinNorm / t.wasserstein : 0;
  const missing = t.missing ?? DEFAULT_THRESHOLDS.missing;
  const m = f.missing.seen >= t.minN && f.missing.referenceSeen >= t.minN && missing > 0 ? Math.abs(f.missing.rate - f.missing.referenceRate) / missing : 0;
  return Math.max(a, b, m);
}

/** The level each test of a family of `comparisons` rows is held to (two tests a row; see above). */
export function perTestAlpha(alpha: number, comparisons: number): number {
  return alpha / (2 * Math.max(comparisons, 1));
}

export function judgeInFamily(f: NumericFigures | CategoricalFigures, pValue: number | null, t: FamilyThresholds, family: number): FamilyVerdict {
  const v = judge(f, { psi: t.psi, wasserstein: t.wasserstein, minN: t.minN, missing: t.missing ?? DEFAULT_THRESHOLDS.missing });
  const s = score(f, t);
  const level = perTestAlpha(t.alpha, family);
  const distribution = pValue !== null && pValue < level;
  const missing = f.missing.pValue !== null && f.missing.pValue < level;
  const significant = distribution || missing;
  // Each alarm needs its own test to be clear: an effect size alone is not drift.
  const alarms = v.alarms.filter((a) => (a.metric === 'missingRate' ? missing : distribution));
  if (v.verdict === 'insufficient-data') return { verdict: v.verdict, alarms: [], pValue, significant, score: s, note: `n ${f.n} (baseline ${f.referenceN}) is below minN ${t.minN}` };
  if (v.verdict === 'drift' && alarms.length === 0) {
    const p = v.alarms.some((a) => a.metric !== 'missingRate') ? pValue : f.missing.pValue;
    return { verdict: f.n < t.minN ? 'insufficient-data' : 'ok', alarms: [], pValue, significant, score: s, note: `effect past threshold but p ${p?.toExponential(2)} ≥ α/(2m) = ${level.toExponential(2)}: not distinguishable from noise yet` };
  }
  return { verdict: v.verdict, alarms, pValue, significant, score: s };
}
