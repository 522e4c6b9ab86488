import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAYLOAD_TYPES } from '../../protocol/envelope.js';
import { encode } from '../../protocol/messages.js';
import { generateKeyPair } from '../../signing/ed25519.js';
import { signEnvelope } from '../../signing/envelope.js';
import { HubStore } from '../../hub/store.js';
import { MIGRATIONS } from '../../hub/store-schema.js';
import { PgDb } from '../../hub/db/pg-db.js';
import type { Db } from '../../hub/db/db.js';
import { migrate } from '../../hub/db/migrate.js';
import { cleanupTempDirs, tempDir } from '../helpers/env.js';
import { manifestFor, randomPayload, stateReport } from '../helpers/hub-fixtures.js';
import { hasPostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js';

afterAll(cleanupTempDirs);

/*
 * The store's cases run on both engines: the SQLite file in the data folder, and a fresh database on a
 * throwaway PostgreSQL (test/helpers/postgres.ts) per case. `fresh()` is a place to open a store at
 * (a data folder, and for PostgreSQL a new database) that `open` may open more than once.
 */
let server: TestPostgres | undefined;
beforeAll(async () => { if (hasPostgres) server = await startPostgres(); }, 120_000);
afterAll(async () => { await server?.close(); });

interface Place { dir: string; url?: string }
const ENGINES = [
  { engine: 'sqlite', fresh: async (): Promise<Place> => ({ dir: tempDir() }) },
  ...(hasPostgres ? [{ engine: 'postgres', fresh: async (): Promise<Place> => ({ dir: tempDir(), url: await server!.newDatabase() }) }] : []),
];
const open = (p: Place) => HubStore.open(p.dir, { url: p.url });

const release = generateKeyPair();
function bundleOf(payload: Buffer, name = 'unit', version = 1) {
  const manifest = manifestFor(payload, 1024, name, version);
  const bytes = encode(manifest);
  const envelope = signEnvelope(PAYLOAD_TYPES.manifest, bytes, [release]);
  return { id: createHash('sha256').update(bytes).digest('hex'), manifest, envelope };
}
const fakeSign = (deviceId: string, counter: number) => ({ envelope: { payloadType: 't', payload: Buffer.from(`${deviceId}:${counter}`).toString('base64'), signatures: [] }, issuedAt: 1000, expiresAt: 3000 });

describe('hub store', () => {
  it('creates hub.db in WAL mode at the latest schema version and opens it again', () => {
    const dir = tempDir();
    HubStore.open(dir).close();
    const db = new Database(join(dir, 'hub.db'));
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    db.close();
    HubStore.open(dir).close();
  });


  it('writes a blob by range through a temp file and leaves nothing else behind', async () => {
    const dir = tempDir();
    const store = HubStore.open(dir);
    const src = join(dir, 'src.bin');
    const all = randomPayload(5000);
    writeFileSync(src, all);
    const id = 'a'.repeat(64);
    await store.putBlob(id, src, 700, 3000);
    expect(readFileSync(store.blobPath(id)).equals(all.subarray(700, 3700))).toBe(true);
    expect(readdirSync(join(dir, 'blobs'))).toEqual([`${id}.zst`]);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
    await expect(store.putBlob('b'.repeat(64), join(dir, 'missing'), 0, 10)).rejects.toMatchObject({ code: 'HUB_ERR_STORE' });
    expect(existsSync(store.blobPath('b'.repeat(64)))).toBe(false);
    store.close();
  });

});

describe.each(ENGINES)('hub store on $engine', ({ engine, fresh }) => {
  it('Schema_newer_than_hub: refuses a database migrated by a newer hub with HUB_ERR_STORE_SCHEMA, naming the version it needs', async () => {
    const at = await fresh();
    open(at).close();
    if (engine === 'sqlite') {
      const db = new Database(join(at.dir, 'hub.db')); db.pragma('user_version = 99'); db.close();
    } else {
      const db = PgDb.connect(at.url!); db.exec('UPDATE schema_version SET version = 99'); db.close();
    }
    let err: unknown;
    try { open(at); } catch (e) { err = e; }
    expect(err).toMatchObject({ code: 'HUB_ERR_STORE_SCHEMA' });
    expect((err as Error).message).toContain('schema version 99');
  });

    it('keeps bundle bytes whole and serves each manifest chunk from them (files on SQLite, one row per chunk on PostgreSQL)', async () => {
      const at = await fresh();
      const store = open(at);
      const payload = randomPayload(5000);
      const b = bundleOf(payload);
      const src = join(at.dir, 'upload.bin');
      writeFileSync(src, Buffer.concat([Buffer.alloc(300, 7), payload]));
      expect(store.hasBlob(b.id)).toBe(false);
      await store.putBlob(b.id, src, 300, payload.length, b.manifest.payload.chunkSize);
      store.insertBundle({ ...b, createdAt: 1 });
      expect(store.hasBlob(b.id)).toBe(true);
      const source = store.chunkSource(b.id)!;
      const reader = 'blobPath' in source ? null : await source.open();
      if (engine === 'postgres') expect(reader).not.toBeNull(); else expect(readFileSync((source as { blobPath: string }).blobPath).equals(payload)).toBe(true);
      if (reader) {
        const got = [];
        for (let i = 0; i < 5; i++) got.push(await reader.read(i, i * 1024, Math.min(payload.length, (i + 1) * 1024)));
        expect(Buffer.concat(got).equals(payload)).toBe(true);
        await reader.close();
        expect(existsSync(store.blobPath(b.id))).toBe(false);
      }
      store.close();
    });

    it('records a bundle once per id and refuses another bundle under the same name@version', async () => {
      const store = open(await fresh());
      const a = bundleOf(randomPayload(3000));
      expect(store.insertBundle({ ...a, createdAt: 5 }).created).toBe(true);
      const again = store.insertBundle({ ...a, createdAt: 6 });
      expect(again.created).toBe(false);
      expect(again.bundle.createdAt).toBe(5);
      expect(again.bundle.manifest).toEqual(a.manifest);
      const b = bundleOf(randomPayload(3000));
      expect(() => store.insertBundle({ ...b, createdAt: 7 })).toThrow(expect.objectContaining({ code: 'HUB_ERR_DUPLICATE_VERSION', status: 409 }));
      expect(store.listBundles().map((x) => x.id)).toEqual([a.id]);
      expect(store.getBundleByVersion('unit', 1)?.chunkCount).toBe(3);
      store.close();
    });

    it('allocates strictly increasing counters per device, across reopening, and above what a device reported', async () => {
      const at = await fresh();
      let store = open(at);
      const a = bundleOf(randomPayload(2000));
      store.insertBundle({ ...a, createdAt: 1 });
      const items = (ids: string[]) => ids.map((deviceId) => ({ deviceId, bundleId: a.id, rolloutId: null, ring: null }));
      expect(store.issueAssignments(items(['d1', 'd2']), fakeSign).map((r) => r.counter)).toEqual([1, 1]);
      expect(store.issueAssignments(items(['d1']), fakeSign).map((r) => r.counter)).toEqual([2]);
      store.close();
      store = open(at);
      expect(store.issueAssignments(items(['d1', 'd2']), fakeSign).map((r) => r.counter)).toEqual([3, 2]);
      store.noteReportedCounter('d2', 40);
      store.noteReportedCounter('d1', 1); // lower than issued: ignored
      expect(store.issueAssignments(items(['d1', 'd2']), fakeSign).map((r) => r.counter)).toEqual([4, 41]);
      expect(store.getAssignment('d2')).toMatchObject({ counter: 41, bundleId: a.id, issuedAt: 1000, expiresAt: 3000 });
      store.close();
    });

    it('rolls back every counter when signing one assignment of a batch fails', async () => {
      const store = open(await fresh());
      const a = bundleOf(randomPayload(2000));
      store.insertBundle({ ...a, createdAt: 1 });
      const items = ['d1', 'd2'].map((deviceId) => ({ deviceId, bundleId: a.id, rolloutId: null, ring: null }));
      expect(() => store.issueAssignments(items, (d, c) => { if (d === 'd2') throw new Error('boom'); return fakeSign(d, c); })).toThrow();
      expect(store.lastCounter('d1')).toBe(0);
      expect(store.getAssignment('d1')).toBeUndefined();
      store.close();
    });

    it('finds assignments at or past half their lifetime', async () => {
      const store = open(await fresh());
      const a = bundleOf(randomPayload(2000));
      store.insertBundle({ ...a, createdAt: 1 });
      store.issueAssignments([{ deviceId: 'd1', bundleId: a.id, rolloutId: null, ring: null }], fakeSign); // 1000 → 3000, half at 2000
      expect(store.assignmentsDueForRefresh(1999)).toEqual([]);
      expect(store.assignmentsDueForRefresh(2000).map((x) => x.deviceId)).toEqual(['d1']);
      store.close();
    });

    it('keeps the registry from state reports and stores device events', async () => {
      const store = open(await fresh());
      store.recordState(stateReport('d1', { seq: 1, phase: 'fetching' }), 100);
      store.recordState(stateReport('d1', { seq: 2, phase: 'failed', lastError: { code: 'AGENT_ERR_X', at: 1 } }), 200);
      expect(store.getDevice('d1')).toMatchObject({ firstSeen: 100, lastSeen: 200, phase: 'failed', lastErrorCode: 'AGENT_ERR_X' });
      store.recordEvent({ v: 1, deviceId: 'd1', seq: 3, at: 5, kind: 'fetch-failed', code: 'AGENT_ERR_X' }, 300);
      expect(store.listEvents('d1')).toEqual([{ v: 1, deviceId: 'd1', seq: 3, at: 5, kind: 'fetch-failed', code: 'AGENT_ERR_X' }]);
      store.close();
    });

    it('State_report_order_in_the_database: a report whose seq is not above the stored one changes nothing, whoever writes it', async () => {
      const at = await fresh();
      const store = open(at);
      // Two stores on one database stand for two hubs: each write goes through the same conditional upsert.
      const other = open(at);
      store.recordState(stateReport('d1', { seq: 5, phase: 'committed' }), 100);
      store.flushReports();
      other.recordState(stateReport('d1', { seq: 3, phase: 'fetching' }), 200);
      other.recordState(stateReport('d1', { seq: 5, phase: 'failed' }), 250);
      other.flushReports();
      expect(store.getDevice('d1')).toMatchObject({ state: { seq: 5 }, phase: 'committed', firstSeen: 100, lastSeen: 100 });
      expect(store.storedStateSeq('d1')).toBe(5);
      other.recordState(stateReport('d1', { seq: 6, phase: 'idle' }), 300);
      other.flushReports();
      expect(store.getDevice('d1')).toMatchObject({ state: { seq: 6 }, phase: 'idle', lastSeen: 300 });
      expect(store.storedStateSeq('d1')).toBe(6);
      other.close();
      store.close();
    });

    it('Event_once_in_the_database: a device event written by two stores on one database (two hubs) is stored once', async () => {
      const at = await fresh();
      const store = open(at);
      const other = open(at);
      const e = { v: 1, deviceId: 'd1', seq: 4, at: 5, kind: 'installed', bundleId: 'b'.repeat(64), counter: 1 } as const;
      store.recordEvent(e, 100);
      store.flushReports();
      // The other hub's replay guard never saw seq 4 (it knew only an older one): its write is the replay.
      other.recordEvent(e, 200);
      other.recordEvent({ ...e, seq: 5, kind: 'rolled-back' }, 210);
      other.flushReports();
      expect(store.listEvents('d1').map((x) => [x.seq, x.kind])).toEqual([[5, 'rolled-back'], [4, 'installed']]);
      expect(store.storedEventSeq('d1')).toBe(5);
      other.close();
      store.close();
    });

    it('Events_deduplicated_on_upgrade: the step that makes (device, seq) unique keeps one row of each, the one already in the log first', async () => {
      const at = await fresh();
      const step = MIGRATIONS.findIndex((m) => typeof m === 'string' && m.includes('events_device_seq'));
      expect(step).toBeGreaterThan(0);
      const db: Db = at.url ? PgDb.connect(at.url) : new Database(join(at.dir, 'hub.db'));
      try {
        migrate(db, MIGRATIONS.slice(0, step));
        const add = db.prepare('INSERT INTO events (device_id, seq, at, kind, received_at, log_index) VALUES (?, ?, 1, ?, 1, ?)');
        // d1 seq 4 three times, the second already marked as logged (leaf 0); d2 seq 4 twice; d1 seq 5 once.
        for (const [d, seq, kind, leaf] of [['d1', 4, 'a', null], ['d1', 4, 'b', 0], ['d2', 4, 'c', null], ['d1', 4, 'd', null], ['d1', 5, 'e', null], ['d2', 4, 'f', null]] as const) add.run(d, seq, kind, leaf);
        expect(migrate(db, MIGRATIONS)).toEqual({ from: step, to: MIGRATIONS.length });
        expect(db.prepare('SELECT device_id AS d, seq, kind, log_index AS leaf FROM events ORDER BY device_id, seq').all())
          .toEqual([{ d: 'd1', seq: 4, kind: 'b', leaf: 0 }, { d: 'd1', seq: 5, kind: 'e', leaf: null }, { d: 'd2', seq: 4, kind: 'c', leaf: null }]);
        expect(() => add.run('d1', 5, 'g', null)).toThrow(/unique/i);
      } finally { db.close(); }
    });
});
