/**
 * Telemetry and drift options of the hub (the `telemetry` key of the hub
 * options). Drift defaults (docs: hub/drift/judge.ts): PSI ≥ 0.2 or
 * normalised Wasserstein ≥ 0.1 is drift, once n ≥ 500 and the shift is also
 * statistically clear at a family-wise α of 0.1 % across the features compared
 * (Bonferroni); per bundle the manifest's `reference.thresholds` and per
 * rollout its gate may override them.
 */
import { int, num, obj, optional, parse, str, withDefault, type Infer } from '@fleetcast/protocol/schema.js';

const ms = (def: number, min = 1) => withDefault(int({ min, max: 10 * 365 * 86_400_000 }), def);

export const telemetryOptionsSchema = obj({
  /** Width of the fine buckets reports are merged into. */
  bucketMs: ms(60_000, 10),
  /** Fine buckets older than this fold into hour buckets. */
  rollupAfterMs: ms(2 * 3_600_000),
  /** Hour buckets older than this are deleted. */
  retentionMs: ms(30 * 86_400_000),
  /** Merged cells are written at least this often (one transaction per flush). */
  flushMs: ms(1_000, 10),
  /** …or as soon as this many cells are waiting. */
  maxPendingCells: withDefault(int({ min: 1, max: 10_000_000 }), 50_000),
  /**
   * Worker threads that decode and merge telemetry (hub/telemetry/ingest-pool.ts); 0 = on the hub's
   * own thread. Past one core's worth of reports (about 10,000 32-feature reports a second) give it
   * workers; figures then reach the database up to flushMs later.
   */
  ingestWorkers: withDefault(int({ min: 0, max: 16 }), 0),
  /** How often roll-up and retention run. */
  rollupIntervalMs: ms(60_000, 10),
  /** Drift is evaluated this often over the last `driftWindowMs`; 0 = only on request. */
  driftIntervalMs: ms(60_000, 0),
  /** Span of recent telemetry each drift evaluation compares with the reference. */
  driftWindowMs: ms(10 * 60_000, 10),
  /** Population stability index at or above which a feature drifts. */
  psi: withDefault(num({ min: 0 }), 0.2),
  /** Normalised Wasserstein distance at or above which a feature drifts. */
  wasserstein: withDefault(num({ min: 0 }), 0.1),
  /** Samples needed before a feature is judged at all. */
  minN: withDefault(int({ min: 1 }), 500),
  /** Family-wise false-alarm rate across the features of one comparison. */
  alpha: withDefault(num({ min: 0, max: 1 }), 0.001),
  /** Drift alerts are POSTed here as JSON (optional). */
  webhookUrl: optional(str({ pattern: /^https?:\/\/\S+$/, max: 2048 })),
  /** How long a webhook POST may take before it is abandoned (and logged). */
  webhookTimeoutMs: ms(5_000, 10),
});

type Parsed = Infer<typeof telemetryOptionsSchema>;
export type TelemetryOptions = Readonly<Required<Omit<Parsed, 'webhookUrl'>> & Pick<Parsed, 'webhookUrl'>>;

/** Every default, for the hub options' `telemetry` key when it is left out. */
export const TELEMETRY_DEFAULTS = parse(telemetryOptionsSchema, {}) as TelemetryOptions;
