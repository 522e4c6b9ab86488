/**
 * The token store's own migration: a hub data folder from before token expiry
 * (api_tokens without expires_at) gains the column on open, its tokens keep
 * working and never expire, and new tokens expire at their expiresAt.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TokenStore } from '../../hub/auth/tokens.js';

describe('TokenStore expiry', () => {
  it('Token_store_migrates_old_data: adds expires_at to an old table; old tokens still verify, new ones expire', () => {
    const db = new Database(':memory:');
    db.exec(`CREATE TABLE api_tokens (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, role TEXT NOT NULL, label TEXT,
      created_at INTEGER NOT NULL, created_by TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)`);
    const hash = (t: string) => createHash('sha256').update(t, 'utf8').digest();
    db.prepare('INSERT INTO api_tokens (id, hash, role, label, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)').run('tok-000000000001', hash('fct_old'), 'admin', 'old admin', 1, 'bootstrap');
    const store = new TokenStore(db);
    expect(store.verify('fct_old', 1e15)).toEqual({ id: 'tok-000000000001', role: 'admin', label: 'old admin', expiresAt: null });
    const t = store.create('operator', 'admin:tok-000000000001', 1_000, 'alice', 2_000);
    expect(store.verify(t.token, 1_999)).toMatchObject({ role: 'operator', label: 'alice' });
    expect(store.verify(t.token, 2_000)).toBeUndefined();
    expect(store.list().find((x) => x.id === t.id)).toMatchObject({ expiresAt: 2_000, revoked: false });
    // Opening again is a no-op (the column is there).
    expect(() => new TokenStore(db)).not.toThrow();
  });
});
