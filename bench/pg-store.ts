/**
 * The cost of the synchronous PostgreSQL Db (hub/db/pg-db.ts): the hub's thread blocks for one round
 * trip per statement (post to the connection's worker thread, Atomics.wait, receiveMessageOnPort).
 * Measured against node-postgres used the ordinary way (awaiting each query on one client) on the
 * same server in the same run, and against SQLite (the embedded default) for scale:
 *
 * - one-row read by primary key, µs per statement (the hub's event loop is blocked this long);
 * - a 500-row upsert transaction (the shape of the hub's batched writes), µs per row;
 * - telemetry cells written through the hub's TelemetryStore (writeBatchJson), cells/s.
 *
 * Needs a PostgreSQL database it may create tables in: FLEETCAST_BENCH_PG_URL=postgres://USER@HOST:PORT/DB.
 */
import { join } from 'node:path';
import pg from 'pg';
import { openPostgres, openSqlite } from '@fleetcast/hub/db/open-migrated.js';
import type { Db } from '@fleetcast/hub/db/db.js';
import { TelemetryStore, type CellKey } from '@fleetcast/hub/telemetry/telemetry-store.js';
import { benchDir } from './dirs.js';
import { nowMs, type BenchResult } from './lib.js';

const READS = 4_000;
const ROWS = 500;
const TXS = 10;
const CELLS = 5_000;

function syncReads(db: Db): number {
  const st = db.prepare('SELECT v FROM bench_kv WHERE k = ?');
  const t0 = nowMs();
  for (let i = 0; i < READS; i++) st.get(`k${i % ROWS}`);
  return ((nowMs() - t0) * 1000) / READS;
}

function syncTx(db: Db): number {
  const put = db.prepare('INSERT INTO bench_kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v');
  const t0 = nowMs();
  for (let t = 0; t < TXS; t++) db.transaction(() => { for (let i = 0; i < ROWS; i++) put.run(`k${i}`, t * ROWS + i); })();
  return ((nowMs() - t0) * 1000) / (TXS * ROWS);
}

function cells(store: TelemetryStore): number {
  const json = JSON.stringify({ k: 'f', n: 10, sum: 5, sq: 3, min: 0, max: 1 });
  const batch: [CellKey, string][] = Array.from({ length: CELLS }, (_, i) => [{ bundleId: 'b'.repeat(64), ring: 'broad', key: `f:x[${i % 32}]`, bucket: Math.floor(i / 32) * 60_000 }, json]);
  const t0 = nowMs();
  store.writeBatchJson(batch, []);
  return CELLS / ((nowMs() - t0) / 1000);
}

export async function benchPgStore(): Promise<BenchResult> {
  const url = process.env.FLEETCAST_BENCH_PG_URL;
  if (!url) throw new Error('set FLEETCAST_BENCH_PG_URL=postgres://USER@HOST:PORT/DB (a database this benchmark may create tables in)');
  // The hub's tables come from its migration chain (openPostgres/openSqlite); the telemetry ones start empty.
  const setup = 'DROP TABLE IF EXISTS bench_kv; DELETE FROM telemetry_fine; DELETE FROM telemetry_hour; DELETE FROM telemetry_devices; CREATE TABLE bench_kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)';

  // Ours: the synchronous Db the hub's store code runs on.
  const sync = openPostgres(url);
  sync.exec(setup);
  syncTx(sync); // warm-up: statements prepared, rows present
  const syncRead = syncReads(sync);
  const syncRow = syncTx(sync);
  const pgCells = cells(new TelemetryStore(sync));
  sync.close();

  // Baseline: node-postgres as usual, awaiting each query on one client (named prepared statements too).
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const read = { name: 'bench_read', text: 'SELECT v FROM bench_kv WHERE k = $1' };
  const put = { name: 'bench_put', text: 'INSERT INTO bench_kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = excluded.v' };
  for (let i = 0; i < 200; i++) await c.query({ ...read, values: [`k${i}`] });
  let t0 = nowMs();
  for (let i = 0; i < READS; i++) await c.query({ ...read, values: [`k${i % ROWS}`] });
  const asyncRead = ((nowMs() - t0) * 1000) / READS;
  t0 = nowMs();
  for (let t = 0; t < TXS; t++) {
    await c.query('BEGIN');
    for (let i = 0; i < ROWS; i++) await c.query({ ...put, values: [`k${i}`, t * ROWS + i] });
    await c.query('COMMIT');
  }
  const asyncRow = ((nowMs() - t0) * 1000) / (TXS * ROWS);
  await c.query('DROP TABLE IF EXISTS bench_kv');
  await c.end();

  // For scale: the embedded default, SQLite WAL synchronous FULL as the hub opens it.
  const lite = openSqlite(join(benchDir('pg-store'), 'hub.db'));
  lite.exec(setup);
  syncTx(lite);
  const liteRead = syncReads(lite);
  const liteRow = syncTx(lite);
  const liteCells = cells(new TelemetryStore(lite));
  lite.close();

  return {
    name: 'PostgreSQL store: synchronous Db over a worker thread vs node-postgres awaited per query (same server, same run), SQLite for scale',
    ours: { 'µs/read (event loop blocked)': syncRead, 'µs/row in a 500-row transaction': syncRow, 'telemetry cells/s': pgCells },
    baseline: { 'µs/read, async pg': asyncRead, 'µs/row, async pg': asyncRow, 'µs/read, SQLite': liteRead, 'µs/row, SQLite': liteRow, 'telemetry cells/s, SQLite': liteCells },
    ratios: [
      { name: 'sync Db / async pg, per read', value: syncRead / asyncRead },
      { name: 'sync Db / async pg, per row in a transaction', value: syncRow / asyncRow },
      { name: 'PostgreSQL / SQLite, per read', value: syncRead / liteRead },
    ],
    notes: [
      `${READS} one-row reads by primary key; ${TXS} transactions of ${ROWS} upserts; ${CELLS} telemetry cells in one writeBatchJson transaction`,
      'the async baseline lets the event loop run between queries; the sync Db blocks it for the round trip (that is the price of keeping every multi-row change one synchronous transaction on both engines)',
    ],
  };
}
