/**
 * Queued state reports and reported counters are written as multi-row upserts (hub/store/row-batch.ts): a
 * flush of many devices' reports is a few statements, not one per report (on PostgreSQL each statement is a
 * round trip with the event loop waiting); each device's newest report and highest counter win, whatever the
 * order they were queued in; and a row the database refuses loses only itself.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PgDb } from '../../hub/db/pg-db.js';
import { HubStore } from '../../hub/store.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { stateReport } from '../helpers/hub-fixtures.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';

afterAll(cleanupTempDirs);

let server: TestPostgres | undefined;
beforeAll(async () => { if (hasPostgres) server = await startPostgres(); }, 120_000);
afterAll(async () => { await server?.close(); });

const ENGINES = [
  { engine: 'sqlite', open: async () => HubStore.open(tempDir()) },
  ...(hasPostgres ? [{ engine: 'postgres', open: async () => HubStore.open(tempDir(), { url: await server!.newDatabase() }) }] : []),
];

/** 300 devices: every statement size of the batch (256, 64, 16, 4, 1) but 64 is used at least once. */
const N = 300;
const id = (i: number) => `dev-${String(i).padStart(3, '0')}`;

describe.each(ENGINES)('queued reports on $engine', ({ open }) => {
  it('keeps each device\'s newest report and highest counter, whatever order they were queued in', async () => {
    const store = await open();
    try {
      for (let i = 0; i < N; i++) {
        store.recordState(stateReport(id(i), { seq: 10, phase: 'fetching' }), 1_000);
        store.recordState(stateReport(id(i), { seq: 12, phase: 'committed', counter: 3 }), 2_000);
        store.recordState(stateReport(id(i), { seq: 11, phase: 'failed' }), 3_000); // late: changes nothing
        store.noteReportedCounter(id(i), 3);
        store.noteReportedCounter(id(i), 2);
      }
      expect(store.queuedReports).toBe(2 * N);
      store.flushReports();
      expect(store.queuedReports).toBe(0);
      expect(store.countDevices()).toBe(N);
      for (const i of [0, 255, 256, 299]) {
        expect(store.getDevice(id(i))).toMatchObject({ state: { seq: 12 }, phase: 'committed', firstSeen: 1_000, lastSeen: 2_000 });
        expect(store.lastCounter(id(i))).toBe(3);
      }
      // The next flush: older than stored changes nothing, newer applies; counters never go down.
      store.recordState(stateReport(id(7), { seq: 9, phase: 'idle' }), 4_000);
      store.recordState(stateReport(id(8), { seq: 13, phase: 'idle' }), 4_000);
      store.noteReportedCounter(id(7), 1);
      store.noteReportedCounter(id(8), 5);
      store.flushReports();
      expect(store.getDevice(id(7))).toMatchObject({ state: { seq: 12 }, lastSeen: 2_000 });
      expect(store.getDevice(id(8))).toMatchObject({ state: { seq: 13 }, phase: 'idle', firstSeen: 1_000, lastSeen: 4_000 });
      expect([store.lastCounter(id(7)), store.lastCounter(id(8))]).toEqual([3, 5]);
    } finally { store.close(); }
  });
});

describe.skipIf(!hasPostgres)('queued reports on PostgreSQL', () => {
  it('Batched_report_upserts: 300 devices\' state reports and counters are written in a few statements, not one per report', async () => {
    const store = HubStore.open(tempDir(), { url: await server!.newDatabase() });
    try {
      for (let i = 0; i < N; i++) {
        store.recordState(stateReport(id(i), { seq: 1, counter: 1 }), 1_000);
        store.noteReportedCounter(id(i), 1);
      }
      const query = vi.spyOn(PgDb.prototype, 'query');
      try {
        store.flushReports();
        // BEGIN and COMMIT, then per table 300 = 256 + 16 + 16 + 4 + 4 + 4: 6 statements each (one each was 600).
        expect(query.mock.calls.length).toBeLessThanOrEqual(2 + 6 + 6);
      } finally { query.mockRestore(); }
      expect(store.countDevices()).toBe(N);
      expect(store.lastCounter(id(299))).toBe(1);
    } finally { store.close(); }
  }, 60_000);
});

describe('a row the database refuses', () => {
  it('loses only itself: the flush retries each row alone and counts what still fails', () => {
    const dir = tempDir();
    const store = HubStore.open(dir);
    try {
      // A refusal the store cannot foresee (a damaged row, a constraint added by an operator), for one device only.
      const side = new Database(join(dir, 'hub.db'));
      side.exec(`CREATE TRIGGER refuse_bad BEFORE INSERT ON devices WHEN NEW.id = 'dev-bad' BEGIN SELECT RAISE(ABORT, 'refused'); END`);
      side.close();
      for (const d of ['dev-a', 'dev-bad', 'dev-b']) store.recordState(stateReport(d, { seq: 1 }), 1_000);
      store.noteReportedCounter('dev-a', 4);
      store.flushReports();
      expect(store.reportFailures).toBe(1);
      expect(store.listDevices().map((d) => d.id)).toEqual(['dev-a', 'dev-b']);
      expect(store.lastCounter('dev-a')).toBe(4);
    } finally { store.close(); }
  });
});
