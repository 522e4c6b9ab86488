/**
 * Queued device reports of one kind written as multi-row upserts, one statement per up to 256 rows, instead
 * of one statement per report: on PostgreSQL every statement is a round trip to the server with the event
 * loop waiting (hub/db/pg-db.ts), so at 100,000 devices one upsert per state report alone was ~1,700
 * statements a second. One row per key is kept until the flush (the one `keep` chooses: a device's newest
 * state report, its highest counter), because PostgreSQL refuses an upsert that touches one row twice.
 *
 * Statements come in a few fixed sizes (256, 64, 16, 4, 1 rows), so the prepared statements stay few; the
 * report queue (report-queue.ts) writes every batch inside its one transaction per event-loop turn, and
 * after a failed transaction retries each row alone, as it does for the other queued writes.
 */
import type { Db, Stmt } from '../db/db.js';

const SIZES = [256, 64, 16, 4, 1] as const;

export interface RowBatchSpec<R> {
  /** `INSERT INTO t (a, b, …) VALUES` with the columns in `values` order; the row tuples are appended. */
  insert: string;
  /** What follows the VALUES: the ON CONFLICT clause. */
  conflict: string;
  /** The row's parameters, one per column, in order. */
  values(r: R): unknown[];
  key(r: R): string;
  /** Which of two queued rows of one key to write (the other is dropped). */
  keep(queued: R, next: R): R;
}

export class RowBatch<R> {
  readonly #rows = new Map<string, R>();
  readonly #stmts = new Map<number, Stmt>();
  readonly #columns: number;

  constructor(private readonly db: Db, private readonly spec: RowBatchSpec<R>) {
    this.#columns = /\(([^)]*)\)\s*VALUES\s*$/i.exec(spec.insert)![1].split(',').length;
  }

  get size(): number { return this.#rows.size; }

  add(r: R): void {
    const k = this.spec.key(r);
    const queued = this.#rows.get(k);
    this.#rows.set(k, queued === undefined ? r : this.spec.keep(queued, r));
  }

  #stmt(n: number): Stmt {
    let st = this.#stmts.get(n);
    if (!st) {
      const tuple = `(${Array.from({ length: this.#columns }, () => '?').join(', ')})`;
      st = this.db.prepare(`${this.spec.insert} ${Array.from({ length: n }, () => tuple).join(', ')} ${this.spec.conflict}`);
      this.#stmts.set(n, st);
    }
    return st;
  }

  /** Write every queued row (inside the caller's transaction); the rows stay queued until `clear`. */
  write(): void {
    // In key order: two hubs of a cluster writing overlapping devices then lock their rows in the same order,
    // so their transactions wait for each other instead of deadlocking.
    const rows = [...this.#rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, r]) => r);
    let at = 0;
    for (const n of SIZES) {
      for (; rows.length - at >= n; at += n) this.#stmt(n).run(...rows.slice(at, at + n).flatMap((r) => this.spec.values(r)));
    }
  }

  /** Write each queued row in a statement of its own, then clear; returns how many failed. */
  writeEach(): number {
    let failed = 0;
    for (const r of this.#rows.values()) { try { this.#stmt(1).run(...this.spec.values(r)); } catch { failed++; } }
    this.clear();
    return failed;
  }

  clear(): void { this.#rows.clear(); }
}
