/**
 * Drift that holds on field data, on the real path (bench/drift-path.ts): the
 * agent's collector, its binary report, the hub's ingest into SQLite, the
 * drift report. Each case is one an independent calibration found broken:
 * offset features alarming without drift (and missing real shifts), more than
 * 64 categories always alarming, a dead sensor never alarming, one huge value
 * refusing a whole report.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { DriftPath, type PathFeature } from '../../bench/drift-path.js';
import type { DriftRow } from '../../hub/drift/report.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { normal, prng } from '../helpers/random.js';

afterAll(() => cleanupTempDirs());

const REF_ROWS = 20_000;
const row = (rows: DriftRow[], name: string) => rows.find((r) => r.feature === name && r.baseline === 'reference')!;

describe('offset and scaled numeric features', () => {
  const offsets = [0, 100, 1e3, 1e6, -1e4];
  const scales = [1e-3, 1, 1e3];
  const combos = offsets.flatMap((c) => scales.map((s) => ({ c, s, name: `f_${String(c).replace('-', 'm')}_${String(s).replace('.', 'p').replace('-', 'm')}` })));
  const features: PathFeature[] = combos.map((x) => ({ name: x.name, kind: 'numeric' }));
  const n = normal(prng(71));
  const gen = (count: number, shift: number) => Object.fromEntries(combos.map((x) => [x.name, Array.from({ length: count }, () => x.c + x.s * (n() + shift))]));

  it('no feature alarms without drift at offsets 0, 100, 10³, 10⁶, −10⁴ and scales 10⁻³…10³, and KS stays at its noise level', async () => {
    const path = new DriftPath(tempDir(), features, gen(REF_ROWS, 0));
    try {
      for (let w = 0; w < 4; w++) {
        const r = await path.window(gen(1000, 0));
        for (const x of combos) {
          const f = row(r.rows, x.name);
          expect(f.n, x.name).toBe(1000);
          // Before frames: every reference value in one sketch bucket, KS = 1 and an alarm in most windows.
          expect(f.ks!, x.name).toBeLessThan(0.08);
          expect(f.wassersteinNorm!, x.name).toBeLessThan(0.1);
          expect(f.verdict, x.name).toBe('ok');
        }
      }
    } finally { path.close(); }
  }, 120_000);

  it('detects a 0.25σ mean shift at every offset and scale from 2,000 values', async () => {
    const path = new DriftPath(tempDir(), features, gen(REF_ROWS, 0));
    try {
      const r = await path.window(gen(2000, 0.25));
      for (const x of combos) {
        const f = row(r.rows, x.name);
        expect(f.meanShift!, x.name).toBeGreaterThan(0.15);
        expect(f.wassersteinNorm!, x.name).toBeGreaterThan(0.15);
        expect(f.verdict, x.name).toBe('drift');
      }
    } finally { path.close(); }
  }, 120_000);
});

describe('bundles built before frames', () => {
  it('still parse, plan no frame, and are judged on raw sketches as before (centred features fine, offsets coarse)', async () => {
    const n = normal(prng(76));
    const features: PathFeature[] = [{ name: 'centred', kind: 'numeric' }, { name: 'offset', kind: 'numeric' }];
    const gen = (count: number) => ({ centred: Array.from({ length: count }, n), offset: Array.from({ length: count }, () => 1e3 + n()) });
    const path = new DriftPath(tempDir(), features, gen(REF_ROWS), { frames: false });
    try {
      const profile = (path.manifest.reference as { features: { profile: Record<string, unknown> }[] }).features[0].profile;
      expect(profile.centre).toBeUndefined();
      const rep = await path.window(gen(1000));
      expect(row(rep.rows, 'centred').verdict).toBe('ok');
      expect(row(rep.rows, 'centred').ks!).toBeLessThan(0.08);
      // The documented limit of old bundles: an offset feature's sketch has no resolution (rebuild the bundle).
      expect(row(rep.rows, 'offset').n).toBe(1000);
    } finally { path.close(); }
  }, 120_000);
});

describe('categorical features with many categories', () => {
  const r = prng(72);
  const cats = (k: number, count: number) => Array.from({ length: count }, () => `c${Math.floor(r() * k)}`);

  it('100 and 1,000 equally likely categories with identical data do not alarm', async () => {
    const features: PathFeature[] = [{ name: 'k100', kind: 'categorical' }, { name: 'k1000', kind: 'categorical' }];
    const path = new DriftPath(tempDir(), features, { k100: cats(100, REF_ROWS), k1000: cats(1000, REF_ROWS) });
    try {
      for (let w = 0; w < 4; w++) {
        const rep = await path.window({ k100: cats(100, 1000), k1000: cats(1000, 1000) });
        for (const name of ['k100', 'k1000']) {
          const f = row(rep.rows, name);
          expect(f.n, name).toBe(1000);
          // The agent used to keep the first 64 categories it saw: PSI 2.45 on identical data.
          expect(f.psi!, name).toBeLessThan(0.2);
          expect(f.newCategories, name).toEqual([]);
          expect(f.verdict, name).toBe('ok');
        }
      }
    } finally { path.close(); }
  }, 120_000);

  it('a new category at 5 % is named and flagged as drift, with 100 or 1,000 reference categories', async () => {
    const features: PathFeature[] = [{ name: 'k100', kind: 'categorical' }, { name: 'k1000', kind: 'categorical' }];
    const path = new DriftPath(tempDir(), features, { k100: cats(100, REF_ROWS), k1000: cats(1000, REF_ROWS) });
    try {
      const withNew = (k: number) => cats(k, 1000).map((c, i) => (i % 20 === 0 ? 'brand-new' : c));
      const rep = await path.window({ k100: withNew(100), k1000: withNew(1000) });
      for (const name of ['k100', 'k1000']) {
        const f = row(rep.rows, name);
        expect(f.newCategories, name).toEqual(['brand-new']);
        expect(f.verdict, name).toBe('drift');
      }
    } finally { path.close(); }
  }, 120_000);
});

describe('a feature that goes missing', () => {
  it('alarms on the missing-value rate when a sensor sends only null or NaN, and not when the rate holds', async () => {
    const n = normal(prng(73));
    const features: PathFeature[] = [
      { name: 'temp', kind: 'numeric' }, { name: 'humid', kind: 'numeric' }, { name: 'mode', kind: 'categorical', coded: true }, { name: 'ok', kind: 'numeric' }, { name: 'gear', kind: 'categorical', coded: true },
    ];
    const some = (count: number) => Array.from({ length: count }, (_, i) => (i % 50 === 0 ? null : 290 + n()));
    // Categorical features go missing only as codes in a float input with allowNaN (a string input refuses
    // null): NaN in the field, null in the reference's CSV. Missing 10 % of the time in both: no change.
    const gear = (count: number) => Array.from({ length: count }, (_, i) => (i % 10 === 0 ? Number.NaN : i % 4));
    const path = new DriftPath(tempDir(), features, {
      temp: some(REF_ROWS), humid: some(REF_ROWS), ok: some(REF_ROWS), mode: Array.from({ length: REF_ROWS }, (_, i) => i % 3),
      gear: gear(REF_ROWS).map((x) => (Number.isNaN(x) ? null : x)),
    });
    try {
      const rep = await path.window({
        temp: Array.from({ length: 1000 }, () => null), humid: Array.from({ length: 1000 }, () => Number.NaN),
        mode: Array.from({ length: 1000 }, () => Number.NaN), ok: some(1000), gear: gear(1000),
      });
      for (const name of ['temp', 'humid', 'mode']) {
        const f = row(rep.rows, name);
        // n = 0 used to mean "insufficient data" and nothing else.
        expect(f.n, name).toBe(0);
        expect(f.verdict, name).toBe('drift');
        expect(f.missingRate, name).toBe(1);
        expect(f.alarms.map((a) => a.metric), name).toEqual(['missingRate']);
      }
      for (const [name, rate] of [['ok', 0.02], ['gear', 0.1]] as const) {
        const f = row(rep.rows, name);
        expect(f.missingRate, name).toBeCloseTo(rate, 2);
        expect(f.baselineMissingRate, name).toBeCloseTo(rate, 2);
        expect(f.verdict, name).toBe('ok');
      }
    } finally { path.close(); }
  }, 120_000);
});

describe('missing values the model cannot take', () => {
  it('a reference with 10 % missing values does not alarm on every window when the input refuses NaN (the field can never send one)', async () => {
    const n = normal(prng(79));
    const some = (count: number) => Array.from({ length: count }, (_, i) => (i % 10 === 0 ? null : 5 + n()));
    const full = (count: number) => Array.from({ length: count }, () => 5 + n());
    // allowNaN off: the device's validator refuses a request holding NaN/null (AGENT_ERR_INPUT_NAN), so every
    // value telemetry summarises is finite; the reference's missing values have no counterpart in the field.
    const path = new DriftPath(tempDir(), [{ name: 'x', kind: 'numeric' }], { x: some(REF_ROWS) }, { allowNaN: false });
    try {
      for (let w = 0; w < 3; w++) {
        const f = row((await path.window({ x: full(2000) })).rows, 'x');
        expect(f.n).toBe(2000);
        expect(f.alarms.map((a) => a.metric)).not.toContain('missingRate');
        expect(f.verdict).toBe('ok');
      }
    } finally { path.close(); }
  }, 120_000);
});

describe('missing values a categorical input cannot carry', () => {
  it('a string feature whose reference has 10 % missing values does not alarm on the missing rate (the field can never send one)', async () => {
    // The reference comes from a CSV with empty cells; a device refuses null in a string input
    // (AGENT_ERR_INPUT_TYPE), so every field value is a category. The rate test once alarmed on every window.
    const colour = (count: number, missing: boolean) => Array.from({ length: count }, (_, i) => (missing && i % 10 === 0 ? null : `c${i % 5}`));
    const path = new DriftPath(tempDir(), [{ name: 'colour', kind: 'categorical' }], { colour: colour(REF_ROWS, true) });
    try {
      for (let w = 0; w < 3; w++) {
        const f = row((await path.window({ colour: colour(2000, false) })).rows, 'colour');
        expect(f.n).toBe(2000);
        expect(f.alarms.map((a) => a.metric)).not.toContain('missingRate');
        expect(f.verdict).toBe('ok');
      }
    } finally { path.close(); }
  }, 120_000);
});

describe('one huge value', () => {
  it('a value of 10³⁰⁰ in one feature never refuses the report: every feature is still judged', async () => {
    const n = normal(prng(74));
    const features: PathFeature[] = [{ name: 'a', kind: 'numeric' }, { name: 'b', kind: 'numeric' }, { name: 'c', kind: 'numeric' }];
    const gen = (count: number) => ({ a: Array.from({ length: count }, n), b: Array.from({ length: count }, n), c: Array.from({ length: count }, () => 1e6 + n()) });
    const path = new DriftPath(tempDir(), features, gen(REF_ROWS));
    try {
      for (const huge of [1e300, -Number.MAX_VALUE, 2e154]) {
        const v = gen(1000);
        v.a[7] = huge;
        v.c[9] = huge;
        const rep = await path.window(v);
        for (const name of ['a', 'b', 'c']) {
          const f = row(rep.rows, name);
          expect(f.n, `${name} with ${huge}`).toBe(1000);
          // One value in 1,000 moves no distribution: no alarm, though the mean shift is enormous.
          expect(f.verdict, `${name} with ${huge}`).toBe('ok');
        }
      }
    } finally { path.close(); }
  }, 120_000);
});
