/**
 * One window of one model version: mergeable summaries of the sampled
 * requests' features and outputs, latency of every request, failures by code.
 * Observing never throws: a device's odd input shows up as nulls/invalid.
 */
import { DDSketch } from '../../protocol/ddsketch.js';
import { categoricalToWire, createCategorical, createSummary, observe, observeCategory, SUMMARY_ALPHA, toWire, type CategoricalSummary, type FeatureSummary } from '../../protocol/feature-summary.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import type { TensorData } from '../runtime.js';
import type { TelemetryPlan } from '../../protocol/telemetry-plan.js';

export type WindowBody = Omit<TelemetryReport, 'v' | 'deviceId' | 'seq' | 'part' | 'parts' | 'dropped' | 'sampleRate' | 'to'>;

export class TelemetryWindow {
  readonly plan: TelemetryPlan;
  readonly from: number;
  requests = 0;
  sampled = 0;
  readonly latency = new DDSketch({ alpha: SUMMARY_ALPHA });
  readonly failures: Record<string, number> = Object.create(null);
  readonly numeric = new Map<string, FeatureSummary>();
  readonly categorical = new Map<string, CategoricalSummary>();
  readonly outputs = new Map<string, FeatureSummary>();
  readonly debug: Record<string, unknown>[] = [];

  constructor(plan: TelemetryPlan, from: number) {
    this.plan = plan;
    this.from = from;
    for (const f of plan.features) {
      if (f.kind === 'numeric') this.numeric.set(f.name, createSummary(f.edges, { alpha: SUMMARY_ALPHA }));
      else this.categorical.set(f.name, createCategorical());
    }
    for (const o of plan.outputs) this.outputs.set(o.name, createSummary(o.edges, { alpha: SUMMARY_ALPHA }));
  }

  /** A request that ran the model (latency always; features and outputs when sampled). */
  request(latencyMs: number, sampled: boolean, feeds: Readonly<Record<string, TensorData>> | null, out: Readonly<Record<string, TensorData>> | null, debugRows: number): void {
    this.requests++;
    if (Number.isFinite(latencyMs) && latencyMs >= 0) this.latency.add(latencyMs);
    if (!sampled || !feeds) return;
    this.sampled++;
    for (const f of this.plan.features) {
      const t = feeds[f.input];
      if (!t) continue;
      const rows = t.dims.length === 0 ? 1 : t.dims[0];
      const d = t.data as ArrayLike<number | bigint | string>;
      for (let r = 0; r < rows; r++) {
        const v = d[r * f.width + f.index];
        if (f.kind === 'numeric') {
          // A NaN in a float feed is how a missing value arrives (JSON null), so it counts as null.
          const x = typeof v === 'bigint' ? Number(v) : v;
          observe(this.numeric.get(f.name)!, typeof x === 'number' && Number.isNaN(x) ? null : x);
        } else observeCategory(this.categorical.get(f.name)!, v);
      }
    }
    if (out) {
      for (const o of this.plan.outputs) {
        const t = out[o.output];
        if (!t) continue;
        const w = t.dims.length === 2 ? t.dims[1] : 1;
        const rows = t.dims.length === 0 ? 1 : t.dims[0];
        const d = t.data as ArrayLike<number>;
        for (let r = 0; r < rows; r++) observe(this.outputs.get(o.name)!, d[r * w + o.index]);
      }
    }
    if (this.debug.length < debugRows) {
      const row: Record<string, unknown> = {};
      for (const f of this.plan.features) {
        const v = (feeds[f.input]?.data as ArrayLike<unknown> | undefined)?.[f.index];
        row[f.name] = typeof v === 'bigint' ? Number(v) : typeof v === 'number' && !Number.isFinite(v) ? null : v;
      }
      this.debug.push(row);
    }
  }

  failure(code: string): void {
    this.requests++;
    const k = /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'AGENT_ERR_INTERNAL';
    this.failures[k] = (this.failures[k] ?? 0) + 1;
  }

  get empty(): boolean { return this.requests === 0; }

  body(): WindowBody {
    const features: TelemetryReport['features'] = {};
    const categorical: TelemetryReport['categorical'] = {};
    const outputs: TelemetryReport['outputs'] = {};
    for (const [k, s] of this.numeric) features[k] = toWire(s);
    for (const [k, s] of this.categorical) categorical[k] = categoricalToWire(s);
    for (const [k, s] of this.outputs) outputs[k] = toWire(s);
    return {
      from: this.from, bundleId: this.plan.bundleId, requests: this.requests, sampled: this.sampled,
      ...(this.latency.count > 0 ? { latency: this.latency.toJSON() } : {}),
      failures: { ...this.failures }, features, categorical, outputs,
      ...(this.debug.length ? { debug: this.debug } : {}),
    };
  }
}
