/**
 * The ingest's typed-array accumulators (hub/telemetry/wire-acc.ts) against
 * the reference merge (DDSketch.merge, aggregate.ts mergeCell): binary reports
 * of 100 devices merged by a real TelemetryIngest into a real SQLite file give
 * the cells the reference merge gives; sketch stores fold past maxBuckets the
 * way DDSketch folds, in any order; a refused report leaves every cell as it was.
 */
import { openMigrated } from '../../hub/db/open-migrated.js';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { TelemetryWindow } from '../../agent/telemetry/window.js';
import { mergeCell, type Cell } from '../../hub/telemetry/aggregate.js';
import { TelemetryIngest } from '../../hub/telemetry/ingest.js';
import { TELEMETRY_DEFAULTS } from '../../hub/telemetry/options.js';
import { TelemetryStore } from '../../hub/telemetry/telemetry-store.js';
import { SketchAcc } from '../../hub/telemetry/wire-acc.js';
import { encodeTelemetryBinary, TelemetryDecoder } from '../../protocol/telemetry-binary.js';
import { DDSketch } from '../../protocol/ddsketch.js';
import { fromWire, referenceProfile } from '../../protocol/feature-summary.js';
import type { Manifest } from '../../protocol/manifest.js';
import { compilePlan } from '../../protocol/telemetry-plan.js';
import type { TelemetryReport } from '../../protocol/telemetry.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { normal, prng } from '../helpers/random.js';

afterAll(() => cleanupTempDirs());

const r = prng(11);
const gauss = normal(r);

