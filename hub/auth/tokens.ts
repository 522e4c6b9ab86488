/**
 * API bearer tokens. A token is 32 random bytes (base64url) shown once; the hub
 * keeps only its sha256, with a role: admin (tokens, keys, and everything an
 * operator may do), operator (publish, deploy, rollouts), auditor (read only).
 * On first start the hub creates one admin token and writes it, mode 0600, to
 * `<dataDir>/admin.token` (the bootstrap path: read it, create the tokens you
 * need with `fleetcast token create`, then delete or revoke it as you like).
 * The api_tokens table is a step of the store's migration chain (hub/store-schema.ts).
 */
import type { Db } from '../db/db.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROLES = ['admin', 'operator', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export interface TokenInfo { id: string; role: Role; label: string | null; createdAt: number; createdBy: string; revoked: boolean; expiresAt: number | null }

const hash = (token: string) => createHash('sha256').update(token, 'utf8').digest();
export const BOOTSTRAP_FILE = 'admin.token';

export class TokenStore {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  create(role: Role, createdBy: string, now: number, label: string | null = null, expiresAt: number | null = null): { id: string; token: string; role: Role; label: string | null; expiresAt: number | null } {
    const token = `fct_${randomBytes(32).toString('base64url')}`;
    const id = `tok-${randomBytes(6).toString('hex')}`;
    this.db.prepare('INSERT INTO api_tokens (id, hash, role, label, created_at, created_by, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(id, hash(token), role, label, now, createdBy, expiresAt);
    return { id, token, role, label, expiresAt };
  }

  /** The token's identity, or undefined for an unknown, revoked or expired (expiresAt ≤ now) token. */
  verify(token: string, now = Date.now()): { id: string; role: Role; label: string | null; expiresAt: number | null } | undefined {
    const h = hash(token);
    const row = this.db.prepare('SELECT id, hash, role, label, expires_at FROM api_tokens WHERE hash = ? AND revoked = 0').get(h) as { id: string; hash: Buffer; role: Role; label: string | null; expires_at: number | null } | undefined;
    if (row && row.expires_at !== null && row.expires_at <= now) return undefined;
    // The lookup is by hash already; compare again in constant time for good measure.
    return row && timingSafeEqual(row.hash, h) ? { id: row.id, role: row.role, label: row.label, expiresAt: row.expires_at } : undefined;
  }

  list(): TokenInfo[] {
    return (this.db.prepare('SELECT * FROM api_tokens ORDER BY created_at, id').all() as { id: string; role: Role; label: string | null; created_at: number; created_by: string; revoked: number; expires_at: number | null }[])
      .map((r) => ({ id: r.id, role: r.role, label: r.label, createdAt: r.created_at, createdBy: r.created_by, revoked: r.revoked === 1, expiresAt: r.expires_at }));
  }

  revoke(id: string): boolean {
    return this.db.prepare('UPDATE api_tokens SET revoked = 1 WHERE id = ?').run(id).changes > 0;
  }

  /** First start: no admin token yet → make one and write it to dataDir/admin.token (0600). Returns its path when made. */
  bootstrap(dataDir: string, now: number): string | undefined {
    const any = this.db.prepare("SELECT 1 FROM api_tokens WHERE role = 'admin' LIMIT 1").get();
    const path = join(dataDir, BOOTSTRAP_FILE);
    if (any && existsSync(path)) return undefined;
    if (any) return undefined;
    const t = this.create('admin', 'bootstrap', now, 'initial admin token');
    writeFileSync(path, `${t.token}\n`, { mode: 0o600 });
    return path;
  }
}

/** The bootstrap admin token a hub wrote in its data folder (for in-process callers: demo, benchmarks). */
export function readAdminToken(dataDir: string): string {
  return readFileSync(join(dataDir, BOOTSTRAP_FILE), 'utf8').trim();
}
