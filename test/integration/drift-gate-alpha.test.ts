/**
 * The rollout drift gate and the drift report apply one α rule: a row is
 * clear for the gate exactly when the report's own test at α/(2m) says so
 * (the gate used to divide α by the rows it could judge, more lenient whenever
 * some rows lacked data). On the real path (bench/drift-path.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DriftPath, type PathFeature } from '../../bench/drift-path.js';
import { perTestAlpha } from '../../hub/drift/judge-family.js';
import { driftReading, type DriftReport, type DriftRow } from '../../hub/drift/report.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { normal, prng } from '../helpers/random.js';

afterAll(() => cleanupTempDirs());

const REF_ROWS = 20_000;
const row = (rows: DriftRow[], name: string) => rows.find((r) => r.feature === name && r.baseline === 'reference')!;

describe('one α rule for the report and the rollout gate', () => {
  it('the gate counts a row as clear exactly when the report\'s own test at α/(2m) says so, however many rows lack data', async () => {
    const n = normal(prng(75));
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    const features: PathFeature[] = names.map((name) => ({ name, kind: 'numeric' }));
    const path = new DriftPath(tempDir(), features, Object.fromEntries(names.map((x) => [x, Array.from({ length: REF_ROWS }, n)])));
    try {
      // Five features with too little data, one with a modest shift: the report's family is 6 rows, the gate's judged rows 1.
      const few = (k: number) => Array.from({ length: 1000 }, (_, i) => (i < k ? n() : null));
      const rep = await path.window({ a: Array.from({ length: 700 }, () => n() + 0.12), b: few(100), c: few(100), d: few(100), e: few(100), f: few(100) }, { missing: 1 });
      const a = row(rep.rows, 'a');
      expect(rep.rows.filter((r) => r.verdict === 'insufficient-data').length).toBe(5);
      // Whatever the p-value came out as, the gate agrees with the report's own significance.
      expect(a.significant).toBe(a.pValue! < perTestAlpha(rep.thresholds.alpha, 6));
      expect(driftReading(rep).value).toBe(a.significant || a.verdict === 'drift' ? a.score : 0);
      // A row whose p lies between α/(2·6) and α/1 (the gate's old α over judged rows) is not clear.
      const between: DriftReport = { ...rep, rows: rep.rows.map((r) => (r.feature === 'a' ? { ...r, pValue: 5e-4, significant: false, verdict: 'ok' as const, score: 1.5 } : r)) };
      expect(5e-4).toBeLessThan(rep.thresholds.alpha / 1);
      expect(5e-4).toBeGreaterThan(perTestAlpha(rep.thresholds.alpha, 6));
      expect(driftReading(between)).toEqual({ value: 0, n: a.n });
    } finally { path.close(); }
  }, 120_000);
});
