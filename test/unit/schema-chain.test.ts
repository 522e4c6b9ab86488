/**
 * One migration chain for every table (hub/store-schema.ts): no module creates a table or an index of its own;
 * a data folder written at schema version 4, when the feature tables were still made on the fly, upgrades
 * without losing a row; and a fresh SQLite file and a fresh PostgreSQL database end with the same tables,
 * columns and indexes.
 */
import { copyFileSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../signing/ed25519.js';
import { TokenStore } from '../../hub/auth/tokens.js';
import type { Db } from '../../hub/db/db.js';
import { migrate } from '../../hub/db/migrate.js';
import { openMigrated, openPostgres } from '../../hub/db/open-migrated.js';
import { PgDb } from '../../hub/db/pg-db.js';
import { DebugSessionStore } from '../../hub/debug/debug-store.js';
import { MqttCredentials } from '../../hub/mqtt-credentials.js';
import { listDecisions } from '../../hub/rollouts/decisions.js';
import { RolloutStore } from '../../hub/rollouts/rollout-store.js';
import { HubStore } from '../../hub/store.js';
import { MIGRATIONS } from '../../hub/store-schema.js';
import { DebugRows } from '../../hub/telemetry/debug-rows.js';
import { TelemetryStore } from '../../hub/telemetry/telemetry-store.js';
import { BundleGrants } from '../../hub/transfer-grants.js';
import { TransparencyLog } from '../../hub/translog/translog.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(ROOT, 'test/fixtures/hub-db-v4');
/** The chain (its steps, and the schema_version table its runner keeps on PostgreSQL): the only places DDL may be. */
const CHAIN = new Set(['hub/store-schema.ts', 'hub/db/migrate.ts']);

afterAll(cleanupTempDirs);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (name === 'node_modules' || name === 'dist') return [];
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return name.endsWith('.ts') ? [p] : [];
  });
}

type Shape = Record<string, string[]>;

/** Tables → column names (in order), and index names, of a SQLite database. */
function sqliteShape(db: Database.Database | Db): { tables: Shape; indexes: string[] } {
  const names = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[];
  const tables = Object.fromEntries(names.map((t) => [t, (db.prepare(`PRAGMA table_info(${t})`).all() as { name: string }[]).map((c) => c.name)]));
  const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY name").pluck().all() as string[];
  return { tables, indexes };
}

function pgShape(db: Db): { tables: Shape; indexes: string[] } {
  const cols = db.prepare(`SELECT c.table_name AS t, c.column_name AS c FROM information_schema.columns c
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
    WHERE c.table_schema = current_schema() ORDER BY c.table_name, c.ordinal_position`).all() as { t: string; c: string }[];
  const tables: Shape = {};
  for (const r of cols) (tables[r.t] ??= []).push(r.c);
  // Primary keys and UNIQUE constraints make their own indexes (SQLite's are the sqlite_autoindex_ ones, left out above).
  const indexes = db.prepare(`SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()
    AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u')) ORDER BY indexname`).pluck().all() as string[];
  return { tables, indexes };
}

const counts = (db: Database.Database, tables: string[]) => Object.fromEntries(tables.map((t) => [t, db.prepare(`SELECT count(*) FROM ${t}`).pluck().get()]));

