/**
 * `fleetcast bundle build --reference DATA`: the reference profile that goes
 * into the signed manifest (protocol/telemetry.ts). DATA is CSV (a header row
 * naming the features) or JSON Lines (one object per row, keys named like the
 * features, or an input name holding that row's array). Features are named by
 * the schema's `features` list or `input[i]` (a `[N, 16]` input is 16
 * features); a one-wide input may also be named by the input's own name.
 * Float inputs are numeric; integer, bool and string inputs are categorical.
 * Outputs are profiled by running the model over the reference rows
 * (onnxruntime-node), so prediction drift has a reference too.
 */
import { readFileSync } from 'node:fs';
import ort from 'onnxruntime-node';
import { categoricalToWire, createCategorical, observeCategory, referenceProfile } from '@fleetcast/protocol/feature-summary.js';
import type { TensorSpec } from '@fleetcast/protocol/manifest.js';
import { parseReference, type Reference, type ReferenceFeature, type ReferenceOutput, type ThresholdsInput } from '@fleetcast/protocol/telemetry.js';
import { bundleError, ioError } from '@fleetcast/bundles/errors.js';
import { floatToHalf, halfToFloat } from '@fleetcast/protocol/float16.js';
import { tensorOf } from './json-tensor.js';
import { outputValues } from '@fleetcast/bundles/smoke.js';

export type Row = Record<string, unknown>;
const MAX_ROWS = 1_000_000;
/** Rows run through the model for the output profile: enough for deciles, cheap at build time. */
const MAX_OUTPUT_ROWS = 20_000;

export interface FeatureSlot { name: string; input: string; index: number; kind: 'numeric' | 'categorical' }

/** The named features of the inputs telemetry watches: rank 1 or 2 with a known width. */
export function featureSlots(inputs: readonly TensorSpec[]): FeatureSlot[] {
  const out: FeatureSlot[] = [];
  for (const t of inputs) {
    const kind = t.type.startsWith('float') ? 'numeric' : 'categorical';
    if (t.shape.length === 1) { out.push({ name: t.name, input: t.name, index: 0, kind }); continue; }
    if (t.shape.length !== 2) continue;
    const last = t.shape[1];
    const width = t.features?.length ?? (typeof last === 'number' ? last : undefined);
    if (width === undefined || width > 1024) continue;
    for (let i = 0; i < width; i++) out.push({ name: t.features?.[i] ?? `${t.name}[${i}]`, input: t.name, index: i, kind });
  }
  return out;
}

/** Output columns profiled for prediction drift: rank-2 outputs with a fixed width, named `out[i]`. */
export function outputSlots(outputs: readonly TensorSpec[]): { name: string; output: string; index: number }[] {
  const out: { name: string; output: string; index: number }[] = [];
  for (const t of outputs) {
    if (!t.type.startsWith('float')) continue;
    const w = t.shape.length === 2 && typeof t.shape[1] === 'number' ? t.shape[1] : t.shape.length === 1 ? 1 : undefined;
    if (w === undefined || w > 256) continue;
    for (let i = 0; i < w; i++) out.push({ name: t.features?.[i] ?? (t.shape.length === 1 ? t.name : `${t.name}[${i}]`), output: t.name, index: i });
  }
  return out;
}

function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') quoted = false; else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { cells.push(cur); cur = ''; } else cur += ch;
  }
  cells.push(cur);
  return cells;
}

function csvValue(s: string): unknown {
  const t = s.trim();
  if (t === '' || t.toLowerCase() === 'null' || t.toLowerCase() === 'na') return null;
  const n = Number(t);
  return Number.isFinite(n) || t === 'NaN' ? n : t;
}

/** Parse reference rows (CSV with a header row, or JSON Lines); throws BUNDLE_ERR_BAD_REFERENCE naming the line. */
export function parseReferenceData(text: string, format: 'csv' | 'jsonl'): Row[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const bad = (line: number, why: string): never => { throw bundleError('BUNDLE_ERR_BAD_REFERENCE', `line ${line}: ${why}`); };
  if (lines.length - (format === 'csv' ? 1 : 0) > MAX_ROWS) bad(lines.length, `more than ${MAX_ROWS} rows; sample the reference data first`);
  const rows: Row[] = [];
  if (format === 'csv') {
    if (lines.length < 2) bad(1, 'a CSV reference needs a header row and at least one data row');
    const header = splitCsvLine(lines[0]).map((h) => h.trim());
    if (new Set(header).size !== header.length) bad(1, 'a column name appears twice');
    for (let i = 1; i < lines.length; i++) {
      const cells = splitCsvLine(lines[i]);
      if (cells.length !== header.length) bad(i + 1, `${cells.length} cells, the header has ${header.length}`);
      const row: Row = {};
      header.forEach((h, j) => { row[h] = csvValue(cells[j]); });
      rows.push(row);
    }
  } else {
    lines.forEach((l, i) => {
      let v: unknown;
      try { v = JSON.parse(l); } catch { bad(i + 1, 'not valid JSON'); }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(i + 1, 'each line must be a JSON object');
      rows.push(v as Row);
    });
  }
  if (rows.length === 0) bad(1, 'no rows');
  return rows;
}

export function readReferenceFile(path: string): Row[] {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) { throw ioError('cannot read --reference', path, e); }
  const format = /\.(jsonl|ndjson|json)$/i.test(path) || text.trimStart().startsWith('{') ? 'jsonl' : 'csv';
  return parseReferenceData(text, format);
}

