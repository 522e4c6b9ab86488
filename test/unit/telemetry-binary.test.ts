/**
 * The binary telemetry form against the JSON one: the same report comes back
 * from both decoders; every truncation and thousands of seeded byte mutations
 * are refused with PROTO_ERR_INVALID_MESSAGE or decode to something the JSON
 * schema accepts too (the binary path never admits what JSON would refuse);
 * named inconsistencies are refused with the field named; it is much smaller.
 */
import { describe, expect, it } from 'vitest';
import { DDSketch } from '../../protocol/ddsketch.js';
import { FleetcastError } from '../../protocol/errors.js';
import { categoricalToWire, createCategorical, createSummary, observe, observeCategory, SUMMARY_ALPHA, toWire } from '../../protocol/feature-summary.js';
import { decodeTelemetry, encode, MESSAGE_LIMITS } from '../../protocol/messages.js';
import { parse } from '../../protocol/schema.js';
import { decodeTelemetryBinary, encodeTelemetryBinary, encodedItemSize, TelemetryDecoder } from '../../protocol/telemetry-binary.js';
import { telemetryReportSchema, type TelemetryReport } from '../../protocol/telemetry.js';
import { normal, prng } from '../helpers/random.js';

const rand = prng(5);
const gauss = normal(rand);

function report(features = 4, values = 300): TelemetryReport {
  const edges = [-1, -0.5, 0, 0.5, 1];
  const f: TelemetryReport['features'] = {};
  for (let i = 0; i < features; i++) {
    const s = createSummary(edges);
    for (let k = 0; k < values; k++) observe(s, k % 50 === 0 ? null : k % 77 === 0 ? NaN : gauss() * (i + 1) + i);
    f[`x[${i}]`] = toWire(s);
  }
  const cat = createCategorical();
  for (let k = 0; k < values; k++) observeCategory(cat, ['red', 'green', 'blue', 'ünïcode'][k % 4]);
  const out = createSummary([0.2, 0.8]);
  for (let k = 0; k < values; k++) observe(out, rand());
  const lat = new DDSketch({ alpha: SUMMARY_ALPHA });
  for (let k = 0; k < values; k++) lat.add(0.2 + rand() * 3);
  return {
    v: 1, deviceId: 'dev-7', seq: 2 ** 40 + 3, from: 1_764_000_000_000, to: 1_764_000_060_000, bundleId: 'ab'.repeat(32), part: 0, parts: 1,
    requests: values + 5, sampled: values, sampleRate: 0.25, latency: lat.toJSON(), failures: { AGENT_ERR_BAD_INPUT: 4, AGENT_ERR_TOO_LARGE: 1 }, dropped: 3,
    features: f, categorical: { colour: categoricalToWire(cat) }, outputs: { 'y[0]': toWire(out) },
    debug: [{ 'x[0]': 1.5, colour: 'red', note: null }],
  };
}

/** What the JSON decoder makes of a report (the reference for the binary one). */
const viaJson = (r: TelemetryReport) => decodeTelemetry(encode(r));
const code = (f: () => unknown) => { try { f(); return 'accepted'; } catch (e) { return e instanceof FleetcastError ? e.code : `uncoded: ${String(e)}`; } };

