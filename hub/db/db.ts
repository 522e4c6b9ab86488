/**
 * The database seam of the hub's store code: the subset of better-sqlite3's API it uses (prepare →
 * run/get/all/iterate/pluck, transaction, exec, pragma, inTransaction). better-sqlite3's Database IS
 * a Db (the embedded default pays nothing for the seam); hub/db/pg-db.ts is the PostgreSQL one.
 *
 * Why synchronous on PostgreSQL too: the hub's multi-row changes (counters + assignments, log leaf +
 * hashes + checkpoint, a rollout's state + its decision) were written for SQLite's synchronous
 * transactions, inside which no other event-loop work can interleave. Keeping that shape keeps them
 * atomic and race-free on PostgreSQL as well, with one code path for both engines.
 */

export interface RunResult { changes: number; lastInsertRowid: number | bigint }

export interface Stmt {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): IterableIterator<unknown>;
  /** Rows become their first column's value (better-sqlite3's pluck()). */
  pluck(on?: boolean): Stmt;
}

export interface Db {
  prepare(sql: string): Stmt;
  /** `fn` wrapped in BEGIN/COMMIT (a savepoint when nested); a throw rolls back and rethrows. */
  transaction<T>(fn: (...args: any[]) => T): (...args: any[]) => T;
  exec(sql: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  close(): unknown;
  readonly open: boolean;
  readonly inTransaction: boolean;
}

/** Which engine a Db runs on, for the few statements that must differ (see hub/store-schema.ts). */
export type Engine = 'sqlite' | 'postgres';

export function engineOf(db: Db): Engine {
  return (db as { engine?: Engine }).engine === 'postgres' ? 'postgres' : 'sqlite';
}
