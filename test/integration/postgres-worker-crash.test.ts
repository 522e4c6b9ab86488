/**
 * The PostgreSQL store's worker thread (hub/db/pg-worker.ts) dying, on a real PostgreSQL: the statement
 * waiting on it must fail at once with HUB_ERR_STORE_UNAVAILABLE (not block the hub until its 40 s
 * timeout), and the next statement must run on a new worker.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgDb } from '../../hub/db/pg-db.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';

let server: TestPostgres | undefined;

beforeAll(async () => { if (hasPostgres) server = await startPostgres(); }, 120_000);
afterAll(async () => { await server?.close(); });

describe.skipIf(!hasPostgres)('PostgreSQL worker thread crash', () => {
  it('Worker_crash_fails_fast_then_recovers: a terminated worker gives HUB_ERR_STORE_UNAVAILABLE well before the statement timeout, and the next statement succeeds', async () => {
    const db = PgDb.connect(await server!.newDatabase());
    try {
      db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)');
      db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run(1, 'before');
      await db.terminateWorkerForTest();

      const t0 = Date.now();
      let err: unknown;
      try { db.prepare('SELECT v FROM t WHERE k = ?').get(1); } catch (e) { err = e; }
      const took = Date.now() - t0;
      expect((err as { code?: string } | undefined)?.code).toBe('HUB_ERR_STORE_UNAVAILABLE');
      expect((err as Error).message).toContain('worker thread');
      // The default wait is 40 s (statement 30 s + connect 5 s + 5 s); a generous bound, not a timing target.
      expect(took).toBeLessThan(20_000);

      // A new worker connects on the next statement; what was committed before is there.
      expect(db.prepare('SELECT v FROM t WHERE k = ?').pluck().get(1)).toBe('before');
      db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run(2, 'after');
      expect(db.prepare('SELECT COUNT(*) AS n FROM t').pluck().get()).toBe(2);
    } finally {
      db.close();
    }
  }, 60_000);
});
