/**
 * The transparency log's tables (steps of the store's migration chain,
 * hub/store-schema.ts): complete subtree hashes for the
 * Merkle tree, the leaves' exact bytes, and every signed checkpoint.
 */
import type { Db, Stmt } from '../db/db.js';
import type { HashStore } from '@fleetcast/signing/merkle.js';

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
