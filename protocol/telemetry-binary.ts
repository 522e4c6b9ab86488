/**
 * Telemetry reports in a compact binary form: the same TelemetryReport as the
 * JSON form (protocol/telemetry.ts), a third of its size, and decoded with the
 * same checks an order of magnitude faster, which is what lets one hub core
 * ingest tens of thousands of reports a second (issue #5's ingest goal; with
 * JSON, `JSON.parse` alone of a 32-feature report capped ingest near 1,000/s).
 *
 * The form is self-describing (feature names travel, bins are counted), so a
 * decoder needs no bundle plan, and the hub checks a decoded report against
 * its bundle exactly as it checks a JSON one. `decodeTelemetry` (messages.ts)
 * accepts both: a binary report starts with the byte 0xFC, which no JSON text
 * (UTF-8) can start with.
 *
 * Layout (all integers are unsigned LEB128 varints unless said otherwise,
 * "zz" is a zigzag varint, f64 is IEEE 754 little-endian, str is a varint byte
 * length then UTF-8):
 *   0xFC, format 1, v, str deviceId, seq, from, to, 32 bytes bundleId, part,
 *   parts, requests, sampled, f64 sampleRate, dropped,
 *   n × (str code, count) failures, latency flag byte [+ sketch],
 *   n × (str name, summary) features, n × (str name, categorical),
 *   n × (str name, summary) outputs, debug length [+ JSON of the debug rows].
 *   summary: count, f64 sum, f64 sumSq, flags (1: min/max follow) [f64 min, f64 max],
 *            nulls, invalid, n × count bins, sketch body
 *   sketch body: flags (1: m, 2: p, 4: n, 8: counts are f64), f64 a, [m], z,
 *            [store p], [store n];  store: zz o, n × entry (zz, or f64 by flag 8),
 *            a negative entry −k is a run of k empty buckets, as in StoreWire
 *   full sketch (latency): body, f64 count, f64 sum, [f64 min, f64 max] by flag 16
 *   categorical: n × (str category, count), other, nulls, invalid
 *
 * Every check of telemetryReportSchema is made here too (a test feeds both
 * decoders the same valid and broken reports); a broken report is refused with
 * PROTO_ERR_INVALID_MESSAGE naming the field and the byte offset.
 */
import { DEFAULT_MAX_BUCKETS, HARD_MAX_BUCKETS, MAX_ALPHA, MIN_ALPHA, type DDSketchWire, type StoreWire } from './ddsketch.js';
import { protocolError } from './errors.js';
import { MAX_CATEGORY_LENGTH, MAX_EDGES, HARD_MAX_CATEGORIES, type CategoricalWire, type FeatureSummaryWire } from './feature-summary.js';
import { parse } from './schema.js';
import { FEATURE_NAME, MAX_PROFILED_FEATURES, telemetryDebugSchema, type TelemetryReport } from './telemetry.js';
import { DEVICE_ID_PATTERN } from './topics.js';

export const TELEMETRY_BINARY_MAGIC = 0xfc;
const FORMAT = 1;
/** ddsketch.ts MAX_KEY: |key| bound of a store. */
const MAX_KEY = 10_000_000;
const FAILURE_CODE = /^[A-Z0-9_]{1,64}$/;

type SketchBody = Omit<DDSketchWire, 'count' | 'sum' | 'min' | 'max'>;

export function isBinaryTelemetry(b: Uint8Array | string): b is Uint8Array {
  return typeof b !== 'string' && b.byteLength > 0 && b[0] === TELEMETRY_BINARY_MAGIC;
}

// ---------------------------------------------------------------- writing

class Writer {
  buf = Buffer.allocUnsafe(8192);
  pos = 0;

  room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(x: number): void { this.room(1); this.buf[this.pos++] = x; }

  /** A non-negative safe integer. */
  uv(x: number): void {
    this.room(8);
    while (x >= 0x80) { this.buf[this.pos++] = (x % 0x80) | 0x80; x = Math.floor(x / 0x80); }
    this.buf[this.pos++] = x;
  }

  zz(x: number): void { this.uv(x < 0 ? -2 * x - 1 : 2 * x); }
  f64(x: number): void { this.room(8); this.buf.writeDoubleLE(x, this.pos); this.pos += 8; }

