/**
 * The real drift path, end to end, for the drift-calibration benchmark and the
 * field-drift tests: a reference profile built as `bundle build --reference`
 * builds it (bundle-build/reference.ts), the agent's TelemetryCollector summarising
 * each window's values, its binary report bytes, the hub's TelemetryIngest
 * merging them into a TelemetryStore on a real SQLite file, and the drift
 * report (hub/drift/report.ts) over that window. Nothing is faked but the MQTT
 * hop (a recorder takes the bytes the collector would publish) and the clock;
 * the predict validator is not run: values reach the collector as validated
 * feeds, so only values a device would let through belong here (NaN in a
 * numeric input only with allowNaN; never null in a string input, which a
 * device refuses, AGENT_ERR_INPUT_TYPE).
 *
 * Every feature is its own rank-1 input (`[batch]`): numeric features float64
 * (so offsets of 10⁶ keep their digits), categorical ones strings, or float64
 * codes when `coded`.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { pino } from 'pino';
import type { BrokerClient } from '@fleetcast/agent/broker-client.js';
import type { TensorData } from '@fleetcast/agent/runtime.js';
import { TelemetryCollector } from '@fleetcast/agent/telemetry/collector.js';
import { computeDriftReport, type DriftReport } from '@fleetcast/hub/drift/report.js';
import type { FamilyThresholds } from '@fleetcast/hub/drift/judge-family.js';
import { openSqlite } from '@fleetcast/hub/db/open-migrated.js';
import { TelemetryIngest } from '@fleetcast/hub/telemetry/ingest.js';
import { TELEMETRY_DEFAULTS } from '@fleetcast/hub/telemetry/options.js';
import { TelemetryStore } from '@fleetcast/hub/telemetry/telemetry-store.js';
import { categoricalToWire, createCategorical, observeCategory, referenceProfile } from '@fleetcast/protocol/feature-summary.js';
import type { Manifest } from '@fleetcast/protocol/manifest.js';
import { parseReference } from '@fleetcast/protocol/telemetry.js';

/**
 * `coded`: a categorical feature carried as numeric codes in a float64 input (allowNaN as numeric inputs), the
 * only way a categorical value can be missing in the field (NaN); string inputs refuse null.
 */
export interface PathFeature { name: string; kind: 'numeric' | 'categorical'; coded?: boolean }

const WINDOW_MS = 60_000;
const THRESHOLDS: FamilyThresholds = { psi: 0.2, wasserstein: 0.1, minN: 500, alpha: 0.001 };

export class DriftPath {
  readonly bundleId: string;
  readonly manifest: Manifest;
  readonly #db: Database.Database;
  readonly #store: TelemetryStore;
  readonly #ingest: TelemetryIngest;
  #t = Date.UTC(2026, 0, 1);
  #seq = 0;
  /** Bytes of the last window's report(s). */
  lastBytes = 0;

  /**
   * `reference`: the reference rows per feature (null/NaN are missing values).
   * `frames: false` builds the profiles as bundles built before frames were (raw sketches).
   * `allowNaN` (default true): the numeric inputs' manifest flag. Values go to the collector without
   * the predict validator, so with it false only finite values may be given, as a device would let through.
   */
  constructor(dir: string, features: readonly PathFeature[], reference: Record<string, readonly unknown[]>, o: { frames?: boolean; bundleId?: string; allowNaN?: boolean } = {}) {
    const bundleId = o.bundleId ?? 'd'.repeat(64);
    this.bundleId = bundleId;
    const rows = reference[features[0].name].length;
    const ref = parseReference(JSON.parse(JSON.stringify({
      type: 'fleetcast.reference/v1', rows, bins: 10, outputs: [],
      features: features.map((f) => {
        if (f.kind === 'numeric') return { name: f.name, input: f.name, index: 0, kind: 'numeric', profile: referenceProfile(reference[f.name], 10, { frame: o.frames ?? true }) };
        const c = createCategorical(1024);
        for (const v of reference[f.name]) observeCategory(c, v);
        return { name: f.name, input: f.name, index: 0, kind: 'categorical', categories: categoricalToWire(c) };
      }),
    })));
    this.manifest = {
      // NaN reaches telemetry only through an input that allows it (the validator refuses it otherwise).
      inputs: features.map((f) => {
        const float = f.kind === 'numeric' || f.coded === true;
        return { name: f.name, type: float ? 'float64' : 'string', shape: ['batch'], ...(float && o.allowNaN !== false ? { allowNaN: true } : {}) };
      }),
      outputs: [],
      reference: ref,
    } as unknown as Manifest;
    this.#db = openSqlite(join(dir, `drift-path-${process.pid}-${Math.random().toString(36).slice(2)}.db`));
    this.#store = new TelemetryStore(this.#db);
    this.#ingest = new TelemetryIngest({
      store: this.#store, options: { ...TELEMETRY_DEFAULTS, bucketMs: WINDOW_MS }, now: () => this.#t + WINDOW_MS, logger: pino({ level: 'silent' }),
      manifest: (id) => (id === this.bundleId ? this.manifest : undefined), ringOf: () => 'default',
    });
  }

  /**
   * One window of one device: the collector summarises `values` (one array per
   * feature, all the same length; every value sampled), its report bytes go
   * through the hub's ingest, and the drift report of that window comes back.
   */
  async window(values: Record<string, readonly unknown[]>, thresholds: Partial<FamilyThresholds> = {}): Promise<DriftReport> {
    const from = this.#t;
    const sent: Buffer[] = [];
    const client = { connected: true, publish: async (_t: string, p: Buffer) => { sent.push(p); } } as unknown as BrokerClient;
    let now = from;
    const c = new TelemetryCollector({ deviceId: 'dev-field', client, options: { sampleRate: 1, windowMs: WINDOW_MS }, now: () => now, seqBase: this.#seq });
    const feeds: Record<string, TensorData> = {};
    for (const inp of this.manifest.inputs) {
      const v = values[inp.name];
      feeds[inp.name] = inp.type === 'float64'
        ? { type: 'float64', dims: [v.length], data: Float64Array.from(v, (x) => (typeof x === 'number' ? x : Number.NaN)) }
        : { type: 'string', dims: [v.length], data: v as string[] };
    }
    c.observe({ bundleId: this.bundleId, manifest: this.manifest }, feeds, null, 1);
    now = from + WINDOW_MS - 1;
    await c.flush();
    this.#seq += 1000;
    this.lastBytes = 0;
    for (const b of sent) {
      this.lastBytes += b.length;
      this.#ingest.handleDecoded(this.#ingest.decode(b));
    }
    const report = computeDriftReport({
      telemetry: this.#store, fineMs: WINDOW_MS, flush: () => this.#ingest.flush(),
      versionsOf: () => [{ id: this.bundleId, name: 'field', version: 1, manifest: this.manifest }],
    }, { bundle: { id: this.bundleId, name: 'field', version: 1, manifest: this.manifest }, since: from, until: from + WINDOW_MS, thresholds: { ...THRESHOLDS, ...thresholds } });
    this.#t += WINDOW_MS;
    return report;
  }

  close(): void {
    this.#ingest.close();
    this.#db.close();
  }
}
