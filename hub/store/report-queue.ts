/*
 * Device reports come in bursts (every agent reports each install phase), and
 * each autocommit would fsync the WAL on the event loop the embedded broker
 * shares: at 200 agents that alone stalled a rollout for seconds. Reports are
 * therefore queued and written in ONE transaction per event-loop turn; every
 * read of what they write flushes first, so callers still read their writes.
 * A report lost to a power cut is sent again (state is retained, devices
 * re-report on connect); counters and assignments are never queued.
 */
import type { Db } from '../db/db.js';

export class ReportQueue {
  private readonly pending: (() => void)[] = [];
  private timer: NodeJS.Immediate | undefined;
  /** Reports dropped because even their single-row retry failed (disk full, damaged file, store unreachable). */
  failures = 0;

  constructor(private readonly db: Db) {}

  /** How many reports wait for the next write. */
  get size(): number { return this.pending.length; }

  queue(write: () => void): void {
    this.pending.push(write);
    this.timer ??= setImmediate(() => this.flush());
  }

  /** Write queued device reports now, in one transaction (reads of devices, events and counters call this). */
  flush(): void {
    if (this.timer) clearImmediate(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0 || !this.db.open) return;
    const batch = this.pending.splice(0);
    try {
      this.db.transaction(() => { for (const w of batch) w(); })();
    } catch {
      // One bad row must not lose the others: retry each on its own, count what still fails.
      for (const w of batch) { try { w(); } catch { this.failures++; } }
    }
  }
}
