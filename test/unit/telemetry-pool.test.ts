/**
 * The ingest pool (hub/telemetry/ingest-pool.ts) with real worker threads and
 * a real SQLite file: a worker's backlog past maxInflightBytes, or a device's
 * past 1/16 of it, sheds reports with HUB_ERR_OVERLOADED (memory stays
 * bounded, a flooding device is shed first); once the worker has caught up
 * reports are taken again and stored; replays stay refused across workers'
 * first reports.
 */
import { openMigrated } from '../../hub/db/open-migrated.js';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { TelemetryWindow } from '../../agent/telemetry/window.js';
import { IngestPool } from '../../hub/telemetry/ingest-pool.js';
import { TELEMETRY_DEFAULTS } from '../../hub/telemetry/options.js';
import { TelemetryStore } from '../../hub/telemetry/telemetry-store.js';
import { referenceProfile } from '../../protocol/feature-summary.js';
import type { Manifest } from '../../protocol/manifest.js';
import { encodeTelemetryBinary } from '../../protocol/telemetry-binary.js';
import { compilePlan } from '../../protocol/telemetry-plan.js';
import { cleanupTempDirs, tempDir, waitFor } from '../helpers/env.js';
import { normal, prng } from '../helpers/random.js';

afterAll(() => cleanupTempDirs());

/** A one-worker pool over a fresh SQLite file and a one-feature bundle; `before` runs on the store first. */
function onePool(before?: (store: TelemetryStore, bundleId: string) => void) {
  const bundleId = 'b'.repeat(64);
  const manifest = { inputs: [{ name: 'x', type: 'float32', shape: ['batch', 1] }], outputs: [] } as unknown as Manifest;
  const w = new TelemetryWindow(compilePlan(bundleId, manifest), Date.now() - 1000);
  w.request(1, true, { x: { type: 'float32', dims: [1, 1], data: Float32Array.of(1) } }, null, 0);
  const report = (id: string, seq: number) => encodeTelemetryBinary({ v: 1, deviceId: id, seq, to: Date.now(), part: 0, parts: 1, sampleRate: 1, dropped: 0, ...w.body() });
  const db = openMigrated(join(tempDir('fleetcast-pool-'), 'hub.db'));
  const store = new TelemetryStore(db);
  before?.(store, bundleId);
  const refused: Record<string, number> = {};
  const pool = new IngestPool({
    workers: 1, options: TELEMETRY_DEFAULTS, store, now: Date.now, logger: pino({ level: 'silent' }),
    manifest: (id) => (id === bundleId ? manifest : undefined), ringOf: () => 'default',
    onRefused: (code, n) => { refused[code] = (refused[code] ?? 0) + n; }, onDebug: () => {},
  });
  return { pool, store, db, report, refused };
}

