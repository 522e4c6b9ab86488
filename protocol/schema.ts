/**
 * A small schema language: one definition gives a validator, a TypeScript type
 * and a JSON Schema (for fastify routes and the OpenAPI document). Used for every
 * MQTT message, every API body and every options object, so that hub and agent
 * validate what they receive the same way (as mqtt.js does in `validations.ts`).
 *
 * Objects are closed: unknown keys are refused and named, so that a typo in a
 * config file or a message from a newer peer is visible instead of ignored.
 */
import { FleetcastError } from './errors.js';

export interface Issue { path: string; problem: string; kind: 'unknown' | 'invalid' }

export interface Schema<T> {
  readonly json: Record<string, unknown>;
  /** Returns the value (with defaults applied) or pushes issues and returns undefined. */
  check(value: unknown, path: string, issues: Issue[]): T | undefined;
  readonly optional?: boolean;
  readonly defaultValue?: T;
  /**
   * A cheap yes/no check with no path bookkeeping, for schemas of plain values. Arrays use it to
   * accept long numeric arrays (DDSketch buckets, bin counts) without building a path string per
   * element; on any failure they fall back to `check`, so issues are reported exactly as before.
   */
  readonly test?: (value: unknown) => boolean;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return typeof v;
}

export interface StringOpts { min?: number; max?: number; pattern?: RegExp; enum?: readonly string[] }
export function str<const E extends string = string>(opts: StringOpts & { enum?: readonly E[] } = {}): Schema<E> {
  const json: Record<string, unknown> = { type: 'string' };
  if (opts.min !== undefined) json.minLength = opts.min;
  if (opts.max !== undefined) json.maxLength = opts.max;
  if (opts.pattern) json.pattern = opts.pattern.source;
  if (opts.enum) json.enum = [...opts.enum];
  return {
    json,
    check(v, path, issues) {
      if (typeof v !== 'string') { issues.push({ path, problem: `expected a string, got ${describe(v)}`, kind: 'invalid' }); return undefined; }
      if (opts.min !== undefined && v.length < opts.min) { issues.push({ path, problem: `must be at least ${opts.min} characters`, kind: 'invalid' }); return undefined; }
      if (opts.max !== undefined && v.length > opts.max) { issues.push({ path, problem: `must be at most ${opts.max} characters`, kind: 'invalid' }); return undefined; }
      if (opts.pattern && !opts.pattern.test(v)) { issues.push({ path, problem: `must match ${opts.pattern.source}`, kind: 'invalid' }); return undefined; }
      if (opts.enum && !opts.enum.includes(v)) { issues.push({ path, problem: `must be one of ${opts.enum.join(', ')}`, kind: 'invalid' }); return undefined; }
      return v as E;
    },
  };
}

export interface NumberOpts { min?: number; max?: number; integer?: boolean }
export function num(opts: NumberOpts = {}): Schema<number> {
  const json: Record<string, unknown> = { type: opts.integer ? 'integer' : 'number' };
  if (opts.min !== undefined) json.minimum = opts.min;
  if (opts.max !== undefined) json.maximum = opts.max;
  const { min, max, integer } = opts;
  return {
    json,
    test: (v) => typeof v === 'number' && Number.isFinite(v) && (!integer || Number.isSafeInteger(v)) && (min === undefined || v >= min) && (max === undefined || v <= max),
    check(v, path, issues) {
      if (typeof v !== 'number' || !Number.isFinite(v)) { issues.push({ path, problem: `expected a finite number, got ${describe(v)}`, kind: 'invalid' }); return undefined; }
      if (opts.integer && !Number.isSafeInteger(v)) { issues.push({ path, problem: 'expected a safe integer', kind: 'invalid' }); return undefined; }
      if (opts.min !== undefined && v < opts.min) { issues.push({ path, problem: `must be ≥ ${opts.min}`, kind: 'invalid' }); return undefined; }
      if (opts.max !== undefined && v > opts.max) { issues.push({ path, problem: `must be ≤ ${opts.max}`, kind: 'invalid' }); return undefined; }
      return v;
    },
  };
}
export const int = (opts: Omit<NumberOpts, 'integer'> = {}): Schema<number> => num({ ...opts, integer: true });

export function bool(): Schema<boolean> {
  return {
    json: { type: 'boolean' },
    check(v, path, issues) {
      if (typeof v !== 'boolean') { issues.push({ path, problem: `expected a boolean, got ${describe(v)}`, kind: 'invalid' }); return undefined; }
      return v;
    },
  };
}

