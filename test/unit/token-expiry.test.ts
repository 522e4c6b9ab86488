/**
 * Token expiry across an upgrade: a hub data folder from before token expiry (schema version 4, api_tokens
 * made on the fly without expires_at) gains the column in the migration chain's step 5; its tokens keep
 * working and never expire, and new tokens expire at their expiresAt.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TokenStore } from '../../hub/auth/tokens.js';
import { migrate } from '../../hub/db/migrate.js';
import { MIGRATIONS } from '../../hub/store-schema.js';

describe('TokenStore expiry', () => {
  it('Token_store_migrates_old_data: the chain adds expires_at to an old table; old tokens still verify, new ones expire', () => {
    const db = new Database(':memory:');
    migrate(db, MIGRATIONS.slice(0, 4));
    // api_tokens as the token store created it before tokens could expire (outside the chain then).
    db.exec(`CREATE TABLE api_tokens (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, role TEXT NOT NULL, label TEXT,
      created_at INTEGER NOT NULL, created_by TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)`);
    const hash = (t: string) => createHash('sha256').update(t, 'utf8').digest();
    db.prepare('INSERT INTO api_tokens (id, hash, role, label, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)').run('tok-000000000001', hash('fct_old'), 'admin', 'old admin', 1, 'bootstrap');
    expect(migrate(db, MIGRATIONS)).toEqual({ from: 4, to: MIGRATIONS.length });
    const store = new TokenStore(db);
    expect(store.verify('fct_old', 1e15)).toEqual({ id: 'tok-000000000001', role: 'admin', label: 'old admin', expiresAt: null });
    const t = store.create('operator', 'admin:tok-000000000001', 1_000, 'alice', 2_000);
    expect(store.verify(t.token, 1_999)).toMatchObject({ role: 'operator', label: 'alice' });
    expect(store.verify(t.token, 2_000)).toBeUndefined();
    expect(store.list().find((x) => x.id === t.id)).toMatchObject({ expiresAt: 2_000, revoked: false });
    // Migrating again is a no-op (the database is at the chain's end).
    expect(migrate(db, MIGRATIONS)).toEqual({ from: MIGRATIONS.length, to: MIGRATIONS.length });
  });
});
