/**
 * The `--schema` file of `fleetcast bundle build`: what the ONNX file cannot
 * say about its inputs (feature names, value limits, whether NaN is allowed),
 * plus compatibility notes and a description. Merged into the shapes and types
 * read from the model; every mistake names the entry at fault.
 */
import { manifestSchema, type Manifest, type TensorSpec } from '@fleetcast/protocol/manifest.js';
import { arr, bool, num, obj, optional, parse, record, str, union } from '@fleetcast/protocol/schema.js';
import { bundleError } from '@fleetcast/bundles/errors.js';
import { readJsonFile } from '@fleetcast/bundles/file-io.js';
import type { ModelInfo } from './onnx-info.js';

export interface BundleSchemaFile {
  inputs?: Record<string, { features?: string[]; min?: number | number[]; max?: number | number[]; allowNaN?: boolean }>;
  compat?: Manifest['compat'];
  description?: string;
}

const limit = union(num(), arr(num(), { max: 65536 }));
const schemaFileSchema = obj({
  inputs: optional(record(obj({
    features: optional(arr(str({ min: 1, max: 128 }), { max: 65536 })),
    min: optional(limit),
    max: optional(limit),
    allowNaN: optional(bool()),
  }), { maxKeys: 256 })),
  compat: optional(manifestSchema.shape.compat),
  description: optional(str({ max: 4096 })),
});

export function parseSchemaFile(value: unknown, where = 'schema file'): BundleSchemaFile {
  try {
    return parse(schemaFileSchema, value, { what: where }) as BundleSchemaFile;
  } catch (e) {
    throw bundleError('BUNDLE_ERR_BAD_SCHEMA_FILE', (e as Error).message);
  }
}

export function readSchemaFile(path: string): BundleSchemaFile {
  return parseSchemaFile(readJsonFile(path, 'schema file', 'BUNDLE_ERR_BAD_SCHEMA_FILE'), path);
}

const NUMERIC = new Set(['float32', 'float64', 'float16', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64']);

function fail(detail: string): never {
  throw bundleError('BUNDLE_ERR_BAD_SCHEMA_FILE', detail);
}

/** Merge the schema file's per-input facts into the model's input specs. */
export function mergeSchema(info: ModelInfo, schema: BundleSchemaFile = {}): { inputs: TensorSpec[]; compat: Manifest['compat']; description?: string } {
  const byName = new Map(info.inputs.map((t) => [t.name, t]));
  for (const name of Object.keys(schema.inputs ?? {})) {
    if (!byName.has(name)) fail(`inputs.${name}: the model has no input "${name}" (its inputs are ${info.inputs.map((t) => t.name).join(', ')})`);
  }
  const inputs = info.inputs.map((t) => {
    const s = schema.inputs?.[t.name];
    if (!s) return { ...t };
    const at = `inputs.${t.name}`;
    const last = t.shape[t.shape.length - 1];
    // Features name the last dimension (manifest.ts TensorSpec.features).
    let width = typeof last === 'number' ? last : undefined;
    if (s.features) {
      if (t.shape.length === 0) fail(`${at}.features: "${t.name}" is a scalar and has no feature dimension`);
      if (width !== undefined && s.features.length !== width) fail(`${at}.features has ${s.features.length} names but "${t.name}" has ${width} features (shape [${t.shape.join(', ')}])`);
      if (new Set(s.features).size !== s.features.length) fail(`${at}.features has a name twice`);
      width = s.features.length;
    }
    if ((s.min !== undefined || s.max !== undefined) && !NUMERIC.has(t.type)) fail(`${at}: limits need a numeric input, "${t.name}" is ${t.type}`);
    for (const k of ['min', 'max'] as const) {
      const v = s[k];
      if (Array.isArray(v)) {
        if (width === undefined) fail(`${at}.${k}: per-feature limits need a fixed last dimension or a features list`);
        if (v.length !== width) fail(`${at}.${k} has ${v.length} values for ${width} features`);
      }
    }
    if (s.min !== undefined && s.max !== undefined) {
      const n = Math.max(Array.isArray(s.min) ? s.min.length : 1, Array.isArray(s.max) ? s.max.length : 1);
      for (let i = 0; i < n; i++) {
        const lo = Array.isArray(s.min) ? s.min[i] : s.min;
        const hi = Array.isArray(s.max) ? s.max[i] : s.max;
        if (lo > hi) fail(`${at}: min ${lo} is above max ${hi}${n > 1 ? ` for feature ${s.features?.[i] ?? i}` : ''}`);
      }
    }
    const out: TensorSpec = { ...t };
    if (s.features) out.features = [...s.features];
    if (s.min !== undefined) out.min = s.min;
    if (s.max !== undefined) out.max = s.max;
    if (s.allowNaN !== undefined) out.allowNaN = s.allowNaN;
    return out;
  });
  if (schema.compat?.opset !== undefined && schema.compat.opset !== info.opset) {
    fail(`compat.opset is ${schema.compat.opset} but the model imports opset ${info.opset}; leave it out, it is read from the model`);
  }
  const compat = { ...schema.compat, opset: info.opset };
  return { inputs, compat, ...(schema.description !== undefined ? { description: schema.description } : {}) };
}