export function literal<const L extends string | number | boolean>(value: L): Schema<L> {
  return {
    json: { const: value },
    check(v, path, issues) {
      if (v !== value) { issues.push({ path, problem: `must be ${JSON.stringify(value)}`, kind: 'invalid' }); return undefined; }
      return value;
    },
  };
}

export function arr<T>(item: Schema<T>, opts: { min?: number; max?: number } = {}): Schema<T[]> {
  const json: Record<string, unknown> = { type: 'array', items: item.json };
  if (opts.min !== undefined) json.minItems = opts.min;
  if (opts.max !== undefined) json.maxItems = opts.max;
  return {
    json,
    check(v, path, issues) {
      if (!Array.isArray(v)) { issues.push({ path, problem: `expected an array, got ${describe(v)}`, kind: 'invalid' }); return undefined; }
      if (opts.min !== undefined && v.length < opts.min) { issues.push({ path, problem: `needs at least ${opts.min} items`, kind: 'invalid' }); return undefined; }
      if (opts.max !== undefined && v.length > opts.max) { issues.push({ path, problem: `allows at most ${opts.max} items`, kind: 'invalid' }); return undefined; }
      if (item.test && v.every(item.test)) return v.slice() as T[];
      const out: T[] = [];
      const before = issues.length;
      for (let i = 0; i < v.length; i++) {
        const r = item.check(v[i], `${path}[${i}]`, issues);
        if (issues.length > before) return undefined;
        out.push(r as T);
      }
      return out;
    },
  };
}

/** A map with string keys (key pattern optional) and values of one schema. */
export function record<T>(value: Schema<T>, opts: { keyPattern?: RegExp; maxKeys?: number } = {}): Schema<Record<string, T>> {
  const json: Record<string, unknown> = { type: 'object', additionalProperties: value.json };
  if (opts.maxKeys !== undefined) json.maxProperties = opts.maxKeys;
  return {
    json,
    check(v, path, issues) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) { issues.push({ path, problem: `expected an object, got ${describe(v)}`, kind: 'invalid' }); return undefined; }
      const keys = Object.keys(v);
      if (opts.maxKeys !== undefined && keys.length > opts.maxKeys) { issues.push({ path, problem: `allows at most ${opts.maxKeys} keys`, kind: 'invalid' }); return undefined; }
      // Keys come from Object.keys (own only); a null-prototype map keeps a key such as "__proto__" (a category a
      // device really saw) as plain data instead of a prototype.
      const out: Record<string, T> = Object.create(null);
      const before = issues.length;
      for (const k of keys) {
        if (opts.keyPattern && !opts.keyPattern.test(k)) { issues.push({ path: `${path}.${k}`, problem: `key must match ${opts.keyPattern.source}`, kind: 'invalid' }); continue; }
        const r = value.check((v as Record<string, unknown>)[k], `${path}.${k}`, issues);
        out[k] = r as T;
      }
      return issues.length > before ? undefined : out;
    },
  };
}

export function optional<T>(s: Schema<T>): Schema<T | undefined> & { optional: true } {
  // An absent key is fine; a present one must match.
  return { json: s.json, check: (v, path, issues) => (v === undefined ? undefined : s.check(v, path, issues)), optional: true };
}

/** Optional with a default: the parsed value always has it. */
export function withDefault<T>(s: Schema<T>, def: T): Schema<T> & { optional: true; defaultValue: T } {
  return {
    json: { ...s.json, default: def },
    optional: true,
    defaultValue: def,
    check(v, path, issues) { return v === undefined ? structuredClone(def) : s.check(v, path, issues); },
  };
}

export function nullable<T>(s: Schema<T>): Schema<T | null> {
  return {
    json: { anyOf: [s.json, { type: 'null' }] },
    check(v, path, issues) { return v === null ? null : s.check(v, path, issues); },
  };
}