  str(s: string): void {
    const n = Buffer.byteLength(s);
    this.uv(n);
    this.room(n);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  done(): Buffer { return this.buf.subarray(0, this.pos); }
}

/** Entries that zigzag-code exactly: integers whose zigzag form (2|x| or 2|x|−1) is still a safe integer. */
const integral = (x: number) => Number.isSafeInteger(x) && Math.abs(x) <= Number.MAX_SAFE_INTEGER / 2;

function writeStore(w: Writer, s: StoreWire, f64: boolean): void {
  w.zz(s.o);
  w.uv(s.c.length);
  for (const c of s.c) if (f64 && c >= 0) { w.u8(0); w.f64(c); } else if (f64) { w.u8(1); w.uv(-c); } else w.zz(c);
}

function writeSketchBody(w: Writer, s: SketchBody, extraFlags = 0): void {
  const f64 = !(integral(s.z) && [s.p, s.n].every((st) => !st || st.c.every(integral)));
  w.u8((s.m !== undefined ? 1 : 0) | (s.p ? 2 : 0) | (s.n ? 4 : 0) | (f64 ? 8 : 0) | extraFlags);
  w.f64(s.a);
  if (s.m !== undefined) w.uv(s.m);
  if (f64) w.f64(s.z); else w.uv(s.z);
  if (s.p) writeStore(w, s.p, f64);
  if (s.n) writeStore(w, s.n, f64);
}

function writeSummary(w: Writer, s: FeatureSummaryWire): void {
  w.uv(s.count); w.f64(s.sum); w.f64(s.sumSq);
  const has = s.min !== null && s.max !== null;
  w.u8(has ? 1 : 0);
  if (has) { w.f64(s.min!); w.f64(s.max!); }
  w.uv(s.nulls); w.uv(s.invalid);
  w.uv(s.bins.length);
  for (const b of s.bins) w.uv(b);
  writeSketchBody(w, s.sketch);
}

function writeCategorical(w: Writer, c: CategoricalWire): void {
  const keys = Object.keys(c.counts);
  w.uv(keys.length);
  for (const k of keys) { w.str(k); w.uv(c.counts[k]); }
  w.uv(c.other); w.uv(c.nulls); w.uv(c.invalid);
}

/** Bytes one named summary (or categorical summary) takes in a binary report: for packing reports into parts. */
export function encodedItemSize(name: string, item: FeatureSummaryWire | CategoricalWire): number {
  const w = new Writer();
  w.str(name);
  if ('counts' in item) writeCategorical(w, item); else writeSummary(w, item);
  return w.pos;
}

/** Encode a report that satisfies telemetryReportSchema (the agent builds it; a bad one is refused by the hub). */
export function encodeTelemetryBinary(r: TelemetryReport): Buffer {
  const w = new Writer();
  w.u8(TELEMETRY_BINARY_MAGIC); w.u8(FORMAT);
  w.uv(r.v); w.str(r.deviceId); w.uv(r.seq); w.uv(r.from); w.uv(r.to);
  w.room(32); w.pos += Buffer.from(r.bundleId, 'hex').copy(w.buf, w.pos);
  w.uv(r.part); w.uv(r.parts); w.uv(r.requests); w.uv(r.sampled); w.f64(r.sampleRate); w.uv(r.dropped);
  const failures = Object.keys(r.failures);
  w.uv(failures.length);
  for (const k of failures) { w.str(k); w.uv(r.failures[k]); }
  if (r.latency) {
    const { count, sum, min, max, ...body } = r.latency;
    w.u8(1);
    writeSketchBody(w, body, min !== null && max !== null ? 16 : 0);
    w.f64(count); w.f64(sum);
    if (min !== null && max !== null) { w.f64(min); w.f64(max); }
  } else w.u8(0);
  for (const group of [r.features, r.outputs] as const) {
    if (group === r.outputs) {
      const cats = Object.keys(r.categorical);
      w.uv(cats.length);
      for (const k of cats) { w.str(k); writeCategorical(w, r.categorical[k]); }
    }
    const names = Object.keys(group);
    w.uv(names.length);
    for (const k of names) { w.str(k); writeSummary(w, group[k]); }
  }
  if (r.debug) { const d = Buffer.from(JSON.stringify(r.debug)); w.uv(d.length); w.room(d.length); w.pos += d.copy(w.buf, w.pos); } else w.uv(0);
  return Buffer.from(w.done());
}

// ---------------------------------------------------------------- reading

/**
 * A decoded report as views into one reusable scratch buffer, so decoding
 * allocates next to nothing: valid until the decoder's next `decode`. The
 * hub's ingest checks and merges a report straight from these views; tools
 * and tests get plain objects from `decodeTelemetryBinary`.
 */
export interface StoreView {
  /** Key of the first entry; entries are vals[start … start+entries), run-coded like StoreWire.c. */
  o: number; start: number; entries: number;
  /** Keys spanned (expanded length): o … o+span−1. */
  span: number;
  /** Every entry is an integer of magnitude below 2^30 (the merge then runs on int32 arithmetic). */
  small: boolean;
}
export interface SketchView {
  a: number; m: number; mSet: boolean; z: number;
  p: StoreView | null; n: StoreView | null;
  /** Full sketches only (latency): count, sum, and min/max (hasMinMax). */
  count: number; sum: number; min: number; max: number; hasMinMax: boolean;
}
export interface SummaryView {
  name: string;
  count: number; sum: number; sumSq: number; min: number; max: number; hasMinMax: boolean;
  nulls: number; invalid: number;
  /** Bins are vals[binsStart … binsStart+bins). */
  binsStart: number; bins: number;
  sketch: SketchView;
}
export interface DecodedTelemetry {
  v: number; deviceId: string; seq: number; from: number; to: number; bundleId: string;
  part: number; parts: number; requests: number; sampled: number; sampleRate: number; dropped: number;
  failures: [string, number][];
  latency: SketchView | null;
  features: SummaryView[];
  categorical: [string, CategoricalWire][];
  outputs: SummaryView[];
  debug: TelemetryReport['debug'];
  /** Bins and store entries of every view. */
  vals: Float64Array;
}

const newStore = (): StoreView => ({ o: 0, start: 0, entries: 0, span: 0, small: true });
const newSketch = (): SketchView => ({ a: 0, m: DEFAULT_MAX_BUCKETS, mSet: false, z: 0, p: null, n: null, count: 0, sum: 0, min: 0, max: 0, hasMinMax: false });
const newSummary = (): SummaryView => ({ name: '', count: 0, sum: 0, sumSq: 0, min: 0, max: 0, hasMinMax: false, nulls: 0, invalid: 0, binsStart: 0, bins: 0, sketch: newSketch() });

/** Where readZigzags stopped: byte position, keys spanned, counts seen. */
const run = { pos: 0, span: 0, total: 0 };

/**
 * The hot loop of the whole ingest: up to n one-byte zigzag entries from b at pos into vals at nv.
 * Returns how many it read (fewer when an entry takes more than one byte); run holds the rest.
 */
function readZigzags(b: Uint8Array, pos: number, n: number, vals: Float64Array, nv: number): number {
  let span = 0;
  let total = 0;
  let i = 0;
  const end = Math.min(b.length, pos + n);
  for (; pos < end; i++) {
    const u = b[pos];
    if (u >= 0x80) break;
    pos++;
    // Branch-free: counts and runs of empty buckets alternate at random, so a branch on the sign mispredicts.
    const neg = u & 1;
    const h = u >>> 1;
    vals[nv++] = h ^ -neg;
    span += neg * h + 1;
    total += h - neg * h;
  }
  run.pos = pos; run.span = span; run.total = total;
  return i;
}

interface NameSlot { bytes: Uint8Array; name: string }

const countMatches = (total: number, count: number) => Math.abs(total - count) <= 1e-9 * Math.max(1, count);

export class TelemetryDecoder {
  #b: Uint8Array = new Uint8Array(0);
  #view: DataView = new DataView(new ArrayBuffer(0));
  #pos = 0;
  /** The field being read, and the named item it belongs to, for error messages (joined only on failure). */
  #at = '';
  #item = '';
  #name_ = '';
  readonly #names: Record<'features' | 'categorical' | 'outputs', { slots: NameSlot[]; unique: number }> = {
    features: { slots: [], unique: 0 }, categorical: { slots: [], unique: 0 }, outputs: { slots: [], unique: 0 },
  };
  #bundleBytes = new Uint8Array(32);
  #bundleId = '';
  #vals = new Float64Array(4096);
  #nv = 0;
  readonly #summaries: SummaryView[] = [];
  #ns = 0;
  readonly #stores: StoreView[] = [];
  #nst = 0;
  readonly #latency = newSketch();
  readonly #out: DecodedTelemetry = {
    v: 0, deviceId: '', seq: 0, from: 0, to: 0, bundleId: '', part: 0, parts: 0, requests: 0, sampled: 0, sampleRate: 0, dropped: 0,
    failures: [], latency: null, features: [], categorical: [], outputs: [], debug: undefined, vals: this.#vals,
  };

  #fail(problem: string): never {
    const at = this.#item ? `${this.#at}.${this.#item}` : this.#at;
    throw protocolError('PROTO_ERR_INVALID_MESSAGE', `Invalid telemetry report (binary): ${at} ${problem} (byte ${this.#pos}); send what encodeTelemetryBinary writes`);
  }

  #u8(): number {
    if (this.#pos >= this.#b.length) this.#fail('is cut short');
    return this.#b[this.#pos++];
  }

  #uv(): number {
    const b = this.#b;
    if (this.#pos < b.length && b[this.#pos] < 0x80) return b[this.#pos++];
    let r = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const x = this.#u8();
      r += (x & 0x7f) * mul;
      if (x < 0x80) {
        if (r > Number.MAX_SAFE_INTEGER) this.#fail('is not a safe integer');
        return r;
      }
      mul *= 0x80;
    }
    return this.#fail('has a varint longer than 8 bytes');
  }

  #upTo(max: number, what: string): number {
    const x = this.#uv();
    if (x > max) this.#fail(`${what} ${x} is above ${max}`);
    return x;
  }

  #zz(): number { const u = this.#uv(); return u % 2 === 0 ? u / 2 : -(u + 1) / 2; }

  #f64(): number {
    if (this.#pos + 8 > this.#b.length) this.#fail('is cut short');
    const x = this.#view.getFloat64(this.#pos, true);
    this.#pos += 8;
    if (!Number.isFinite(x)) this.#fail(`is ${x}; numbers must be finite`);
    return x;
  }

  #str(max: number): string {
    const n = this.#upTo(max, 'string length');
    if (this.#pos + n > this.#b.length) this.#fail('is cut short');
    const s = Buffer.from(this.#b.buffer, this.#b.byteOffset + this.#pos, n).toString('utf8');
    this.#pos += n;
    return s;
  }

  /** Room for n more values. */
  #reserve(n: number): void {
    if (this.#nv + n <= this.#vals.length) return;
    const next = new Float64Array(Math.max(this.#vals.length * 2, this.#nv + n));
    next.set(this.#vals.subarray(0, this.#nv));
    this.#vals = next;
  }

  #val(x: number): void {
    if (this.#nv === this.#vals.length) {
      const next = new Float64Array(this.#vals.length * 2);
      next.set(this.#vals);
      this.#vals = next;
    }
    this.#vals[this.#nv++] = x;
  }

  #store(f64: boolean, maxBuckets: number): [StoreView, number] {
    const st = this.#stores[this.#nst] ?? (this.#stores[this.#nst] = newStore());
    this.#nst++;
    const o = this.#zz();
    if (o < -MAX_KEY || o > MAX_KEY) this.#fail(`store offset ${o} is outside ±${MAX_KEY}`);
    const n = this.#upTo(HARD_MAX_BUCKETS, 'store length');
    st.o = o; st.start = this.#nv; st.entries = n;
    let span = 0;
    let total = 0;
    let small = true;
    this.#reserve(n);
    if (!f64) {
      const done = readZigzags(this.#b, this.#pos, n, this.#vals, this.#nv);
      if (done < n) {
        // A multi-byte entry: the rest one by one.
        this.#pos = run.pos;
        this.#nv += done;
        span = run.span;
        total = run.total;
        for (let i = done; i < n; i++) {
          const v = this.#zz();
          this.#vals[this.#nv++] = v;
          if (v < 0) span -= v; else { span++; total += v; }
          if (v >= 2 ** 30 || v <= -(2 ** 30)) small = false;
        }
      } else { this.#pos = run.pos; this.#nv += n; span = run.span; total = run.total; }
      st.small = small;
      if (span > maxBuckets) this.#fail(`store spans more than maxBuckets (${maxBuckets}) buckets`);
      if (Math.abs(o + span) > MAX_KEY) this.#fail(`store keys must stay within ±${MAX_KEY}`);
      st.span = span;
      return [st, total];
    }
    for (let i = 0; i < n; i++) {
      let v: number;
      {
        const tag = this.#u8();
        if (tag > 1) this.#fail(`store entry tag ${tag} is not 0 (a count) or 1 (a run of empty buckets)`);
        v = tag === 0 ? this.#f64() : -this.#uv();
        if (tag === 0 && v < 0) this.#fail(`store count ${v} is negative`);
        if (tag === 1 && v === 0) this.#fail('store has an empty run of empty buckets');
      }
      this.#val(v);
      if (v < 0) span -= v; else { span++; total += v; }
      if (span > maxBuckets) this.#fail(`store spans more than maxBuckets (${maxBuckets}) buckets`);
    }
    if (Math.abs(o + span) > MAX_KEY) this.#fail(`store keys must stay within ±${MAX_KEY}`);
    st.span = span;
    st.small = false;
    return [st, total];
  }

  /** A sketch body into s; returns the total its buckets hold and its flags. */
  #sketchBody(s: SketchView): [number, number] {
    const flags = this.#u8();
    if (flags & ~31) this.#fail(`sketch flags ${flags} are not known`);
    const a = this.#f64();
    if (a < MIN_ALPHA || a > MAX_ALPHA) this.#fail(`sketch α ${a} is outside [${MIN_ALPHA}, ${MAX_ALPHA}]`);
    s.a = a;
    s.mSet = (flags & 1) !== 0;
    s.m = DEFAULT_MAX_BUCKETS;
    if (s.mSet) {
      s.m = this.#uv();
      if (s.m < 2 || s.m > HARD_MAX_BUCKETS) this.#fail(`sketch maxBuckets ${s.m} is outside [2, ${HARD_MAX_BUCKETS}]`);
    }
    const f64 = (flags & 8) !== 0;
    s.z = f64 ? this.#f64() : this.#uv();
    if (s.z < 0) this.#fail('sketch zero count is negative');
    let total = s.z;
    s.p = null;
    s.n = null;
    if (flags & 2) { const [st, t] = this.#store(f64, s.m); s.p = st; total += t; }
    if (flags & 4) { const [st, t] = this.#store(f64, s.m); s.n = st; total += t; }
    return [total, flags];
  }

  #summary(name: string): SummaryView {
    const v = this.#summaries[this.#ns] ?? (this.#summaries[this.#ns] = newSummary());
    this.#ns++;
    v.name = name;
    const count = (v.count = this.#uv());
    v.sum = this.#f64();
    v.sumSq = this.#f64();
    if (v.sumSq < 0) this.#fail(`sumSq ${v.sumSq} is negative`);
    const flags = this.#u8();
    if (flags > 1) this.#fail(`summary flags ${flags} are not known`);
    v.hasMinMax = flags === 1;
    v.min = v.hasMinMax ? this.#f64() : 0;
    v.max = v.hasMinMax ? this.#f64() : 0;
    v.nulls = this.#uv();
    v.invalid = this.#uv();
    const nb = this.#uv();
    if (nb < 1 || nb > MAX_EDGES + 1) this.#fail(`has ${nb} bins; 1 to ${MAX_EDGES + 1} allowed`);
    v.binsStart = this.#nv;
    v.bins = nb;
    let binTotal = 0;
    this.#reserve(nb);
    for (let i = 0; i < nb; i++) { const x = this.#uv(); this.#vals[this.#nv++] = x; binTotal += x; }
    if (binTotal !== count) this.#fail(`bins hold ${binTotal} values but count is ${count}`);
    if ((count > 0) !== v.hasMinMax) this.#fail('min and max must be numbers when count > 0 and absent when it is 0');
    if (v.hasMinMax && v.min > v.max) this.#fail(`min ${v.min} is above max ${v.max}`);
    const [total, sflags] = this.#sketchBody(v.sketch);
    if (sflags & 16) this.#fail('a summary\'s sketch carries no min/max of its own');
    if (!countMatches(total, count)) this.#fail(`sketch buckets hold ${total} but count is ${count}`);
    return v;
  }

  #categorical(): CategoricalWire {
    const n = this.#upTo(HARD_MAX_CATEGORIES, 'number of categories');
    const counts: Record<string, number> = Object.create(null);
    for (let i = 0; i < n; i++) {
      const k = this.#str(4 * MAX_CATEGORY_LENGTH);
      // The stored cell holds categories of at most MAX_CATEGORY_LENGTH characters (agents count longer ones as
      // invalid): a longer one would make the cell unreadable, so it is refused here, on either wire form.
      if (k.length > MAX_CATEGORY_LENGTH) this.#fail(`category of ${k.length} characters is longer than ${MAX_CATEGORY_LENGTH}`);
      if (k in counts) this.#fail(`category ${JSON.stringify(k.slice(0, 64))} is listed twice`);
      counts[k] = this.#uv();
    }
    return { counts, other: this.#uv(), nulls: this.#uv(), invalid: this.#uv() };
  }

  /**
   * A name at this position in the list: reports of one bundle carry the same names in the same order, so
   * the bytes are compared with the last name seen there and the checked string reused (no UTF-8 decode,
   * no pattern test). Returns whether it was such a hit.
   */
  #name(cache: NameSlot[], i: number): boolean {
    const lenAt = this.#pos;
    const n = this.#upTo(128, 'name length');
    const b = this.#b;
    const start = this.#pos;
    if (start + n > b.length) this.#fail('is cut short');
    const slot = cache[i];
    if (slot && slot.bytes.length === n) {
      let same = true;
      for (let k = 0; k < n; k++) if (slot.bytes[k] !== b[start + k]) { same = false; break; }
      if (same) { this.#pos += n; this.#name_ = slot.name; return true; }
    }
    this.#pos = lenAt;
    const name = this.#str(128);
    if (!FEATURE_NAME.test(name)) this.#fail(`${JSON.stringify(name.slice(0, 64))} must match ${FEATURE_NAME.source}`);
    cache[i] = { bytes: Uint8Array.prototype.slice.call(b, start, start + n), name };
    this.#name_ = name;
    return false;
  }

  #named<T>(what: 'features' | 'categorical' | 'outputs', into: T[], read: (name: string) => T, nameOf: (t: T) => string): void {
    into.length = 0;
    this.#at = what;
    const n = this.#upTo(MAX_PROFILED_FEATURES, `number of ${what}`);
    const cache = this.#names[what];
    // Any slot may be rewritten below: the list is proven unique again only once it passes the check.
    const proven = cache.unique;
    cache.unique = 0;
    let hits = 0;
    const nameField = `${what} name`;
    for (let i = 0; i < n; i++) {
      this.#at = nameField;
      this.#item = '';
      if (this.#name(cache.slots, i)) hits++;
      this.#item = this.#name_;
      this.#at = what;
      into.push(read(this.#name_));
    }
    this.#item = '';
    // Names are unique (a record on the JSON side). The same list as last time was checked then.
    if (n > 1 && !(hits === n && proven === n)) {
      const seen = new Set<string>();
      for (const t of into) { const k = nameOf(t); if (seen.has(k)) this.#fail(`${JSON.stringify(k)} is listed twice`); seen.add(k); }
    }
    cache.unique = n;
  }

  /** Decode and check a binary report (the caller has checked the size limit). Throws PROTO_ERR_INVALID_MESSAGE. */
  decode(b: Uint8Array): DecodedTelemetry {
    this.#b = b;
    this.#view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    this.#pos = 0;
    this.#nv = 0;
    this.#ns = 0;
    this.#nst = 0;
    this.#at = 'header';
    this.#item = '';
    const d = this.#out;
    if (this.#u8() !== TELEMETRY_BINARY_MAGIC) this.#fail('does not start with 0xFC');
    const format = this.#u8();
    if (format !== FORMAT) this.#fail(`has format ${format}; this hub reads format ${FORMAT}`);
    this.#at = 'v';
    d.v = this.#uv();
    if (d.v !== 1) this.#fail(`is ${d.v}; this hub speaks protocol 1`);
    this.#at = 'deviceId';
    d.deviceId = this.#str(128);
    if (!DEVICE_ID_PATTERN.test(d.deviceId)) this.#fail(`must match ${DEVICE_ID_PATTERN.source}`);
    this.#at = 'seq'; d.seq = this.#uv();
    this.#at = 'from'; d.from = this.#uv();
    this.#at = 'to'; d.to = this.#uv();
    this.#at = 'bundleId';
    if (this.#pos + 32 > b.length) this.#fail('is cut short');
    // Reports of one fleet name few bundles: reuse the hex string while the bytes are the last ones.
    let same = this.#bundleId !== '';
    for (let k = 0; k < 32 && same; k++) same = this.#bundleBytes[k] === b[this.#pos + k];
    if (!same) {
      this.#bundleBytes = Uint8Array.prototype.slice.call(b, this.#pos, this.#pos + 32);
      this.#bundleId = Buffer.from(b.buffer, b.byteOffset + this.#pos, 32).toString('hex');
    }
    d.bundleId = this.#bundleId;
    this.#pos += 32;
    this.#at = 'part'; d.part = this.#upTo(63, 'part');
    this.#at = 'parts'; d.parts = this.#upTo(64, 'parts');
    if (d.parts < 1) this.#fail('must be at least 1');
    this.#at = 'requests'; d.requests = this.#uv();
    this.#at = 'sampled'; d.sampled = this.#uv();
    this.#at = 'sampleRate'; d.sampleRate = this.#f64();
    if (d.sampleRate < 0 || d.sampleRate > 1) this.#fail(`is ${d.sampleRate}; it must be in [0, 1]`);
    this.#at = 'dropped'; d.dropped = this.#uv();
    this.#at = 'failures';
    const nf = this.#upTo(64, 'number of failure codes');
    d.failures = [];
    for (let i = 0; i < nf; i++) {
      const code = this.#str(64);
      if (!FAILURE_CODE.test(code)) this.#fail(`code ${JSON.stringify(code)} must match ${FAILURE_CODE.source}`);
      if (d.failures.some(([c]) => c === code)) this.#fail(`code ${code} is listed twice`);
      d.failures.push([code, this.#uv()]);
    }
    this.#at = 'latency';
    const hasLatency = this.#u8();
    if (hasLatency > 1) this.#fail(`flag ${hasLatency} is not 0 or 1`);
    d.latency = null;
    if (hasLatency) {
      const s = this.#latency;
      const [total, flags] = this.#sketchBody(s);
      s.count = this.#f64();
      s.sum = this.#f64();
      if (s.count < 0) this.#fail(`count ${s.count} is negative`);
      s.hasMinMax = (flags & 16) !== 0;
      s.min = s.hasMinMax ? this.#f64() : 0;
      s.max = s.hasMinMax ? this.#f64() : 0;
      if (!countMatches(total, s.count)) this.#fail(`count is ${s.count} but the buckets hold ${total}`);
      if ((s.count > 0) !== s.hasMinMax) this.#fail('min and max must be numbers when count > 0 and absent when it is 0');
      if (s.hasMinMax && s.min > s.max) this.#fail(`min ${s.min} is above max ${s.max}`);
      d.latency = s;
    }
    const summary = (name: string) => this.#summary(name);
    this.#named('features', d.features, summary, (v) => v.name);
    this.#named('categorical', d.categorical, (name): [string, CategoricalWire] => [name, this.#categorical()], (c) => c[0]);
    this.#named('outputs', d.outputs, summary, (v) => v.name);
    this.#at = 'debug';
    const nd = this.#uv();
    d.debug = undefined;
    if (nd > 0) {
      if (this.#pos + nd > b.length) this.#fail('is cut short');
      let rows: unknown;
      try { rows = JSON.parse(Buffer.from(b.buffer, b.byteOffset + this.#pos, nd).toString('utf8')); } catch { this.#fail('is not JSON'); }
      this.#pos += nd;
      d.debug = parse(telemetryDebugSchema, rows, { what: 'telemetry report debug rows' });
    }
    if (this.#pos !== b.length) { this.#at = 'report'; this.#fail(`has ${b.length - this.#pos} bytes after its end`); }
    d.vals = this.#vals;
    return d;
  }
}

/**
 * The device and bundle a binary report names, read without decoding the rest
 * (the hub routes a report to its ingest worker by these). Throws
 * PROTO_ERR_INVALID_MESSAGE when the head is malformed; the rest is checked by the full decode.
 */
export function peekTelemetryHead(b: Uint8Array): { deviceId: string; bundleId: string } {
  const bad = (why: string): never => { throw protocolError('PROTO_ERR_INVALID_MESSAGE', `Invalid telemetry report (binary): ${why}; send what encodeTelemetryBinary writes`); };
  if (b.length < 4 || b[0] !== TELEMETRY_BINARY_MAGIC || b[1] !== FORMAT) bad('it does not start with 0xFC and format 1');
  let pos = 2;
  const uv = (): number => {
    let r = 0;
    let mul = 1;
    for (let i = 0; i < 8 && pos < b.length; i++) {
      const x = b[pos++];
      r += (x & 0x7f) * mul;
      if (x < 0x80) return r;
      mul *= 0x80;
    }
    return bad('its head is cut short');
  };
  uv();
  const n = uv();
  if (n > 128 || pos + n > b.length) bad('its device id is cut short or too long');
  const deviceId = Buffer.from(b.buffer, b.byteOffset + pos, n).toString('utf8');
  pos += n;
  uv(); uv(); uv();
  if (pos + 32 > b.length) bad('its bundle id is cut short');
  return { deviceId, bundleId: Buffer.from(b.buffer, b.byteOffset + pos, 32).toString('hex') };
}

// ---------------------------------------------------------------- plain objects (tools, tests, the JSON side)

function storeWire(vals: Float64Array, st: StoreView): StoreWire {
  return { o: st.o, c: Array.from(vals.subarray(st.start, st.start + st.entries)) };
}

function sketchBodyWire(vals: Float64Array, s: SketchView): SketchBody {
  const w: SketchBody = { a: s.a, z: s.z };
  if (s.mSet) w.m = s.m;
  if (s.p) w.p = storeWire(vals, s.p);
  if (s.n) w.n = storeWire(vals, s.n);
  return w;
}

function summaryWire(vals: Float64Array, v: SummaryView): FeatureSummaryWire {
  return {
    count: v.count, sum: v.sum, sumSq: v.sumSq, min: v.hasMinMax ? v.min : null, max: v.hasMinMax ? v.max : null,
    nulls: v.nulls, invalid: v.invalid, bins: Array.from(vals.subarray(v.binsStart, v.binsStart + v.bins)), sketch: sketchBodyWire(vals, v.sketch),
  };
}

/** A decoded report as a plain TelemetryReport (what the JSON decoder returns for the same report). */
export function toReport(d: DecodedTelemetry): TelemetryReport {
  const named = <T>(views: SummaryView[], f: (v: SummaryView) => T) => { const o: Record<string, T> = Object.create(null); for (const v of views) o[v.name] = f(v); return o; };
  const r: TelemetryReport = {
    v: d.v, deviceId: d.deviceId, seq: d.seq, from: d.from, to: d.to, bundleId: d.bundleId, part: d.part, parts: d.parts,
    requests: d.requests, sampled: d.sampled, sampleRate: d.sampleRate, dropped: d.dropped,
    failures: Object.assign(Object.create(null) as Record<string, number>, Object.fromEntries(d.failures)),
    features: named(d.features, (v) => summaryWire(d.vals, v)),
    categorical: Object.assign(Object.create(null) as Record<string, CategoricalWire>, Object.fromEntries(d.categorical)),
    outputs: named(d.outputs, (v) => summaryWire(d.vals, v)),
  };
  if (d.latency) {
    const l = d.latency;
    r.latency = { ...sketchBodyWire(d.vals, l), count: l.count, sum: l.sum, min: l.hasMinMax ? l.min : null, max: l.hasMinMax ? l.max : null };
  }
  if (d.debug) r.debug = d.debug;
  return r;
}

const shared = new TelemetryDecoder();

/** Decode and check a binary report into plain objects. Throws PROTO_ERR_INVALID_MESSAGE. */
export function decodeTelemetryBinary(b: Uint8Array): TelemetryReport {
  return toReport(shared.decode(b));
}
