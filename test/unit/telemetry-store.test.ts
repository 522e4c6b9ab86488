/**
 * The telemetry tables on a real SQLite file: batched writes, roll-up of fine
 * buckets into hour buckets (merged exactly), retention, and that a range
 * query sees both resolutions.
 */
import { openMigrated } from '../../hub/db/open-migrated.js';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSummary, observe } from '../../protocol/feature-summary.js';
import type { Cell } from '../../hub/telemetry/aggregate.js';
import { HOUR_MS, TelemetryStore, type CellKey } from '../../hub/telemetry/telemetry-store.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';

afterAll(cleanupTempDirs);

const bundleId = 'b'.repeat(64);
const cell = (values: number[]): Cell => {
  const s = createSummary([0]);
  for (const v of values) observe(s, v);
  return { kind: 'f', s };
};

describe('telemetry store', () => {
  it('rolls fine buckets up into hour buckets, expires old hours, and answers ranges from both', () => {
    const db = openMigrated(join(tempDir(), 'hub.db'));
    const st = new TelemetryStore(db);
    const h0 = 100 * HOUR_MS;
    const k = (bucket: number, key = 'f:x[0]'): CellKey => ({ bundleId, ring: 'canary', key, bucket });
    st.writeBatch([
      [k(h0 + 60_000), cell([-1, 1])],
      [k(h0 + 120_000), cell([2, 3, 4])],
      [k(h0 + HOUR_MS + 60_000), cell([5])],
      [k(h0 - 40 * HOUR_MS), cell([9])],
    ], [{ deviceId: 'd', seq: 5, dropped: 1, at: h0, bundleId }]);
    // An hour row older than retention, as a previous roll-up left it.
    const { folded, expired } = st.rollup(h0 + HOUR_MS, h0 - 30 * HOUR_MS);
    expect(folded).toBe(3);
    expect(expired).toBe(1);
    const hour = st.getCell('hour', k(h0)) as { s: { count: number; bins: number[]; sum: number } };
    expect(hour.s.count).toBe(5);
    expect(hour.s.bins).toEqual([1, 4]);
    expect(hour.s.sum).toBe(9);
    expect(st.getCell('fine', k(h0 + 60_000))).toBeUndefined();
    expect(st.getCell('fine', k(h0 + HOUR_MS + 60_000))).toBeDefined();
    // A range over both hours: the rolled-up hour and the fine bucket after it.
    const counts = [...st.cells(bundleId, 'canary', h0, h0 + 2 * HOUR_MS, 60_000)].map(([, c]) => (c as { s: { count: number } }).s.count).sort();
    expect(counts).toEqual([1, 5]);
    expect(st.lastSeq('d')).toBe(5);
    // Sequences only go up, even if a batch carried an older mark.
    st.writeBatch([], [{ deviceId: 'd', seq: 3, dropped: 1, at: h0, bundleId }]);
    expect(st.lastSeq('d')).toBe(5);
    db.close();
  });
});