/** The first schema that accepts the value wins; issues name every alternative's complaint. */
export function union<S extends Schema<unknown>[]>(...alts: S): Schema<Infer<S[number]>> {
  return {
    json: { anyOf: alts.map((a) => a.json) },
    check(v, path, issues) {
      const all: Issue[] = [];
      for (const a of alts) {
        const mine: Issue[] = [];
        const r = a.check(v, path, mine);
        if (mine.length === 0) return r as Infer<S[number]>;
        all.push(...mine);
      }
      issues.push({ path, problem: `matched no alternative: ${all.map((i) => `${i.path} ${i.problem}`).join('; ')}`, kind: 'invalid' });
      return undefined;
    },
  };
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K] extends { optional: true } ? (S[K] extends { defaultValue: unknown } ? never : K) : never }[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
export type ObjOf<S extends Shape> = { [K in RequiredKeys<S>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Infer<S[K]> };

export function obj<S extends Shape>(shape: S, opts: { description?: string } = {}): Schema<ObjOf<S>> & { shape: S } {
  const required = Object.entries(shape).filter(([, s]) => !s.optional).map(([k]) => k);
  const json: Record<string, unknown> = {
    type: 'object',
    properties: Object.fromEntries(Object.entries(shape).map(([k, s]) => [k, s.json])),
    additionalProperties: false,
  };
  if (required.length) json.required = required;
  if (opts.description) json.description = opts.description;
  return {
    json,
    shape,
    check(v, path, issues) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) { issues.push({ path, problem: `expected an object, got ${describe(v)}`, kind: 'invalid' }); return undefined; }
      const before = issues.length;
      const src = v as Record<string, unknown>;
      // Own properties only, on both sides: `k in shape` would let "__proto__", "constructor" or
      // "toString" through as known keys (Object.prototype has them), and src[k] would read inherited values.
      for (const k of Object.keys(src)) {
        if (!Object.hasOwn(shape, k)) issues.push({ path: path ? `${path}.${k}` : k, problem: 'is not a known key', kind: 'unknown' });
      }
      const out: Record<string, unknown> = {};
      for (const [k, s] of Object.entries(shape)) {
        const p = path ? `${path}.${k}` : k;
        const raw = Object.hasOwn(src, k) ? src[k] : undefined;
        if (raw === undefined && !s.optional) { issues.push({ path: p, problem: 'is required', kind: 'invalid' }); continue; }
        const r = s.check(raw, p, issues);
        if (r !== undefined) out[k] = r;
      }
      return issues.length > before ? undefined : (out as ObjOf<S>);
    },
  };
}

/** A string of hex digits of a given length (sha256 = 64). */
export const hex = (len: number): Schema<string> => str({ pattern: new RegExp(`^[0-9a-f]{${len}}$`) });
export const sha256Hex = (): Schema<string> => hex(64);
export const base64 = (max?: number): Schema<string> => str({ pattern: /^[A-Za-z0-9+/]*={0,2}$/, ...(max ? { max } : {}) });

export interface ParseOptions {
  /** Code for a value of the wrong shape. */
  code?: string;
  /** Code for an unknown key (options use PROTO_ERR_UNKNOWN_OPTION). */
  unknownCode?: string;
  what?: string;
  status?: number;
}

/** Validate or throw one FleetcastError naming every path at fault. */
export function parse<T>(schema: Schema<T>, value: unknown, opts: ParseOptions = {}): T {
  const issues: Issue[] = [];
  const r = schema.check(value, '', issues);
  if (issues.length === 0) return r as T;
  const unknown = issues.find((i) => i.kind === 'unknown');
  const code = unknown && opts.unknownCode ? opts.unknownCode : (opts.code ?? 'PROTO_ERR_INVALID_MESSAGE');
  const what = opts.what ?? 'message';
  const text = issues.slice(0, 5).map((i) => `${i.path || '(root)'} ${i.problem}`).join('; ');
  return fail(code, `Invalid ${what}: ${text}${issues.length > 5 ? ` (and ${issues.length - 5} more)` : ''}`, opts.status ?? 400, { issues: issues.slice(0, 20) });
}

function fail(code: string, message: string, status: number, details: Record<string, unknown>): never {
  throw new FleetcastError(code, message, status, details);
}

/** Options: validated once at start-up, unknown keys refused and named, defaults applied, then frozen. */
export function parseOptions<T>(schema: Schema<T>, value: unknown, what = 'options'): Readonly<T> {
  return deepFreeze(parse(schema, value ?? {}, { code: 'PROTO_ERR_INVALID_OPTION', unknownCode: 'PROTO_ERR_UNKNOWN_OPTION', what }));
}

export function deepFreeze<T>(v: T): Readonly<T> {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v as object)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

/** Any JSON value, bounded only by the message size limit; for fields a later schema version refines. */
export function json(): Schema<unknown> {
  return { json: {}, check(v) { return v; } };
}
