/**
 * The transparency log's SQLite tables (its own, created with IF NOT EXISTS at
 * start-up, outside hub.db's migration chain): complete subtree hashes for the
 * Merkle tree, the leaves' exact bytes, and every signed checkpoint.
 */
import type { Db, Stmt } from '../db/db.js';
import type { HashStore } from '@fleetcast/signing/merkle.js';

export function createTranslogTables(db: Db): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS translog_hashes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS translog_leaves (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, ref TEXT, data BLOB NOT NULL, created_at INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS translog_leaves_ref ON translog_leaves (kind, ref);
    CREATE TABLE IF NOT EXISTS translog_checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL, created_at INTEGER NOT NULL);
  `);
}

/** HashStore over translog_hashes: (level, index) → 32 bytes; rows are written once and never change. */
export class SqliteHashStore implements HashStore {
  private readonly getStmt: Stmt;
  private readonly putStmt: Stmt;

  constructor(db: Db) {
    this.getStmt = db.prepare('SELECT hash FROM translog_hashes WHERE level = ? AND idx = ?').pluck();
    // OR IGNORE: re-appending after a failed transaction writes identical hashes for the same slots.
    this.putStmt = db.prepare('INSERT OR REPLACE INTO translog_hashes (level, idx, hash) VALUES (?, ?, ?)');
  }

  get(level: number, index: number): Buffer | undefined {
    return (this.getStmt.get(level, index) as Buffer | undefined) ?? undefined;
  }

  put(level: number, index: number, hash: Buffer): void {
    this.putStmt.run(level, index, hash);
  }
}
