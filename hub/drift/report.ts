/**
 * The drift report of one bundle over a time range: for each ring, every
 * profiled feature and model output against the signed reference profile and
 * against the fleet still on the previous version, with the sample size each
 * figure rests on; latency percentiles from the merged latency sketch; rows
 * worst first. The CLI table, the API and the rollout gate all read this.
 */
import type { DDSketch } from '@fleetcast/protocol/ddsketch.js';
import { createCategorical, type CategoricalSummary, type FeatureSummary } from '@fleetcast/protocol/feature-summary.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { compilePlan, type TelemetryPlan } from '@fleetcast/protocol/telemetry-plan.js';
import { mergeCell, type Cell, type Meta } from '../telemetry/aggregate.js';
import type { TelemetryStore } from '../telemetry/telemetry-store.js';
import { compareSummaries, ksPValue } from './compare.js';
import { judgeInFamily, type FamilyThresholds, type VerdictKind } from './judge-family.js';
import { compareCategorical, compareNumeric, type Alarm, type CategoricalFigures, type NumericFigures } from './metrics.js';

export interface BundleRef { id: string; name: string; version: number; manifest: Manifest }

export interface DriftRow {
  ring: string;
  feature: string;
  kind: 'input' | 'output';
  type: 'numeric' | 'categorical';
  baseline: 'reference' | 'previous';
  baselineVersion: number;
  n: number;
  baselineN: number;
  psi: number | null;
  js: number | null;
  ks: number | null;
  wassersteinNorm: number | null;
  meanShift: number | null;
  chi2: number | null;
  pValue: number | null;
  nullRate: number;
  /** Missing-value rate (null, NaN, not finite) observed and in the baseline; its test's p-value. */
  missingRate: number;
  baselineMissingRate: number;
  missingPValue: number | null;
  newCategories: string[];
  verdict: VerdictKind;
  /** A test of this row passed the family's per-test α (judge-family.ts perTestAlpha); the rollout gate reads this. */
  significant: boolean;
  alarms: Alarm[];
  score: number;
  note?: string;
  /** Numeric rows against the reference: its bin edges and both sides' counts over them, to draw one over the other (the console's Drift page). */
  bins?: { edges: number[]; reference: number[]; current: number[] };
}

export interface RingSummary {
  ring: string;
  requests: number;
  sampled: number;
  reports: number;
  failures: Record<string, number>;
  latencyMs: { n: number; p50: number; p95: number; p99: number } | null;
}

export interface DriftReport {
  bundleId: string;
  name: string;
  version: number;
  since: number;
  until: number;
  thresholds: FamilyThresholds;
  previous: { bundleId: string; version: number } | null;
  rings: RingSummary[];
  rows: DriftRow[];
  drift: boolean;
  /**
   * Whether the bundle carries a signed reference profile (`bundle build --reference`). Without one nothing can be
   * compared against the reference: "no drift" would then mean "not judged", so the report says which.
   */
  hasReference: boolean;
}

export interface ReportDeps {
  telemetry: TelemetryStore;
  fineMs: number;
  /** Every published version of a model name. */
  versionsOf(name: string): BundleRef[];
  /** Write what the ingest still holds in memory, so a report sees every accepted report. */
  flush?(): void;
  /** Compiled plans are immutable per bundle; a cache saves parsing the reference on every report. */
  planOf?(bundle: BundleRef): TelemetryPlan;
}

type Cells = Map<string, Map<string, Cell>>;

function load(d: ReportDeps, bundleId: string, ring: string | undefined, since: number, until: number): Cells {
  const byRing: Cells = new Map();
  for (const [k, c] of d.telemetry.cells(bundleId, ring, since, until, d.fineMs)) {
    let m = byRing.get(k.ring);
    if (!m) byRing.set(k.ring, (m = new Map()));
    const have = m.get(k.key);
    m.set(k.key, have ? mergeCell(have, c) : c);
  }
  return byRing;
}

/** All rings of a version merged into one. */
function mergeRings(cells: Cells): Map<string, Cell> {
  const out = new Map<string, Cell>();
  for (const m of cells.values()) for (const [k, c] of m) { const have = out.get(k); out.set(k, have ? mergeCell(have, c) : c); }
  return out;
}

const num = (c: Cell | undefined) => (c && (c.kind === 'f' || c.kind === 'o') ? c.s : undefined);
const cat = (c: Cell | undefined) => (c && c.kind === 'c' ? c.s : undefined);

