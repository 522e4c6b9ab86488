/*
 * Device reports come in bursts (every agent reports each install phase), and
 * each autocommit would fsync the WAL on the event loop the embedded broker
 * shares: at 200 agents that alone stalled a rollout for seconds. Reports are
 * therefore queued and written in ONE transaction per event-loop turn; every
 * read of what they write flushes first, so callers still read their writes.
 * A report lost to a power cut is sent again (state is retained, devices
 * re-report on connect); counters and assignments are never queued.
 *
 * State reports and reported counters are queued as rows of a RowBatch
 * (row-batch.ts), written as multi-row upserts; other reports as one write each.
 */
import type { Db } from '../db/db.js';
import { RowBatch, type RowBatchSpec } from './row-batch.js';

/** What a queued write may return: called once its row is committed (not when its transaction rolled back). */
export type AfterCommit = () => void;

export class ReportQueue {
  private readonly pending: (() => AfterCommit | void)[] = [];
  private readonly batches: RowBatch<any>[] = [];
  private timer: NodeJS.Immediate | undefined;
  /** Reports dropped because even their single-row retry failed (disk full, damaged file, store unreachable). */
  failures = 0;

  constructor(private readonly db: Db) {}

  /** How many reports wait for the next write (a batch counts one per row it will write). */
  get size(): number { return this.batches.reduce((n, b) => n + b.size, this.pending.length); }

  queue(write: () => AfterCommit | void): void {
    this.pending.push(write);
    this.timer ??= setImmediate(() => this.flush());
  }

  /** A batch of rows written at each flush; `add` queues one row of it. */
  batch<R>(spec: RowBatchSpec<R>): (row: R) => void {
    const b = new RowBatch(this.db, spec);
    this.batches.push(b);
    return (row) => { b.add(row); this.timer ??= setImmediate(() => this.flush()); };
  }

  /** Write queued device reports now, in one transaction (reads of devices, events and counters call this). */
  flush(): void {
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
    if (this.size === 0 || !this.db.open) return;
    const batch = this.pending.splice(0);
    let committed: AfterCommit[] = [];
    try {
      this.db.transaction(() => {
        committed = [];
        for (const w of batch) { const after = w(); if (after) committed.push(after); }
        for (const b of this.batches) b.write();
      })();
      for (const b of this.batches) b.clear();
    } catch {
      // One bad row must not lose the others: retry each on its own, count what still fails.
      committed = [];
      for (const w of batch) { try { const after = w(); if (after) committed.push(after); } catch { this.failures++; } }
      for (const b of this.batches) this.failures += b.writeEach();
    }
    for (const after of committed) after();
  }
}
