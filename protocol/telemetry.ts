/**
 * Telemetry on the wire, and the reference profile a bundle manifest carries
 * (DESIGN.md "Telemetry and drift"). Raw feature values never appear here
 * except in the rate-limited `debug` rows an operator turns on per device.
 *
 * The reference (manifest `reference`) names every profiled feature once, in
 * order: numeric features carry a ReferenceProfile (bin edges the agents count
 * over, counts, moments, a sketch), categorical ones their category counts.
 * Outputs (prediction drift) are profiled like numeric features by running the
 * model over the reference rows at build time.
 *
 * A telemetry report covers one window × one model version of one device.
 * Summaries are keyed by feature name; the hub counts bins against the edges of
 * the named bundle's reference, so edges never travel. A report with too many
 * features for MESSAGE_LIMITS.telemetry is split into parts (each part has its
 * own seq and its own subset of features; every field merges by addition, so
 * the hub needs no reassembly).
 */
import { ddSketchWireSchema } from './ddsketch.js';
import { protocolError } from './errors.js';
import { categoricalWireSchema, featureSummaryWireSchema, parseReferenceProfile, type CategoricalWire, type FeatureSummaryWire, type ReferenceProfile } from './feature-summary.js';
import { arr, int, literal, num, obj, optional, parse, record, sha256Hex, str, json, type Infer } from './schema.js';
import { DEVICE_ID_PATTERN } from './topics.js';

/** Most profiled features (inputs and outputs each) per bundle. */
export const MAX_PROFILED_FEATURES = 1024;
export const FEATURE_NAME = /^[A-Za-z0-9_.:\-[\]]{1,128}$/;

const featureName = str({ pattern: FEATURE_NAME });
const count = () => int({ min: 0 });

export const thresholdsSchema = obj({
  psi: optional(num({ min: 0 })),
  wasserstein: optional(num({ min: 0 })),
  minN: optional(int({ min: 1 })),
  /** Family-wise false-alarm rate across the features of one report (Bonferroni). */
  alpha: optional(num({ min: 0, max: 1 })),
  /** Least change of a feature's missing-value rate (absolute) that is drift. */
  missing: optional(num({ min: 0, max: 1 })),
});
export type ThresholdsInput = Infer<typeof thresholdsSchema>;

const referenceFeatureSchema = obj({
  name: featureName,
  /** The input tensor and the index along its last dimension. */
  input: str({ min: 1, max: 256 }),
  index: int({ min: 0 }),
  kind: str({ enum: ['numeric', 'categorical'] as const }),
  profile: optional(json()),
  categories: optional(categoricalWireSchema),
});

const referenceOutputSchema = obj({ name: featureName, output: str({ min: 1, max: 256 }), index: int({ min: 0 }), profile: json() });

export const referenceSchema = obj({
  type: literal('fleetcast.reference/v1'),
  /** Rows of reference data the profile was computed from. */
  rows: int({ min: 1 }),
  bins: int({ min: 2, max: 1025 }),
  features: arr(referenceFeatureSchema, { max: MAX_PROFILED_FEATURES }),
  outputs: arr(referenceOutputSchema, { max: MAX_PROFILED_FEATURES }),
  /** Per-bundle drift thresholds (a rollout may override them again). */
  thresholds: optional(thresholdsSchema),
});

export type ReferenceFeature =
  | { name: string; input: string; index: number; kind: 'numeric'; profile: ReferenceProfile }
  | { name: string; input: string; index: number; kind: 'categorical'; categories: CategoricalWire };
export interface ReferenceOutput { name: string; output: string; index: number; profile: ReferenceProfile }
export interface Reference {
  type: 'fleetcast.reference/v1';
  rows: number;
  bins: number;
  features: ReferenceFeature[];
  outputs: ReferenceOutput[];
  thresholds?: ThresholdsInput;
}

/** Validate a manifest's `reference` (shape, then each profile); throws PROTO_ERR_INVALID_MESSAGE. */
export function parseReference(value: unknown): Reference {
  const r = parse(referenceSchema, value, { what: 'reference profile' });
  const seen = new Set<string>();
  const once = (n: string) => {
    if (seen.has(n)) throw protocolError('PROTO_ERR_INVALID_MESSAGE', `Invalid reference profile: feature ${n} is listed twice; names must be unique`);
    seen.add(n);
  };
  const features: ReferenceFeature[] = r.features.map((f) => {
    once(f.name);
    if (f.kind === 'numeric') {
      if (f.profile === undefined) throw protocolError('PROTO_ERR_INVALID_MESSAGE', `Invalid reference profile: numeric feature ${f.name} has no profile`);
      return { name: f.name, input: f.input, index: f.index, kind: 'numeric', profile: parseReferenceProfile(f.profile) };
    }
    if (!f.categories) throw protocolError('PROTO_ERR_INVALID_MESSAGE', `Invalid reference profile: categorical feature ${f.name} has no categories`);
    return { name: f.name, input: f.input, index: f.index, kind: 'categorical', categories: f.categories };
  });
  const outputs = r.outputs.map((o) => { once(o.name); return { name: o.name, output: o.output, index: o.index, profile: parseReferenceProfile(o.profile) }; });
  return { type: r.type, rows: r.rows, bins: r.bins, features, outputs, ...(r.thresholds ? { thresholds: r.thresholds } : {}) };
}

// ---------------------------------------------------------------- telemetry report

const deviceId = str({ pattern: DEVICE_ID_PATTERN });
const millis = int({ min: 0 });

/** The raw rows of debug sampling: at most 100 rows of at most 256 named values. */
export const telemetryDebugSchema = arr(record(json(), { maxKeys: 256 }), { max: 100 });

export const telemetryReportSchema = obj({
  v: int({ min: 1, max: 1 }),
  deviceId,
  /** Strictly increasing per device across boots; the hub drops a seq it has passed (replays). */
  seq: int({ min: 0 }),
  /** The window, device clock (ms). */
  from: millis,
  to: millis,
  bundleId: sha256Hex(),
  /** Part p of `parts` of this window's report (features split across parts to bound size). */
  part: int({ min: 0, max: 63 }),
  parts: int({ min: 1, max: 64 }),
  /** Requests seen (all of them), and how many of those were sampled for features. */
  requests: count(),
  sampled: count(),
  /** Fraction of requests whose features are summarised. */
  sampleRate: num({ min: 0, max: 1 }),
  /** Latency in ms of every request that ran the model (only in part 0). */
  latency: optional(ddSketchWireSchema),
  /** Validation (and inference) failures by code. */
  failures: record(count(), { maxKeys: 64, keyPattern: /^[A-Z0-9_]{1,64}$/ }),
  /** Reports this device dropped from its offline buffer so far (cumulative this boot). */
  dropped: count(),
  features: record(featureSummaryWireSchema, { maxKeys: MAX_PROFILED_FEATURES, keyPattern: FEATURE_NAME }),
  categorical: record(categoricalWireSchema, { maxKeys: MAX_PROFILED_FEATURES, keyPattern: FEATURE_NAME }),
  outputs: record(featureSummaryWireSchema, { maxKeys: MAX_PROFILED_FEATURES, keyPattern: FEATURE_NAME }),
  /** Raw rows, only while an operator has debug sampling on for this device (rate-limited). */
  debug: optional(telemetryDebugSchema),
});
export type TelemetryReport = Infer<typeof telemetryReportSchema>;
export type { FeatureSummaryWire, CategoricalWire };
