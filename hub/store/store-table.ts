/**
 * What every table module of the hub's store shares (hub/store.ts is their facade): the database, the
 * queue of device reports written once per event-loop turn (report-queue.ts), prepared statements kept
 * per module, and the wrapping of driver errors into HUB_ERR_STORE (coded errors pass through, such as
 * HUB_ERR_STORE_UNAVAILABLE from a PostgreSQL store that cannot be reached).
 */
import type { Db, Stmt } from '../db/db.js';
import { statementCache } from '../db/statement-cache.js';
import { hubError } from '../errors.js';
import type { AfterCommit, ReportQueue } from './report-queue.js';
import type { RowBatchSpec } from './row-batch.js';

export function storeError(what: string, e: unknown): Error {
  const err = hubError('HUB_ERR_STORE', `${what}: ${(e as Error)?.message ?? String(e)}`);
  err.cause = e;
  return err;
}

export abstract class StoreTable {
  protected readonly stmt: (sql: string) => Stmt;

  constructor(protected readonly db: Db, private readonly reports: ReportQueue) {
    this.stmt = statementCache(db);
  }

  protected queueReport(write: () => AfterCommit | void): void { this.reports.queue(write); }

  /** Rows written together at each flush of the report queue, as multi-row upserts (row-batch.ts). */
  protected reportBatch<R>(spec: RowBatchSpec<R>): (row: R) => void { return this.reports.batch(spec); }

  /** Write queued device reports now (reads of what they write call this first). */
  flushReports(): void { this.reports.flush(); }

  protected guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if ((e as { name?: string }).name === 'FleetcastError') throw e;
      throw storeError(what, e);
    }
  }
}
