/**
 * Sampled feature and output values waiting to be summarised, one bounded
 * column per summary. `add` (on the sampled request) only reads each planned
 * value out of the feeds and outputs and writes it to its column; `summarise`
 * then feeds each column to its summary in one go, with that summary's bins
 * and sketch store hot in cache, and empties the columns. A full column
 * summarises all of them first, so memory stays fixed: 64 rows per column,
 * fewer for wide models (at most 64 KB of values per window up to 1,024
 * columns; beyond, 8 rows per column, small beside the summaries themselves).
 *
 * Numeric values are kept in a Float64Array with the meaning of
 * feature-summary.ts `observe`: NaN stands for null (a missing value), ±Infinity
 * for invalid. So a NaN in a float FEED counts as null (it is how JSON null
 * arrives), while a NaN in an OUTPUT stays invalid, as inline summarising had it.
 */
import { observe, observeCategory, type CategoricalSummary, type FeatureSummary } from '@fleetcast/protocol/feature-summary.js';
import { halfToFloat } from '@fleetcast/protocol/float16.js';
import type { TelemetryPlan } from '@fleetcast/protocol/telemetry-plan.js';
import type { TensorData } from '../runtime.js';

/**
 * How to read a tensor element for the summaries where it is not stored as
 * its value: float16 raw bits (onnxruntime's Uint16Array form) as the number,
 * bool bytes as booleans (categories "true"/"false", as JSON sent them).
 * null (the common case) reads elements as stored, with no call per value.
 */
export function converter(t: TensorData): ((v: unknown) => unknown) | null {
  if (t.type === 'float16' && t.data instanceof Uint16Array) return (v) => (v === undefined ? v : halfToFloat(v as number));
  if (t.type === 'bool') return (v) => (v === undefined ? v : v !== 0);
  return null;
}

/** Values held across all columns before a batch is summarised (64 rows for up to 128 columns, then fewer). */
const CELLS = 8192;
const MAX_ROWS = 64;
const MIN_ROWS = 8;

interface NumCol { summary: FeatureSummary; input: string; index: number; width: number }
interface OutCol { summary: FeatureSummary; output: string; index: number }
interface CatCol { summary: CategoricalSummary; input: string; index: number; width: number }

/** A feed value as `observe` should count it: numbers as they are (NaN = missing), bigints as numbers, absent = missing, anything else invalid. */
function featureValue(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return v === undefined || v === null ? Number.NaN : Number.POSITIVE_INFINITY;
}

/** An output value: a NaN output is invalid (not missing); absent = missing; non-numbers invalid. */
function outputValue(v: unknown): number {
  if (typeof v === 'number') return Number.isNaN(v) ? Number.POSITIVE_INFINITY : v;
  return v === undefined || v === null ? Number.NaN : Number.POSITIVE_INFINITY;
}

export class SampleColumns {
  readonly rows: number;
  readonly #num: NumCol[] = [];
  readonly #out: OutCol[] = [];
  readonly #cat: CatCol[] = [];
  /**
   * Numeric feature columns, then output columns, interleaved: value k of
   * column j at k · stride + j. A sampled request so writes a few adjacent
   * cache lines instead of one line per column; `summarise` reads the whole
   * buffer once per batch.
   */
  readonly #vals: Float64Array;
  readonly #stride: number;
  readonly #valN: Int32Array;
  readonly #cats: unknown[];
  readonly #catStride: number;
  readonly #catN: Int32Array;

  constructor(plan: TelemetryPlan, numeric: Map<string, FeatureSummary>, categorical: Map<string, CategoricalSummary>, outputs: Map<string, FeatureSummary>) {
    const cols = plan.features.length + plan.outputs.length;
    this.rows = Math.max(MIN_ROWS, Math.min(MAX_ROWS, Math.floor(CELLS / Math.max(1, cols))));
    for (const f of plan.features) {
      if (f.kind === 'numeric') this.#num.push({ summary: numeric.get(f.name)!, input: f.input, index: f.index, width: f.width });
      else this.#cat.push({ summary: categorical.get(f.name)!, input: f.input, index: f.index, width: f.width });
    }
    for (const o of plan.outputs) this.#out.push({ summary: outputs.get(o.name)!, output: o.output, index: o.index });
    this.#stride = this.#num.length + this.#out.length;
    this.#vals = new Float64Array(this.rows * this.#stride);
    this.#valN = new Int32Array(this.#stride);
    this.#catStride = this.#cat.length;
    this.#cats = new Array<unknown>(this.rows * this.#catStride);
    this.#catN = new Int32Array(this.#catStride);
  }

  /** Copy one sampled request's planned values (every row of a batch). Never throws on odd data. */
  add(feeds: Readonly<Record<string, TensorData>>, out: Readonly<Record<string, TensorData>> | null): void {
    const rows = this.rows;
    const vals = this.#vals;
    const valN = this.#valN;
    const stride = this.#stride;
    for (let j = 0; j < this.#num.length; j++) {
      const c = this.#num[j];
      const t = feeds[c.input];
      if (!t) continue;
      const n = t.dims.length === 0 ? 1 : t.dims[0];
      const d = t.data as ArrayLike<unknown>;
      const conv = converter(t);
      for (let r = 0; r < n; r++) {
        if (valN[j] === rows) this.summarise();
        const v = d[r * c.width + c.index];
        vals[valN[j]++ * stride + j] = featureValue(conv ? conv(v) : v);
      }
    }
    for (let j = 0; j < this.#cat.length; j++) {
      const c = this.#cat[j];
      const t = feeds[c.input];
      if (!t) continue;
      const n = t.dims.length === 0 ? 1 : t.dims[0];
      const d = t.data as ArrayLike<unknown>;
      const conv = converter(t);
      for (let r = 0; r < n; r++) {
        if (this.#catN[j] === rows) this.summarise();
        const v = d[r * c.width + c.index];
        this.#cats[this.#catN[j]++ * this.#catStride + j] = conv ? conv(v) : v;
      }
    }
    if (!out) return;
    const k0 = this.#num.length;
    for (let j = 0; j < this.#out.length; j++) {
      const c = this.#out[j];
      const t = out[c.output];
      if (!t) continue;
      const w = t.dims.length === 2 ? t.dims[1] : 1;
      const n = t.dims.length === 0 ? 1 : t.dims[0];
      const d = t.data as ArrayLike<unknown>;
      const conv = converter(t);
      for (let r = 0; r < n; r++) {
        if (valN[k0 + j] === rows) this.summarise();
        const v = d[r * w + c.index];
        vals[valN[k0 + j]++ * stride + k0 + j] = outputValue(conv ? conv(v) : v);
      }
    }
  }

  /** Feed every held value to its summary, in the order added, and empty the columns. */
  summarise(): void {
    const vals = this.#vals;
    const stride = this.#stride;
    const k0 = this.#num.length;
    for (let j = 0; j < stride; j++) {
      const n = this.#valN[j];
      if (n === 0) continue;
      const summary = j < k0 ? this.#num[j].summary : this.#out[j - k0].summary;
      for (let k = 0; k < n; k++) {
        const x = vals[k * stride + j];
        observe(summary, x !== x ? null : x);
      }
      this.#valN[j] = 0;
    }
    const cs = this.#catStride;
    for (let j = 0; j < cs; j++) {
      const n = this.#catN[j];
      const { summary } = this.#cat[j];
      for (let k = 0; k < n; k++) {
        observeCategory(summary, this.#cats[k * cs + j]);
        this.#cats[k * cs + j] = undefined; // do not keep a request's strings alive until the slot is reused
      }
      this.#catN[j] = 0;
    }
  }
}