function latency(c: Cell | undefined): RingSummary['latencyMs'] {
  if (!c || c.kind !== 'latency' || c.s.count === 0) return null;
  const s = c.s as DDSketch;
  const [p50, p95, p99] = s.quantiles([0.5, 0.95, 0.99]);
  return { n: s.count, p50, p95, p99 };
}

export function computeDriftReport(d: ReportDeps, q: { bundle: BundleRef; ring?: string; since: number; until: number; thresholds: FamilyThresholds }): DriftReport {
  d.flush?.();
  const { bundle, thresholds: t } = q;
  const plan = d.planOf?.(bundle) ?? compilePlan(bundle.id, bundle.manifest);
  const cells = load(d, bundle.id, q.ring, q.since, q.until);
  const older = d.versionsOf(bundle.name).filter((b) => b.version < bundle.version).sort((a, b) => b.version - a.version);
  let previous: { ref: BundleRef; cells: Map<string, Cell>; plan: TelemetryPlan } | null = null;
  for (const b of older) {
    const c = load(d, b.id, undefined, q.since, q.until);
    if (c.size) { previous = { ref: b, cells: mergeRings(c), plan: d.planOf?.(b) ?? compilePlan(b.id, b.manifest) }; break; }
  }
  // Each version's summaries are in its own reference's frame.
  const frameIn = (p: TelemetryPlan | undefined, kind: DriftRow['kind'], name: string) =>
    (kind === 'input' ? p?.features.find((f) => f.name === name)?.frame : p?.outputs.find((o) => o.name === name)?.frame);
  const rows: DriftRow[] = [];
  const rings: RingSummary[] = [];
  for (const [ring, m] of [...cells].sort((a, b) => a[0].localeCompare(b[0]))) {
    const meta = m.get('meta');
    const ms: Meta | undefined = meta?.kind === 'meta' ? meta.s : undefined;
    rings.push({ ring, requests: ms?.requests ?? 0, sampled: ms?.sampled ?? 0, reports: ms?.reports ?? 0, failures: ms?.failures ?? {}, latencyMs: latency(m.get('latency')) });
    type Pending = Omit<DriftRow, 'verdict' | 'alarms' | 'score' | 'note' | 'significant'> & { figures: NumericFigures | CategoricalFigures };
    const vsRef: Pending[] = [];
    const vsPrev: Pending[] = [];
    const base = (feature: string, kind: DriftRow['kind'], type: DriftRow['type'], baseline: DriftRow['baseline'], f: NumericFigures | CategoricalFigures, pValue: number | null): Pending => ({
      ring, feature, kind, type, baseline, baselineVersion: baseline === 'reference' ? bundle.version : previous!.ref.version,
      n: f.n, baselineN: f.referenceN, psi: f.psi, js: f.js,
      ks: f.kind === 'numeric' ? f.ks : null, wassersteinNorm: f.kind === 'numeric' ? f.wassersteinNorm : null, meanShift: f.kind === 'numeric' ? f.meanShift : null,
      chi2: f.kind === 'categorical' ? f.chi2 : null, pValue, nullRate: f.nullRate,
      missingRate: f.missing.rate, baselineMissingRate: f.missing.referenceRate, missingPValue: f.missing.pValue, newCategories: f.kind === 'categorical' ? f.newCategories : [], figures: f,
    });
    const numericRow = (name: string, kind: DriftRow['kind'], obs: FeatureSummary, ref: Parameters<typeof compareNumeric>[0] | undefined) => {
      if (ref && ref.edges.length === obs.edges.length) {
        const f = compareNumeric(ref, obs);
        vsRef.push({ ...base(name, kind, 'numeric', 'reference', f, f.ks === null ? null : ksPValue(f.ks, f.n, f.referenceN)), bins: { edges: [...ref.edges], reference: [...ref.counts], current: [...obs.bins] } });
      }
      const p = num(previous?.cells.get(`${kind === 'input' ? 'f' : 'o'}:${name}`));
      if (p) {
        const f = compareSummaries(p, obs, frameIn(previous?.plan, kind, name), frameIn(plan, kind, name));
        vsPrev.push(base(name, kind, 'numeric', 'previous', f, f.ks === null ? null : ksPValue(f.ks, f.n, f.referenceN)));
      }
    };
    for (const f of plan.features) {
      if (f.kind === 'numeric') {
        const obs = num(m.get(`f:${f.name}`));
        const ref = plan.reference?.features.find((r) => r.name === f.name);
        const canMiss = inputCanMiss(bundle.manifest, f.input);
        const profile = ref?.kind === 'numeric' ? (canMiss ? ref.profile : { ...ref.profile, invalid: 0 }) : undefined;
        if (obs) numericRow(f.name, 'input', obs, profile);
      } else {
        const obs = cat(m.get(`c:${f.name}`));
        if (!obs) continue;
        const ref = plan.reference?.features.find((r) => r.name === f.name);
        if (ref?.kind === 'categorical') {
          const r = createCategorical(1024);
          Object.assign(r.counts, ref.categories.counts);
          r.other = ref.categories.other;
          // The reference's missing values, for the missing-rate test, when the field can send one at all.
          r.nulls = inputCanMiss(bundle.manifest, f.input) ? ref.categories.nulls : 0;
          r.invalid = ref.categories.invalid;
          const fig = compareCategorical(r, obs);
          vsRef.push(base(f.name, 'input', 'categorical', 'reference', fig, fig.pValue));
        }
        const p = cat(previous?.cells.get(`c:${f.name}`)) as CategoricalSummary | undefined;
        if (p) { const fig = compareCategorical(p, obs); vsPrev.push(base(f.name, 'input', 'categorical', 'previous', fig, fig.pValue)); }
      }
    }
    for (const o of plan.outputs) {
      const obs = num(m.get(`o:${o.name}`));
      if (obs) numericRow(o.name, 'output', obs, plan.reference?.outputs.find((r) => r.name === o.name)?.profile);
    }
    for (const family of [vsRef, vsPrev]) {
      for (const p of family) {
        const { figures, ...row } = p;
        const v = judgeInFamily(figures, p.pValue, t, family.length);
        rows.push({ ...row, verdict: v.verdict, alarms: v.alarms, score: v.score, significant: v.significant, ...(v.note ? { note: v.note } : {}) });
      }
    }
  }
  const rank = (r: DriftRow) => (r.verdict === 'drift' ? 2 : r.verdict === 'ok' ? 1 : 0);
  rows.sort((a, b) => rank(b) - rank(a) || b.score - a.score || a.feature.localeCompare(b.feature));
  return {
    bundleId: bundle.id, name: bundle.name, version: bundle.version, since: q.since, until: q.until, thresholds: t,
    previous: previous ? { bundleId: previous.ref.id, version: previous.ref.version } : null,
    rings, rows, drift: rows.some((r) => r.verdict === 'drift'),
    hasReference: plan.reference !== null,
  };
}

