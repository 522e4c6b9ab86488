/**
 * A rollout's description: the rings, the gates of each ring, what to do when
 * a gate fails, the maintenance window and the rate. It comes from a rollout
 * file (JSON) or the command line and is validated here, once, into a frozen
 * plan; every fault is HUB_ERR_ROLLOUT_SPEC naming the field, and nothing is
 * changed. YAML files are not accepted (no YAML parser is installed; JSON is a
 * subset of YAML 1.2, so a JSON file is also valid YAML).
 *
 * Percentages are cumulative shares of the fleet, as in Mender's phased
 * deployments: `canary 1, early 10, broad 100` reaches 1%, then 10%, then all.
 */
import { parse as parseYaml } from 'yaml';
import { FleetcastError } from '@fleetcast/protocol/errors.js';
import { arr, bool, int, json, num, obj, optional, parse, str, union, type Infer } from '@fleetcast/protocol/schema.js';
import { DEVICE_ID_PATTERN } from '@fleetcast/protocol/topics.js';
import { hubError } from '../errors.js';
import { validCron } from './cron-window.js';

const duration = union(int({ min: 0, max: 30 * 86_400_000 }), str({ pattern: /^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$/ }));

const gatesSchema = obj({
  /** Devices installed and reporting before the ring is judged (capped at the ring's size). */
  minDevices: optional(int({ min: 0, max: 1_000_000 })),
  /** Installed / (installed + failed + timed out), 0..1. */
  minInstallSuccess: optional(num({ min: 0, max: 1 })),
  /** Errors / requests (NaN or Infinity outputs count as errors), 0..1. */
  maxErrorRate: optional(num({ min: 0, max: 1 })),
  /** p95 of the new bundle ≤ this × p95 of the previous bundle on the same devices. */
  maxLatencyRatio: optional(num({ min: 1, max: 1000 })),
  /** Drift ceiling; read from the registered DriftReader (gate-inputs.ts). */
  maxDrift: optional(num({ min: 0 })),
  /** Predictions served by the ring before health is judged. */
  minRequests: optional(int({ min: 0, max: 1e12 })),
  soak: optional(duration),
  /** A device with neither install nor failure after this long counts against the ring. */
  grace: optional(duration),
});
export type GatesInput = Infer<typeof gatesSchema>;

const ringSchema = obj({
  name: str({ pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/ }),
  percent: optional(num({ min: 0, max: 100 })),
  devices: optional(arr(str({ pattern: DEVICE_ID_PATTERN }), { min: 1, max: 100_000 })),
  /** Devices whose capabilities.tags hold every one of these. */
  tags: optional(arr(str({ min: 1, max: 64 }), { min: 1, max: 32 })),
  gates: optional(gatesSchema),
  rate: optional(json()),
});

export const rolloutFileSchema = obj({
  rings: optional(arr(ringSchema, { min: 1, max: 32 })),
  gates: optional(gatesSchema),
  policy: optional(obj({ onFailure: str({ enum: ['rollback', 'halt'] as const }) })),
  autoPromote: optional(bool()),
  window: optional(str({ max: 200 })),
  /** Devices per minute per ring ("N/min", a number, or {perMinute, growth}). */
  rate: optional(json()),
});
export type RolloutFile = Infer<typeof rolloutFileSchema>;

export interface Gates {
  minDevices: number;
  minInstallSuccess: number;
  maxErrorRate: number;
  maxLatencyRatio: number;
  maxDrift: number | null;
  minRequests: number;
  soakMs: number;
  graceMs: number;
}

export interface Rate { perMinute: number; growth: number }

export interface RingPlan {
  name: string;
  percent: number | null;
  devices: string[] | null;
  tags: string[] | null;
  gates: Gates;
  rate: Rate | null;
}

export interface RolloutPlan {
  rings: RingPlan[];
  onFailure: 'rollback' | 'halt';
  autoPromote: boolean;
  window: string | null;
}

export const DEFAULT_GATES: Gates = {
  minDevices: 1, minInstallSuccess: 0.95, maxErrorRate: 0.01, maxLatencyRatio: 2, maxDrift: null, minRequests: 50, soakMs: 10 * 60_000, graceMs: 30 * 60_000,
};
export const DEFAULT_RINGS = [{ name: 'canary', percent: 1 }, { name: 'early', percent: 10 }, { name: 'broad', percent: 100 }];

const specError = (detail: string): FleetcastError => hubError('HUB_ERR_ROLLOUT_SPEC', detail);

export function parseDuration(v: number | string, field: string): number {
  if (typeof v === 'number') return v;
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/.exec(v);
  if (!m) throw specError(`${field}: ${JSON.stringify(v)} is not a duration such as 30s, 10m or 2h`);
  const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as 'ms'];
  return Math.round(Number(m[1]) * unit);
}