/** The value of a feature in a row: by feature name, or by input name (array row, or a scalar for a one-wide input). */
function valueOf(row: Row, s: FeatureSlot, width: number): unknown {
  if (s.name in row) return row[s.name];
  const v = row[s.input];
  if (Array.isArray(v)) return v[s.index];
  if (width === 1 && v !== undefined) return v;
  return undefined;
}

export interface ReferenceOptions { bins?: number; thresholds?: ThresholdsInput; outputs?: boolean }

/** Compute the reference for a model's inputs (and, by running the model, its outputs). */
export async function buildReference(rows: Row[], model: Uint8Array, inputs: readonly TensorSpec[], outputs: readonly TensorSpec[], o: ReferenceOptions = {}): Promise<Reference> {
  const bins = o.bins ?? 10;
  if (!Number.isInteger(bins) || bins < 2 || bins > 1025) throw bundleError('BUNDLE_ERR_BAD_OPTION', `--reference-bins must be an integer from 2 to 1025, got ${bins}`);
  const slots = featureSlots(inputs);
  if (slots.length === 0) throw bundleError('BUNDLE_ERR_BAD_REFERENCE', 'the model has no input telemetry can profile (rank-1 or rank-2 inputs with a known width)');
  const widthOf = new Map(inputs.map((t) => [t.name, slots.filter((s) => s.input === t.name).length]));
  const known = new Set([...slots.map((s) => s.name), ...inputs.map((t) => t.name)]);
  const unknown = Object.keys(rows[0]).filter((k) => !known.has(k));
  if (unknown.length) throw bundleError('BUNDLE_ERR_BAD_REFERENCE', `column ${JSON.stringify(unknown[0])} names no feature; features are ${slots.slice(0, 8).map((s) => s.name).join(', ')}${slots.length > 8 ? ', …' : ''} (name them with --schema)`);
  const features: ReferenceFeature[] = slots.map((s) => {
    const values = rows.map((r) => valueOf(r, s, widthOf.get(s.input)!));
    if (values.every((v) => v === undefined)) throw bundleError('BUNDLE_ERR_BAD_REFERENCE', `no column for feature ${s.name}; every feature needs a column`);
    if (s.kind === 'numeric') {
      if (!values.some((v) => typeof v === 'number' && Number.isFinite(v))) throw bundleError('BUNDLE_ERR_BAD_REFERENCE', `feature ${s.name} has no finite numeric value`);
      // A float16 input reaches the model, and the device's telemetry, as the nearest half (agent/validate.ts):
      // profile those values, or a feature narrower than the half spacing (0.25 near 300) drifts on identical data.
      const seen = inputs.find((t) => t.name === s.input)?.type === 'float16'
        ? values.map((v) => (typeof v === 'number' && Number.isFinite(v) ? halfToFloat(floatToHalf(v)) : v))
        : values;
      return { name: s.name, input: s.input, index: s.index, kind: 'numeric', profile: referenceProfile(seen, bins) };
    }
    const c = createCategorical(1024);
    for (const v of values) observeCategory(c, v);
    return { name: s.name, input: s.input, index: s.index, kind: 'categorical', categories: categoricalToWire(c) };
  });
  const outs = o.outputs === false ? [] : await profileOutputs(rows, model, inputs, outputs, slots, widthOf, bins);
  const ref = { type: 'fleetcast.reference/v1' as const, rows: rows.length, bins, features, outputs: outs, ...(o.thresholds ? { thresholds: o.thresholds } : {}) };
  return parseReference(JSON.parse(JSON.stringify(ref)));
}

async function profileOutputs(rows: Row[], model: Uint8Array, inputs: readonly TensorSpec[], outputs: readonly TensorSpec[], slots: FeatureSlot[], widthOf: Map<string, number>, bins: number): Promise<ReferenceOutput[]> {
  const cols = outputSlots(outputs);
  // Only models whose every input is a profiled [batch, F] or [batch] tensor can be run from the rows.
  if (cols.length === 0 || inputs.some((t) => typeof t.shape[0] !== 'string' || !widthOf.get(t.name))) return [];
  const usable = rows.filter((r) => slots.every((s) => { const v = valueOf(r, s, widthOf.get(s.input)!); return typeof v === 'number' && Number.isFinite(v); })).slice(0, MAX_OUTPUT_ROWS);
  if (usable.length === 0) return [];
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const got = new Map(cols.map((c) => [c.name, [] as number[]]));
  try {
    for (let off = 0; off < usable.length; off += 1024) {
      const batch = usable.slice(off, off + 1024);
      const feeds: Record<string, ort.Tensor> = {};
      for (const t of inputs) {
        const w = widthOf.get(t.name)!;
        const mine = slots.filter((s) => s.input === t.name);
        const flat = batch.flatMap((r) => mine.map((s) => Number(valueOf(r, s, w))));
        const dims = t.shape.length === 1 ? [batch.length] : [batch.length, w];
        feeds[t.name] = tensorOf(t.type, flat, dims, t.name);
      }
      const res = await session.run(feeds);
      for (const c of cols) {
        const t = res[c.output];
        const w = t.dims.length === 2 ? t.dims[1] : 1;
        const d = outputValues(t) as number[]; // float16 outputs arrive as half bits
        for (let r = 0; r < batch.length; r++) got.get(c.name)!.push(d[r * w + c.index]);
      }
    }
  } catch (e) {
    throw bundleError('BUNDLE_ERR_BAD_REFERENCE', `running the model over the reference rows failed: ${(e as Error).message}`);
  } finally {
    await session.release();
  }
  return cols.map((c) => ({ ...c, profile: referenceProfile(got.get(c.name)!, bins) }));
}
