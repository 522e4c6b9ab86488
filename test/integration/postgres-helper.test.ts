/**
 * The throwaway PostgreSQL of test/helpers/postgres.ts that the PostgreSQL-store and several-hub suites
 * stand on: it starts, survives a crash (kill) and a clean stop, comes back on the same port with the
 * data that was committed, and hands out fresh databases.
 */
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';

async function q(url: string, sql: string, params: unknown[] = []): Promise<any[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try { return (await c.query(sql, params)).rows; } finally { await c.end(); }
}

describe.skipIf(!hasPostgres)('test PostgreSQL server', () => {
  let server: TestPostgres | undefined;
  afterAll(async () => { await server?.close(); });

  it('starts, keeps committed rows across kill and stop, and makes fresh databases', async () => {
    server = await startPostgres();
    expect(server.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/fleetcast$/);
    await q(server.url, 'CREATE TABLE t (v BIGINT)');
    await q(server.url, 'INSERT INTO t VALUES ($1)', [41]);

    await server.kill();
    expect(server.running()).toBe(false);
    await expect(q(server.url, 'SELECT 1')).rejects.toThrow();
    await server.restart();
    expect(server.running()).toBe(true);
    expect(await q(server.url, 'SELECT v FROM t')).toEqual([{ v: '41' }]);

    await server.stop();
    expect(server.running()).toBe(false);
    await server.restart();
    await q(server.url, 'INSERT INTO t VALUES (42)');
    expect((await q(server.url, 'SELECT count(*)::int AS n FROM t'))[0].n).toBe(2);

    const other = await server.newDatabase();
    expect(other).not.toBe(server.url);
    expect(await q(other, "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'")).toEqual([{ n: 0 }]);
  }, 120_000);
});