export function parseRate(v: unknown, field: string): Rate | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'number' && v > 0 && Number.isFinite(v)) return { perMinute: v, growth: 1 };
  if (typeof v === 'string') {
    const m = /^([0-9]+(?:\.[0-9]+)?)\/min(?:\s*[x*]\s*([0-9]+(?:\.[0-9]+)?))?$/.exec(v.trim());
    if (m && Number(m[1]) > 0) return { perMinute: Number(m[1]), growth: m[2] ? Number(m[2]) : 1 };
  }
  if (typeof v === 'object' && v && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const extra = Object.keys(o).filter((k) => k !== 'perMinute' && k !== 'growth');
    if (extra.length === 0 && typeof o.perMinute === 'number' && o.perMinute > 0 && (o.growth === undefined || (typeof o.growth === 'number' && o.growth >= 1 && o.growth <= 10))) {
      return { perMinute: o.perMinute, growth: (o.growth as number | undefined) ?? 1 };
    }
  }
  throw specError(`${field}: ${JSON.stringify(v)?.slice(0, 80)} is not a rate; use "20/min", "5/min x2" (doubling each minute) or {"perMinute":5,"growth":2}`);
}

function gates(base: Gates, g: GatesInput | undefined, field: string): Gates {
  if (!g) return base;
  return {
    minDevices: g.minDevices ?? base.minDevices,
    minInstallSuccess: g.minInstallSuccess ?? base.minInstallSuccess,
    maxErrorRate: g.maxErrorRate ?? base.maxErrorRate,
    maxLatencyRatio: g.maxLatencyRatio ?? base.maxLatencyRatio,
    maxDrift: g.maxDrift ?? base.maxDrift,
    minRequests: g.minRequests ?? base.minRequests,
    soakMs: g.soak !== undefined ? parseDuration(g.soak, `${field}.soak`) : base.soakMs,
    graceMs: g.grace !== undefined ? parseDuration(g.grace, `${field}.grace`) : base.graceMs,
  };
}

/**
 * Parse a rollout file's text: JSON, or YAML 1.2 (core schema, so `on`/`yes`
 * stay strings; duplicate keys and more than a few aliases are refused, so a
 * "billion laughs" file cannot blow up). Either way the result goes through the
 * same closed schema.
 */
export function parseRolloutText(text: string, what = 'rollout file'): RolloutFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (jsonError) {
    try {
      value = parseYaml(text, { schema: 'core', uniqueKeys: true, maxAliasCount: 16, prettyErrors: false });
    } catch (e) {
      throw specError(`${what} is neither JSON (${(jsonError as Error).message}) nor YAML (${(e as Error).message.split('\n')[0]})`);
    }
  }
  return parseRolloutFile(value);
}

export function parseRolloutFile(value: unknown): RolloutFile {
  try {
    return parse(rolloutFileSchema, value, { code: 'HUB_ERR_ROLLOUT_SPEC', what: 'rollout description' });
  } catch (e) {
    const err = e as FleetcastError;
    throw hubError('HUB_ERR_ROLLOUT_SPEC', err.message, { ...err.details });
  }
}

/** The plan a rollout runs: defaults filled in, every ring checked. Overrides (CLI flags) win over the file. */
export function buildPlan(file: RolloutFile, over: { autoPromote?: boolean; window?: string; rate?: unknown } = {}): RolloutPlan {
  const base = gates(DEFAULT_GATES, file.gates, 'gates');
  const rate = parseRate(over.rate ?? file.rate, 'rate');
  const rings = (file.rings ?? (DEFAULT_RINGS as NonNullable<RolloutFile['rings']>)).map((r, i): RingPlan => {
    const field = `rings[${i}]`;
    const selectors = [r.percent !== undefined, r.devices !== undefined, r.tags !== undefined].filter(Boolean).length;
    if (selectors !== 1) throw specError(`${field} (${r.name}) must select devices by exactly one of percent, devices or tags`);
    const g = r.gates;
    return {
      name: r.name, percent: r.percent ?? null, devices: r.devices ?? null, tags: r.tags ?? null,
      gates: gates(base, g, `${field}.gates`),
      rate: r.rate !== undefined ? parseRate(r.rate, `${field}.rate`) : rate,
    };
  });
  const names = new Set<string>();
  let lastPct = 0;
  for (const r of rings) {
    if (names.has(r.name)) throw specError(`ring name ${JSON.stringify(r.name)} is used twice`);
    names.add(r.name);
    if (r.percent !== null) {
      if (r.percent < lastPct) throw specError(`ring ${r.name}: percentages are cumulative shares of the fleet and must not decrease (${r.percent} after ${lastPct})`);
      lastPct = r.percent;
    }
  }
  const window = over.window ?? file.window ?? null;
  if (window !== null && !validCron(window)) throw specError(`window ${JSON.stringify(window)} is not a cron expression (minute hour day-of-month month day-of-week, e.g. "* 2-4 * * *")`);
  return { rings, onFailure: file.policy?.onFailure ?? 'rollback', autoPromote: over.autoPromote ?? file.autoPromote ?? false, window };
}