describe('binary telemetry reports', () => {
  it('decode to exactly what the JSON form decodes to, through decodeTelemetry too', () => {
    const r = report();
    const bin = encodeTelemetryBinary(r);
    expect(bin[0]).toBe(0xfc);
    expect(decodeTelemetryBinary(bin)).toEqual(viaJson(r));
    expect(decodeTelemetry(bin)).toEqual(viaJson(r));
    // Without the optional parts, and with sketch weights that are not integers (stored as f64).
    const bare = { ...report(1, 0), latency: undefined, debug: undefined, categorical: {} };
    delete bare.latency; delete bare.debug;
    expect(decodeTelemetryBinary(encodeTelemetryBinary(bare))).toEqual(viaJson(bare));
    const weighted = report(1, 10);
    const sk = new DDSketch({ alpha: SUMMARY_ALPHA }).add(2, 0.5).add(-3, 1.25).add(0, 0.25);
    weighted.latency = sk.toJSON();
    expect(decodeTelemetryBinary(encodeTelemetryBinary(weighted))).toEqual(viaJson(weighted));
  });

  it('is under half the size of the JSON form for a 32-feature report, and sizes items for packing exactly', () => {
    const r = report(32, 1000);
    const bin = encodeTelemetryBinary(r);
    expect(bin.length).toBeLessThan(encode(r).length / 2);
    const [name, item] = Object.entries(r.features)[0];
    const without = { ...r, features: Object.fromEntries(Object.entries(r.features).slice(1)) };
    expect(bin.length - encodeTelemetryBinary(without).length).toBe(encodedItemSize(name, item));
  });

  it('refuses every truncation with PROTO_ERR_INVALID_MESSAGE', () => {
    const bin = encodeTelemetryBinary(report(2, 50));
    const codes = new Set<string>();
    for (let n = 1; n < bin.length; n++) codes.add(code(() => decodeTelemetryBinary(bin.subarray(0, n))));
    expect([...codes]).toEqual(['PROTO_ERR_INVALID_MESSAGE']);
    expect(code(() => decodeTelemetryBinary(Buffer.concat([bin, Buffer.of(0)])))).toBe('PROTO_ERR_INVALID_MESSAGE');
  });

  it('never admits a mutated report the JSON schema would refuse (3,000 seeded mutations)', () => {
    const bin = encodeTelemetryBinary(report(3, 80));
    const r = prng(77);
    const outcomes: Record<string, number> = {};
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(bin);
      const flips = 1 + Math.floor(r() * 3);
      for (let k = 0; k < flips; k++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      let got: TelemetryReport | null = null;
      const c = code(() => { got = decodeTelemetryBinary(b); });
      if (got) {
        // Whatever the binary decoder accepts, the JSON schema accepts as well.
        expect(code(() => parse(telemetryReportSchema, JSON.parse(JSON.stringify(got))))).toBe('accepted');
      }
      outcomes[c] = (outcomes[c] ?? 0) + 1;
    }
    expect(Object.keys(outcomes).sort()).toEqual(['PROTO_ERR_INVALID_MESSAGE', 'accepted']);
    expect(outcomes.PROTO_ERR_INVALID_MESSAGE).toBeGreaterThan(100);
  });

  it('names what is inconsistent: bins vs count, sketch vs count, min above max, non-finite sums, spans, duplicates, ids', () => {
    const refused = (mutate: (r: TelemetryReport) => void, words: RegExp) => {
      const r = report(2, 40);
      mutate(r);
      let err: unknown;
      try { decodeTelemetryBinary(encodeTelemetryBinary(r)); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(FleetcastError);
      expect((err as FleetcastError).code).toBe('PROTO_ERR_INVALID_MESSAGE');
      expect((err as Error).message).toMatch(words);
      // And the JSON form of the same report is refused as well.
      expect(code(() => viaJson(r))).toBe('PROTO_ERR_INVALID_MESSAGE');
    };
    refused((r) => { r.features['x[0]'].bins[0] += 1; }, /features\.x\[0\] bins hold \d+ values but count is/);
    refused((r) => { r.features['x[1]'].sketch.z += 2; }, /features\.x\[1\] sketch buckets hold/);
    refused((r) => { const s = r.features['x[0]']; [s.min, s.max] = [s.max, s.min]; }, /min .* is above max/);
    refused((r) => { r.features['x[0]'].sum = Infinity; }, /numbers must be finite/);
    refused((r) => { r.outputs['y[0]'].sketch.p = { o: 0, c: [1, -5000, 1] }; }, /maxBuckets/);
    refused((r) => { r.deviceId = 'dev/../x'; }, /deviceId must match/);
    refused((r) => { r.sampleRate = 1.5; }, /sampleRate/);
    refused((r) => { r.failures = { 'not a code': 1 }; }, /failures code/);
  });

  it('refuses a feature listed twice, a bad magic or format, and an oversized message', () => {
    const bin = encodeTelemetryBinary(report(2, 20));
    const twice = Buffer.from(bin.toString('latin1').replace('x[1]', 'x[0]'), 'latin1');
    expect(() => decodeTelemetryBinary(twice)).toThrow(/features "x\[0\]" is listed twice/);
    expect(() => decodeTelemetryBinary(Buffer.concat([Buffer.of(0xfc, 9), bin.subarray(2)]))).toThrow(/format 9/);
    const big = Buffer.alloc(MESSAGE_LIMITS.telemetry + 1, 0);
    big[0] = 0xfc;
    expect(code(() => decodeTelemetry(big))).toBe('PROTO_ERR_MESSAGE_TOO_LARGE');
  });

  it('a name cache of one decoder never lets a feature listed twice through (lists that shrink, then repeat)', () => {
    const dec = new TelemetryDecoder();
    const two = report(2, 5);
    const one = { ...two, features: { 'x[1]': two.features['x[1]'] } };
    dec.decode(encodeTelemetryBinary(two)); // [x[0], x[1]]: checked
    dec.decode(encodeTelemetryBinary(one)); // [x[1]]: slot 0 now holds x[1]
    const twice = Buffer.from(encodeTelemetryBinary(two).toString('latin1').replace('x[0]', 'x[1]'), 'latin1');
    expect(() => dec.decode(twice)).toThrow(/features "x\[1\]" is listed twice/);
    // And after a decode that failed half-way.
    dec.decode(encodeTelemetryBinary(two));
    expect(() => dec.decode(encodeTelemetryBinary(two).subarray(0, 120))).toThrow(FleetcastError);
    expect(() => dec.decode(twice)).toThrow(/listed twice/);
  });

  it('round-trips integer counts past 2^52 (as f64), refuses categories longer than 128 characters, and agents count lone surrogates as invalid', () => {
    const r = report(1, 3);
    r.latency = { a: SUMMARY_ALPHA, z: 0, p: { o: 5, c: [2 ** 52 + 2, -3, 1] }, count: 2 ** 52 + 3, sum: 1, min: 1, max: 2 };
    expect(decodeTelemetryBinary(encodeTelemetryBinary(r))).toEqual(viaJson(r));
    const long = report(1, 3);
    long.categorical = { colour: { counts: { ['c'.repeat(129)]: 1 }, other: 0, nulls: 0, invalid: 0 } };
    expect(code(() => viaJson(long))).toBe('accepted'); // the JSON schema alone would take it …
    expect(() => decodeTelemetryBinary(encodeTelemetryBinary(long))).toThrow(/longer than 128/); // … but the stored cell could not hold it
    const cat = createCategorical();
    for (const v of ['\ud800', 'ok', '\udc00x', '\ud83d\ude00']) observeCategory(cat, v);
    expect([cat.invalid, Object.keys(cat.counts).sort()]).toEqual([2, ['ok', '\ud83d\ude00']]);
  });

  it('a reused decoder gives each report its own figures (no state leaks from one decode to the next)', () => {
    const dec = new TelemetryDecoder();
    const a = report(3, 100);
    const b = report(1, 5);
    dec.decode(encodeTelemetryBinary(a));
    const d = dec.decode(encodeTelemetryBinary(b));
    expect(d.features.map((v) => v.name)).toEqual(['x[0]']);
    expect(d.features[0].count).toBe(b.features['x[0]'].count);
    expect(Array.from(d.vals.subarray(d.features[0].binsStart, d.features[0].binsStart + d.features[0].bins))).toEqual(b.features['x[0]'].bins);
  });
});
