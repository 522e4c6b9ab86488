/**
 * One window of one model version: mergeable summaries of the sampled
 * requests' features and outputs, latency of every request, failures by code.
 * Observing never throws: a device's odd input shows up as nulls/invalid.
 *
 * A sampled request only copies its values into per-feature columns
 * (sample-columns.ts); they are summarised a batch at a time, when a column is
 * full and when the window's body is read. Summarising 32 features inline
 * touched 32 summaries' bins and sketch stores per sampled request and evicted
 * the predict path's own data from the CPU caches, so the request after a
 * sampled one was slow too (bench telemetry-cost). Latencies of every request
 * wait in a small buffer the same way. Per feature and for latency, values are
 * summarised in request order, so every figure is the one inline summarising gave.
 */
import { DDSketch } from '@fleetcast/protocol/ddsketch.js';
import { categoricalToWire, createCategorical, createCategoricalFor, createSummary, SUMMARY_ALPHA, toWire, type CategoricalSummary, type FeatureSummary } from '@fleetcast/protocol/feature-summary.js';
import type { TelemetryReport } from '@fleetcast/protocol/telemetry.js';
import type { TensorData } from '../runtime.js';
import type { TelemetryPlan } from '@fleetcast/protocol/telemetry-plan.js';
import { converter, SampleColumns } from './sample-columns.js';

/** Latencies held before they are added to the sketch (2 KB). */
const LATENCY_BATCH = 256;

export type WindowBody = Omit<TelemetryReport, 'v' | 'deviceId' | 'seq' | 'part' | 'parts' | 'dropped' | 'sampleRate' | 'to'>;

export class TelemetryWindow {
  readonly plan: TelemetryPlan;
  readonly from: number;
  requests = 0;
  sampled = 0;
  readonly #latency = new DDSketch({ alpha: SUMMARY_ALPHA });
  readonly #lat = new Float64Array(LATENCY_BATCH);
  #latN = 0;
  readonly failures: Record<string, number> = Object.create(null);
  /** The summaries; they include every sampled value only once `body()` has run (values wait in #columns). */
  readonly numeric = new Map<string, FeatureSummary>();
  readonly categorical = new Map<string, CategoricalSummary>();
  readonly outputs = new Map<string, FeatureSummary>();
  readonly debug: Record<string, unknown>[] = [];
  readonly #columns: SampleColumns;

  constructor(plan: TelemetryPlan, from: number) {
    this.plan = plan;
    this.from = from;
    for (const f of plan.features) {
      // The reference's frame and categories: see PlannedFeature.
      if (f.kind === 'numeric') this.numeric.set(f.name, createSummary(f.edges, { alpha: SUMMARY_ALPHA }, f.frame));
      else this.categorical.set(f.name, f.categories ? createCategoricalFor(f.categories) : createCategorical());
    }
    for (const o of plan.outputs) this.outputs.set(o.name, createSummary(o.edges, { alpha: SUMMARY_ALPHA }, o.frame));
    this.#columns = new SampleColumns(plan, this.numeric, this.categorical, this.outputs);
  }

  /** A request that ran the model (latency always; features and outputs when sampled). */
  request(latencyMs: number, sampled: boolean, feeds: Readonly<Record<string, TensorData>> | null, out: Readonly<Record<string, TensorData>> | null, debugRows: number): void {
    this.requests++;
    if (Number.isFinite(latencyMs) && latencyMs >= 0) {
      this.#lat[this.#latN++] = latencyMs;
      if (this.#latN === LATENCY_BATCH) this.#addLatencies();
    }
    if (!sampled || !feeds) return;
    this.sampled++;
    this.#columns.add(feeds, out);
    if (this.debug.length < debugRows) {
      const row: Record<string, unknown> = {};
      for (const f of this.plan.features) {
        const t = feeds[f.input];
        const raw = (t?.data as ArrayLike<unknown> | undefined)?.[f.index];
        const conv = t ? converter(t) : null;
        const v = conv ? conv(raw) : raw;
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

  #addLatencies(): void {
    for (let i = 0; i < this.#latN; i++) this.#latency.add(this.#lat[i]);
    this.#latN = 0;
  }

  body(): WindowBody {
    this.#columns.summarise();
    this.#addLatencies();
    const features: TelemetryReport['features'] = {};
    const categorical: TelemetryReport['categorical'] = {};
    const outputs: TelemetryReport['outputs'] = {};
    for (const [k, s] of this.numeric) features[k] = toWire(s);
    for (const [k, s] of this.categorical) categorical[k] = categoricalToWire(s);
    for (const [k, s] of this.outputs) outputs[k] = toWire(s);
    return {
      from: this.from, bundleId: this.plan.bundleId, requests: this.requests, sampled: this.sampled,
      ...(this.#latency.count > 0 ? { latency: this.#latency.toJSON() } : {}),
      failures: { ...this.failures }, features, categorical, outputs,
      ...(this.debug.length ? { debug: this.debug } : {}),
    };
  }
}
