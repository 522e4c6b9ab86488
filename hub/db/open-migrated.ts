/**
 * A database at the hub's current schema: a SQLite file (or ':memory:') opened with the hub's settings, or a
 * PostgreSQL database (postgres://…), with the one migration chain (hub/store-schema.ts) applied. The store
 * opens its database through here, and so do tests and benches that build a single module (telemetry,
 * tokens, the log…) on a bare database: no one recreates a table's DDL.
 */
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../store-schema.js';
import type { Db } from './db.js';
import { migrate } from './migrate.js';
import { PgDb } from './pg-db.js';

/** postgres:// or postgresql:// → the PostgreSQL store; anything else is a SQLite file path. */
export function isPostgresUrl(where: string): boolean {
  return /^postgres(ql)?:\/\//i.test(where);
}

export function openSqlite(path: string): Database.Database {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db, MIGRATIONS);
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}

/** Unreachable → HUB_ERR_STORE_UNAVAILABLE; a schema newer than this hub's → HUB_ERR_STORE_SCHEMA (either engine). */
export function openPostgres(url: string): Db {
  const db = PgDb.connect(url);
  try { migrate(db, MIGRATIONS); } catch (e) { try { db.close(); } catch { /* reporting the first error */ } throw e; }
  return db;
}

export function openMigrated(where: string): Db {
  return isPostgresUrl(where) ? openPostgres(where) : openSqlite(where);
}