describe('ingest accumulators', () => {
  it('fold sketch stores past maxBuckets exactly as DDSketch does, in any merge order', () => {
    const sketches = Array.from({ length: 40 }, (_, i) => {
      const s = new DDSketch({ alpha: 0.02, maxBuckets: 16 });
      // Widely spread magnitudes on both signs, so both stores fold.
      for (let k = 0; k < 30; k++) s.add((r() < 0.5 ? -1 : 1) * Math.exp(gauss() * 3 + (i % 5)));
      return s;
    });
    const reference = new DDSketch({ alpha: 0.02, maxBuckets: 16 });
    for (const s of sketches) reference.merge(s);
    // Through the wire form (stored cells) and through the binary decoder's views (reports: the int32 path).
    const dec = new TelemetryDecoder();
    const viaView = (acc: SketchAcc, s: DDSketch) => {
      const d = dec.decode(encodeTelemetryBinary({ v: 1, deviceId: 'd', seq: 1, from: 0, to: 1, bundleId: 'a'.repeat(64), part: 0, parts: 1, requests: 1, sampled: 0, sampleRate: 1, failures: {}, dropped: 0, features: {}, categorical: {}, outputs: {}, latency: s.toJSON() }));
      expect(d.latency!.p!.small).toBe(true);
      acc.addView(d.vals, d.latency!);
    };
    for (const [order, add] of [[sketches, 'wire'], [[...sketches].reverse(), 'view'], [[...sketches].sort(() => r() - 0.5), 'wire'], [[...sketches].sort(() => r() - 0.5), 'view']] as const) {
      const acc = new SketchAcc(0.02, 16);
      for (const s of order) if (add === 'wire') acc.addWire(s.toJSON()); else viaView(acc, s);
      const got = acc.toWire();
      expect(got.p!.c.reduce((t, x) => t + Math.max(x, 0), 0) + got.z + got.n!.c.reduce((t, x) => t + Math.max(x, 0), 0)).toBe(40 * 30);
      const want = reference.toJSON();
      expect(got.sum).toBeCloseTo(want.sum, 6);
      expect({ ...got, sum: 0 }).toEqual({ ...want, sum: 0 });
    }
  });

  it('let only buckets holding a count move the fold line: zero counts and leading or trailing runs change nothing', () => {
    const base = new DDSketch({ alpha: 0.02, maxBuckets: 16 });
    for (let v = 1; v <= 200; v++) base.add(v);
    for (const odd of [
      { a: 0.02, m: 16, z: 0, p: { o: 9_000_000, c: [0] }, count: 0, sum: 0, min: null, max: null },
      { a: 0.02, m: 16, z: 0, p: { o: 200, c: [1, -15] }, count: 1, sum: 1.5, min: 1.5, max: 1.5 },
      { a: 0.02, m: 16, z: 0, p: { o: 100, c: [-10, 0, 2, 0, -3] }, n: { o: -9_000_000, c: [0, -2] }, count: 2, sum: 500, min: 250, max: 250 },
    ]) {
      const acc = new SketchAcc(0.02, 16);
      acc.addWire(base.toJSON());
      acc.addWire(odd);
      const want = DDSketch.fromJSON(base.toJSON()).merge(DDSketch.fromJSON(odd)).toJSON();
      expect({ ...acc.toWire(), sum: 0 }).toEqual({ ...want, sum: 0 });
    }
  });

  it('merge 100 devices\' binary reports into the cells the reference merge gives, in a real SQLite file', () => {
    const profile = referenceProfile(Array.from({ length: 3000 }, gauss), 10);
    const bundleId = 'e'.repeat(64);
    const manifest = {
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 3] }],
      outputs: [{ name: 'y', type: 'float32', shape: ['batch', 1] }],
      reference: { type: 'fleetcast.reference/v1', rows: 3000, bins: 10, features: [0, 1, 2].map((i) => ({ name: `x[${i}]`, input: 'x', index: i, kind: 'numeric', profile })), outputs: [{ name: 'y[0]', output: 'y', index: 0, profile }] },
    } as unknown as Manifest;
    const plan = compilePlan(bundleId, manifest);
    const db = openMigrated(join(tempDir('fleetcast-acc-'), 'hub.db'));
    const store = new TelemetryStore(db);
    const now = 1_764_000_000_000;
    const ingest = new TelemetryIngest({ store, options: TELEMETRY_DEFAULTS, now: () => now, logger: pino({ level: 'silent' }), manifest: (id) => (id === bundleId ? manifest : undefined), ringOf: () => 'canary' });
    const reports: TelemetryReport[] = [];
    for (let d = 0; d < 100; d++) {
      const w = new TelemetryWindow(plan, now - 30_000);
      for (let k = 0; k < 40; k++) {
        const x = Float32Array.from([gauss() + d / 50, gauss() * 2, k % 9 === 0 ? NaN : gauss()]);
        w.request(1 + r() * 4, true, { x: { type: 'float32', dims: [1, 3], data: x } }, { y: { type: 'float32', dims: [1, 1], data: Float32Array.of(x[0] - x[1]) } }, 0);
      }
      const b = w.body();
      reports.push({ v: 1, deviceId: `d${d}`, seq: 1, to: now, part: 0, parts: 1, sampleRate: 1, dropped: 0, ...b });
    }
    for (const rep of reports) ingest.handle(rep);
    ingest.flush();
    for (const key of ['f:x[0]', 'f:x[1]', 'f:x[2]', 'o:y[0]']) {
      const name = key.slice(2);
      const group = key[0] === 'f' ? 'features' : 'outputs';
      const expected = reports.map((rep): Cell => ({ kind: key[0] as 'f', s: fromWire(rep[group][name], profile.edges) })).reduce((a, b) => mergeCell(a, b));
      const got = store.getCell('fine', { bundleId, ring: 'canary', key, bucket: Math.floor((now - 30_000) / 60_000) * 60_000 })!;
      const s = (got as Extract<Cell, { kind: 'f' | 'o' }>).s;
      const e = (expected as Extract<Cell, { kind: 'f' | 'o' }>).s;
      expect(s.count).toBe(e.count);
      expect(s.bins).toEqual(e.bins);
      expect([s.nulls, s.min, s.max]).toEqual([e.nulls, e.min, e.max]);
      expect(s.sum).toBeCloseTo(e.sum, 9);
      expect(s.sketch.toJSON()).toEqual({ ...e.sketch.toJSON(), sum: s.sketch.sum });
    }
    const lat = store.getCell('fine', { bundleId, ring: 'canary', key: 'latency', bucket: Math.floor((now - 30_000) / 60_000) * 60_000 })!;
    expect((lat as Extract<Cell, { kind: 'latency' }>).s.count).toBe(4000);

    // A report that does not fit the bundle (a feature it does not have) changes nothing and is coded.
    const before = JSON.stringify(store.getCell('fine', { bundleId, ring: 'canary', key: 'f:x[0]', bucket: Math.floor((now - 30_000) / 60_000) * 60_000 }));
    const odd = { ...reports[0], deviceId: 'd-odd', features: { ...reports[0].features, 'x[9]': reports[0].features['x[0]'] } };
    expect(() => ingest.handle(odd)).toThrow(expect.objectContaining({ code: 'HUB_ERR_BAD_TELEMETRY' }));
    ingest.flush();
    expect(JSON.stringify(store.getCell('fine', { bundleId, ring: 'canary', key: 'f:x[0]', bucket: Math.floor((now - 30_000) / 60_000) * 60_000 }))).toBe(before);
    expect(ingest.stats.accepted).toBe(100);
    // Counts no window can hold are refused (sums across reports stay exact integers).
    const huge = { ...reports[1], deviceId: 'd-huge', seq: 7, requests: 2 ** 41 };
    expect(() => ingest.handle(huge)).toThrow(/request count is above/);

    // A stored cell damaged on disk is skipped (and counted) by reports and roll-up instead of failing them.
    const bucket = Math.floor((now - 30_000) / 60_000) * 60_000;
    db.prepare("UPDATE telemetry_fine SET data = '{broken' WHERE key = 'f:x[1]'").run();
    const keys = [...store.cells(bundleId, undefined, 0, now + 1, 60_000)].map(([k]) => k.key).sort();
    expect(keys).toEqual(['f:x[0]', 'f:x[2]', 'latency', 'meta', 'o:y[0]']);
    expect(store.unreadableRows).toBe(1);
    expect(store.rollup(bucket + 60_000, 0).folded).toBe(6);
    expect([...store.cells(bundleId, undefined, 0, now + 1, 60_000)].length).toBe(5);
    db.close();
  });
});