describe('one migration chain', () => {
  it('No_ddl_outside_the_chain: no .ts file under hub/ but the chain holds CREATE TABLE or CREATE INDEX', () => {
    const offenders = sources(join(ROOT, 'hub'))
      .map((p) => relative(ROOT, p).split('\\').join('/'))
      .filter((p) => !CHAIN.has(p) && /\bCREATE\s+(UNIQUE\s+)?(TABLE|INDEX)\b/i.test(readFileSync(join(ROOT, p), 'utf8')));
    expect(offenders).toEqual([]);
    // The walk saw the modules that used to create their own tables (a walk that found nothing would pass too).
    const seen = sources(join(ROOT, 'hub')).map((p) => relative(ROOT, p).split('\\').join('/'));
    expect(seen).toEqual(expect.arrayContaining(['hub/auth/tokens.ts', 'hub/telemetry/telemetry-store.ts', 'hub/translog/translog-store.ts', 'hub/store-schema.ts']));
  });

  it('Upgrade_v4_data_folder: a hub.db written at schema version 4 (feature tables made on the fly) opens, every step applies, no row is lost and every module reads its data', () => {
    const expected = JSON.parse(readFileSync(join(FIXTURE, 'expected.json'), 'utf8')) as {
      schemaVersion: number; bundleId: string; token: string; tokenId: string; mqtt: { username: string; password: string };
      counts: Record<string, number>; checkpoint: { size: number; note: string; createdAt: number };
    };
    const dir = tempDir();
    copyFileSync(join(FIXTURE, 'hub.db'), join(dir, 'hub.db'));
    const before = new Database(join(dir, 'hub.db'));
    expect(before.pragma('user_version', { simple: true })).toBe(expected.schemaVersion);
    expect(expected.schemaVersion).toBeLessThan(MIGRATIONS.length);
    const tables = Object.keys(expected.counts);
    expect(counts(before, tables)).toEqual(expected.counts);
    before.close();

    const store = HubStore.open(dir);
    try {
      const db = store.db;
      expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      const lite = new Database(join(dir, 'hub.db'), { readonly: true });
      expect(counts(lite, tables)).toEqual(expected.counts);
      // The upgraded file has exactly the tables, columns and indexes of a fresh one.
      const fresh = openMigrated(':memory:');
      expect(sqliteShape(lite)).toEqual(sqliteShape(fresh));
      fresh.close();
      lite.close();

      expect(store.getDevice('dev-1')?.state.seq).toBe(7);
      // Step 6 copied each stored report's seq into devices.state_seq (what the conditional upsert compares).
      expect(store.storedStateSeq('dev-1')).toBe(7);
      expect(store.getAssignment('dev-1')).toMatchObject({ bundleId: expected.bundleId, counter: 1 });
      expect(store.getBundle(expected.bundleId)?.name).toBe('fixture');
      expect(new TokenStore(db).verify(expected.token)).toMatchObject({ id: expected.tokenId, role: 'operator', expiresAt: null });
      expect(new MqttCredentials(db).check(expected.mqtt.username, expected.mqtt.password)).toMatchObject({ username: 'dev-1', role: 'device' });
      expect(new BundleGrants(db, store).mayFetch('dev-1', expected.bundleId)).toBe(true);
      const rollouts = new RolloutStore(db);
      expect(rollouts.get('ro-1')).toMatchObject({ name: 'fixture', bundleId: expected.bundleId });
      expect(rollouts.members('ro-1').map((m) => m.deviceId)).toEqual(['dev-1']);
      expect(listDecisions(db, 'ro-1').map((d) => d.kind)).toEqual(['start']);
      const telemetry = new TelemetryStore(db);
      expect(telemetry.getRaw('fine', { bundleId: expected.bundleId, ring: 'canary', key: 'latency_ms', bucket: 60_000 })).toBe('{"n":1}');
      expect(telemetry.lastSeq('dev-1')).toBe(11);
      expect(telemetry.driftEvents(expected.bundleId).map((e) => e.feature)).toEqual(['x']);
      expect(new DebugSessionStore(db).get('dev-1')).toMatchObject({ rowsPerWindow: 5, counter: 1 });
      expect(new DebugRows(db, { now: () => 7600, logger: pino({ level: 'silent' }) }).list('dev-1').map((r) => r.row)).toEqual([{ x: 1 }]);
      const log = new TransparencyLog(db, { hubKey: generateKeyPair() });
      expect(log.size).toBe(expected.checkpoint.size);
      expect(log.latest()).toEqual(expected.checkpoint);
    } finally {
      store.close();
    }
    // Opening again applies nothing and keeps everything.
    const again = HubStore.open(dir);
    expect(again.db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    again.close();
  });
});

describe.skipIf(!hasPostgres)('one migration chain on both engines', () => {
  let server: TestPostgres;
  beforeAll(async () => { server = await startPostgres(); }, 120_000);
  afterAll(async () => { await server?.close(); });

  it('Same_schema_both_engines: a fresh SQLite file and a fresh PostgreSQL database end with the same tables, columns and indexes', async () => {
    const lite = openMigrated(join(tempDir(), 'hub.db'));
    const pg = openPostgres(await server.newDatabase());
    try {
      const a = sqliteShape(lite);
      const b = pgShape(pg);
      // What only PostgreSQL has, by design: the version row (SQLite keeps user_version), the leader lease of a
      // cluster, and bundle bytes as rows (SQLite keeps them as files in the data folder).
      const pgOnly = ['bundle_blobs', 'bundle_chunks', 'hub_leader', 'schema_version'];
      expect(Object.keys(b.tables).filter((t) => !(t in a.tables)).sort()).toEqual(pgOnly);
      for (const t of pgOnly) delete b.tables[t];
      expect(b.tables).toEqual(a.tables);
      expect(b.indexes).toEqual(a.indexes);
      expect(Object.keys(a.tables).length).toBeGreaterThan(20);
    } finally {
      lite.close();
      pg.close();
    }
  }, 120_000);

  it('Upgrade_pg_report_with_nul_escape: a PostgreSQL store at version 5 holding a report with \\u0000 (accepted before) upgrades; that row keeps a NULL seq, the others get theirs', async () => {
    const db = PgDb.connect(await server.newDatabase());
    try {
      migrate(db, MIGRATIONS.slice(0, 5));
      const add = db.prepare('INSERT INTO devices (id, state, first_seen, last_seen, active_bundle_id, phase, last_error_code) VALUES (?, ?, 1, 1, NULL, ?, NULL)');
      add.run('plain', JSON.stringify({ v: 1, deviceId: 'plain', seq: 7 }), 'idle');
      // JSON.stringify writes a NUL as the escape \u0000, which PostgreSQL's jsonb refuses.
      add.run('nul', JSON.stringify({ v: 1, deviceId: 'nul', seq: 9, capabilities: { note: 'a\u0000b' } }), 'idle');
      expect(() => migrate(db, MIGRATIONS)).not.toThrow();
      const seqs = Object.fromEntries((db.prepare('SELECT id, state_seq FROM devices ORDER BY id').all() as { id: string; state_seq: number | null }[]).map((r) => [r.id, r.state_seq]));
      expect(seqs).toEqual({ nul: null, plain: 7 });
    } finally {
      db.close();
    }
  }, 120_000);
});