/**
 * Whether a device can ever bring a missing value of this input to telemetry. Only a float input with allowNaN
 * can: the device's validator refuses null and NaN otherwise (AGENT_ERR_INPUT_NAN), and a string or integer
 * input has no missing value at all (AGENT_ERR_INPUT_TYPE). The reference's missing values (a CSV's empty
 * cells) then have no field counterpart, and testing the rate against them alarmed on every window; the rate
 * is compared as 0 on both sides instead. Numeric and categorical features alike.
 */
function inputCanMiss(manifest: Manifest, input: string): boolean {
  const spec = manifest.inputs.find((i) => i.name === input);
  return spec !== undefined && spec.type.startsWith('float') && spec.allowNaN === true;
}

/**
 * The rollout drift gate's reading of a report: the worst score among rows
 * that are clear (drift, or a test passed at the report's own per-test α; the
 * gate once divided α by the rows it could judge instead, a second definition
 * that was more lenient whenever some rows lacked data); 0 when rows could be
 * judged and none is clear; null when none could be judged.
 */
export function driftReading(r: DriftReport): { value: number | null; n: number; feature?: string } {
  const judged = r.rows.filter((x) => x.verdict !== 'insufficient-data');
  if (judged.length === 0) return { value: null, n: r.rows.reduce((m, x) => Math.max(m, x.n), 0) };
  const worst = judged.filter((x) => x.verdict === 'drift' || x.significant).sort((a, b) => b.score - a.score)[0];
  return worst ? { value: worst.score, n: worst.n, feature: worst.feature } : { value: 0, n: Math.min(...judged.map((x) => x.n)) };
}
