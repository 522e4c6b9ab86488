/**
 * Drift rehearsal: give each simulated device a distribution per feature and
 * shift chosen features on chosen devices from a chosen time — mean shift,
 * scale change, a new category, missing values — so an operator can watch the
 * drift report (and a rollout's drift gate) react before the field does.
 *
 * Features are named as in the bundle's reference profile (bundle-build/reference.ts):
 * the schema's feature names, or `input[i]`. Deterministic per seed.
 */
import { rng } from '@fleetcast/bundle-build/onnx-build.js';
import type { InputSpecLite } from './inputs.js';

export type FeatureDist =
  | { kind: 'normal'; mean: number; std: number }
  | { kind: 'uniform'; min: number; max: number }
  /** Category values (numbers for integer inputs) and their weights. */
  | { kind: 'categorical'; weights: Record<string, number> };

export interface Shift {
  feature: string;
  /** Device ids, a predicate, or every device. */
  devices: readonly string[] | ((deviceId: string) => boolean) | 'all';
  /** From this time on (the scenario clock, ms). */
  at: number;
  /** Added to the value (feature units); e.g. 0.5·σ. */
  mean?: number;
  /** Deviation from the distribution's centre multiplied by this. */
  scale?: number;
  /** A category the reference never saw, sent this share of the time. */
  category?: { value: string | number; share: number };
  /** Share of values sent as null (missing). */
  missing?: number;
}

export interface Scenario {
  /** Distribution of each feature; features not listed get N(0, 1) (integers: uniform 0…4). */
  features?: Record<string, FeatureDist>;
  /** Per-device overrides (e.g. a site whose sensor reads warmer). */
  deviceFeatures?: (deviceId: string) => Record<string, FeatureDist> | undefined;
  shifts?: Shift[];
}

function normal(r: () => number): number {
  // Box–Muller; 1 − u keeps the log finite.
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

function centre(d: FeatureDist): number {
  return d.kind === 'normal' ? d.mean : d.kind === 'uniform' ? (d.min + d.max) / 2 : 0;
}

function draw(d: FeatureDist, r: () => number): number | string {
  switch (d.kind) {
    case 'normal': return d.mean + d.std * normal(r);
    case 'uniform': return d.min + (d.max - d.min) * r();
    case 'categorical': {
      const entries = Object.entries(d.weights);
      const total = entries.reduce((t, [, w]) => t + w, 0);
      let x = r() * total;
      for (const [k, w] of entries) { x -= w; if (x < 0) return k; }
      return entries[entries.length - 1][0];
    }
  }
}

const applies = (s: Shift, id: string) => (s.devices === 'all' ? true : typeof s.devices === 'function' ? s.devices(id) : s.devices.includes(id));

export interface ScenarioGenerator {
  /** One feature value for a device at a time (null when missing). */
  value(deviceId: string, feature: string, now: number, integer?: boolean): number | string | null;
  /** A predict body for a model's inputs: `batch` rows of [batch, F] (or [batch]) inputs. */
  body(deviceId: string, inputs: readonly InputSpecLite[], now: number, batch?: number): { inputs: Record<string, unknown> };
}

export function scenarioGenerator(s: Scenario, seed = 1): ScenarioGenerator {
  const r = rng(seed);
  const value = (deviceId: string, feature: string, now: number, integer = false): number | string | null => {
    const d = s.deviceFeatures?.(deviceId)?.[feature] ?? s.features?.[feature] ?? (integer ? { kind: 'categorical', weights: { 0: 1, 1: 1, 2: 1, 3: 1, 4: 1 } } : { kind: 'normal', mean: 0, std: 1 });
    let v = draw(d, r);
    for (const sh of s.shifts ?? []) {
      if (sh.feature !== feature || now < sh.at || !applies(sh, deviceId)) continue;
      if (sh.missing !== undefined && r() < sh.missing) return null;
      if (sh.category && r() < sh.category.share) v = sh.category.value;
      if (typeof v === 'number') {
        if (sh.scale !== undefined) v = centre(d) + (v - centre(d)) * sh.scale;
        if (sh.mean !== undefined) v += sh.mean;
      }
    }
    return integer && typeof v === 'string' && /^-?[0-9]+$/.test(v) ? Number(v) : v;
  };
  return {
    value,
    body(deviceId, inputs, now, batch = 1) {
      const out: Record<string, unknown> = {};
      for (const spec of inputs) {
        const integer = /int/.test(spec.type);
        const width = spec.shape.length === 2 && typeof spec.shape[1] === 'number' ? spec.shape[1] : 1;
        const names = (spec as { features?: string[] }).features ?? Array.from({ length: width }, (_, i) => (spec.shape.length === 1 ? spec.name : `${spec.name}[${i}]`));
        const row = () => names.map((n) => value(deviceId, n, now, integer));
        out[spec.name] = spec.shape.length === 1 ? Array.from({ length: batch }, () => value(deviceId, spec.name, now, integer)) : Array.from({ length: batch }, row);
      }
      return { inputs: out };
    },
  };
}