describe('ingest pool', () => {
  it('sheds past the worker\'s backlog bound and past a device\'s share of it, then takes reports again once caught up', async () => {
    const gauss = normal(prng(3));
    const profile = referenceProfile(Array.from({ length: 2000 }, gauss), 10);
    const bundleId = 'a'.repeat(64);
    const manifest = {
      inputs: [{ name: 'x', type: 'float32', shape: ['batch', 8] }], outputs: [],
      reference: { type: 'fleetcast.reference/v1', rows: 2000, bins: 10, features: Array.from({ length: 8 }, (_, i) => ({ name: `x[${i}]`, input: 'x', index: i, kind: 'numeric', profile })), outputs: [] },
    } as unknown as Manifest;
    const now = Date.now();
    const w = new TelemetryWindow(compilePlan(bundleId, manifest), now - 1000);
    for (let k = 0; k < 200; k++) w.request(1, true, { x: { type: 'float32', dims: [1, 8], data: Float32Array.from({ length: 8 }, gauss) } }, null, 0);
    const report = (id: string, seq: number) => encodeTelemetryBinary({ v: 1, deviceId: id, seq, to: now, part: 0, parts: 1, sampleRate: 1, dropped: 0, ...w.body() });
    const size = report('p-0', 0).length;
    const db = openMigrated(join(tempDir('fleetcast-pool-'), 'hub.db'));
    const store = new TelemetryStore(db);
    const refused: Record<string, number> = {};
    const pool = new IngestPool({
      // Room for 16 reports (the check is made before each is added); a device's share is one report.
      workers: 1, options: TELEMETRY_DEFAULTS, store, now: () => now, logger: pino({ level: 'silent' }), maxInflightBytes: 15 * (size + 14) + 100,
      manifest: (id) => (id === bundleId ? manifest : undefined), ringOf: () => 'default',
      onRefused: (code, n) => { refused[code] = (refused[code] ?? 0) + n; }, onDebug: () => {},
    });
    const submit = (id: string, seq: number) => { try { pool.submit(id, report(id, seq)); return 'ok'; } catch (e) { return (e as { code: string }).code; } };
    try {
      // All in one turn: nothing has gone to the worker yet. A loud device gets its share (one report) and no more …
      expect([1, 2, 3].map((seq) => submit('loud', seq))).toEqual(['ok', 'HUB_ERR_OVERLOADED', 'HUB_ERR_OVERLOADED']);
      // … and the others still get in, until the worker's bound is reached.
      const others = Array.from({ length: 20 }, (_, i) => submit(`p-${i}`, 1));
      expect(others.filter((o) => o === 'ok').length).toBe(15);
      expect(others.slice(15)).toEqual(new Array(5).fill('HUB_ERR_OVERLOADED'));
      expect(pool.stats.shed).toBe(7);
      await pool.flush();
      expect(pool.stats.accepted).toBe(16);
      // Caught up: taken again, and stored.
      expect(submit('loud', 4)).toBe('ok');
      await pool.flush();
      expect(pool.stats.accepted).toBe(17);
      expect(refused).toEqual({});
      expect(store.deviceStats().find((d) => d.deviceId === 'loud')!.lastSeq).toBe(4);
      const meta = store.getCell('fine', { bundleId, ring: 'default', key: 'meta', bucket: Math.floor((now - 1000) / 60_000) * 60_000 });
      expect((meta as { s: { requests: number } }).s.requests).toBe(17 * 200);
    } finally {
      await pool.close();
      db.close();
    }
  });

  it('survives a worker that stops: a pending flush and below() resolve, the loss is counted once, a new worker takes over with replay protection', async () => {
    const { pool, store, db, report, refused } = onePool();
    try {
      pool.submit('k-1', report('k-1', 1));
      await pool.flush();
      expect(store.deviceStats().map((d) => d.lastSeq)).toEqual([1]);
      for (let seq = 2; seq < 400; seq++) pool.submit('k-1', report('k-1', seq));
      const old = pool.workers[0];
      const flushed = pool.flush();
      const below = pool.below(0);
      await old.terminate();
      await Promise.all([flushed, below]);
      expect(refused.HUB_ERR_OVERLOADED).toBe(1);
      await waitFor(() => pool.workers[0] !== old, 'a new worker');
      // The new worker gets the stored seq with the device's first report: an old seq is still a replay.
      const last = store.deviceStats()[0].lastSeq;
      pool.submit('k-1', report('k-1', last));
      pool.submit('k-1', report('k-1', 1000));
      await pool.flush();
      expect(refused.HUB_ERR_TELEMETRY_REPLAY).toBe(1);
      expect(store.deviceStats()[0].lastSeq).toBe(1000);
    } finally {
      await pool.close();
      db.close();
    }
  });

  it('refuses replays against the stored seq even when the first report a worker sees from a device is refused', async () => {
    // Both devices last reported seq 10 before this hub (process) started.
    const { pool, store, db, report, refused } = onePool((store, bundleId) => store.writeBatchJson([], ['r-1', 'r-2'].map((deviceId) => ({ deviceId, seq: 10, dropped: 0, at: 0, bundleId }))));
    try {
      // r-1: a replay first (refused), then more replays: all refused. r-2: an undecodable report first, then a replay.
      for (const seq of [9, 10, 5]) pool.submit('r-1', report('r-1', seq));
      pool.submit('r-2', report('r-2', 11).subarray(0, 60));
      pool.submit('r-2', report('r-2', 3));
      pool.submit('r-1', report('r-1', 11));
      await pool.flush();
      expect(refused).toEqual({ HUB_ERR_TELEMETRY_REPLAY: 4, PROTO_ERR_INVALID_MESSAGE: 1 });
      expect(pool.stats.accepted).toBe(1);
      expect(store.deviceStats().map((d) => [d.deviceId, d.lastSeq])).toEqual([['r-1', 11], ['r-2', 10]]);
    } finally {
      await pool.close();
      db.close();
    }
  });
});
