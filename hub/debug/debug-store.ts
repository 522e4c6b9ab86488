/**
 * Debug sampling sessions and their audit trail (tables of the store's
 * migration chain, hub/store-schema.ts).
 *
 * One row per device ever put in debug: the current (or last) session, the
 * last control counter issued to it (strictly increasing: the agent refuses a
 * lower one), and the signed control envelope retained on its control topic
 * with whether the broker has acknowledged it and whether it was cleared.
 * Every on, off and expiry is also appended to debug_audit (who, when, what).
 */
import type { Db } from '../db/db.js';
import type { Fence } from '../cluster/fence.js';
import type { Envelope } from '@fleetcast/protocol/envelope.js';

export interface DebugSessionRow {
  deviceId: string;
  counter: number;
  /** Rows per window of the current or last session; null when none was ever started. */
  rowsPerWindow: number | null;
  startedAt: number | null;
  until: number | null;
  /** When an operator turned it off or it expired; null while it is (or was meant to be) on. */
  endedAt: number | null;
  actor: string | null;
  envelope: Envelope | null;
  expiresAt: number | null;
  published: boolean;
  cleared: boolean;
}

export type AuditAction = 'on' | 'off' | 'expired';
export interface AuditEntry { id: number; at: number; deviceId: string; action: AuditAction; actor: string; rowsPerWindow: number | null; until: number | null; counter: number | null }

interface Row { device_id: string; counter: number; rows_per_window: number | null; started_at: number | null; until: number | null; ended_at: number | null; actor: string | null; envelope: string | null; expires_at: number | null; published: number; cleared: number }

const fromRow = (r: Row): DebugSessionRow => ({
  deviceId: r.device_id, counter: r.counter, rowsPerWindow: r.rows_per_window, startedAt: r.started_at, until: r.until, endedAt: r.ended_at,
  actor: r.actor, envelope: r.envelope ? (JSON.parse(r.envelope) as Envelope) : null, expiresAt: r.expires_at, published: r.published === 1, cleared: r.cleared === 1,
});

export class DebugSessionStore {
  readonly db: Db;
  /**
   * A hub of a cluster checks its leadership epoch first in each transaction that issues a control
   * counter (write, resign), as the assignment counters do (hub/cluster/fence.ts): a device refuses a
   * counter it has seen, so a deposed leader must never issue one the new leader may issue too.
   * expire() and mark() issue nothing and are conditional (any hub may record an expiry it reads).
   */
  private readonly fence: Fence | undefined;

  constructor(db: Db, fence?: Fence) {
    this.db = db;
    this.fence = fence;
  }

  get(deviceId: string): DebugSessionRow | undefined {
    const r = this.db.prepare('SELECT * FROM debug_sessions WHERE device_id = ?').get(deviceId) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** Sessions on at `now`: started, not ended, not past `until`. */
  active(now: number): DebugSessionRow[] {
    return (this.db.prepare('SELECT * FROM debug_sessions WHERE rows_per_window IS NOT NULL AND ended_at IS NULL AND until > ? ORDER BY device_id').all(now) as Row[]).map(fromRow);
  }

  /** Sessions past `until` that no one has ended yet (the sweeper records them as expired). */
  expired(now: number): DebugSessionRow[] {
    return (this.db.prepare('SELECT * FROM debug_sessions WHERE rows_per_window IS NOT NULL AND ended_at IS NULL AND until <= ?').all(now) as Row[]).map(fromRow);
  }

  /** Retained control messages still on the broker: not yet acknowledged, or not yet cleared. */
  retained(): DebugSessionRow[] {
    return (this.db.prepare('SELECT * FROM debug_sessions WHERE envelope IS NOT NULL AND cleared = 0').all() as Row[]).map(fromRow);
  }

  /**
   * Write a device's new session state and its audit entry in one transaction;
   * `check` runs inside it first (the limit on devices in debug is read and
   * written atomically).
   */
  write(next: DebugSessionRow, audit: Omit<AuditEntry, 'id'>, check?: () => void): void {
    this.db.transaction(() => {
      this.fence?.(this.db, 'issuing a debug control counter');
      check?.();
      this.db.prepare(`INSERT INTO debug_sessions (device_id, counter, rows_per_window, started_at, until, ended_at, actor, envelope, expires_at, published, cleared)
        VALUES (@deviceId, @counter, @rowsPerWindow, @startedAt, @until, @endedAt, @actor, @envelope, @expiresAt, @published, @cleared)
        ON CONFLICT (device_id) DO UPDATE SET counter = @counter, rows_per_window = @rowsPerWindow, started_at = @startedAt, until = @until, ended_at = @endedAt,
          actor = @actor, envelope = @envelope, expires_at = @expiresAt, published = @published, cleared = @cleared`).run({
        ...next, envelope: next.envelope ? JSON.stringify(next.envelope) : null, published: next.published ? 1 : 0, cleared: next.cleared ? 1 : 0,
      });
      this.db.prepare('INSERT INTO debug_audit (at, device_id, action, actor, rows_per_window, until, counter) VALUES (@at, @deviceId, @action, @actor, @rowsPerWindow, @until, @counter)').run(audit);
    })();
  }

  /** Mark the expired session ended at its `until`, with an audit entry, unless someone ended it meanwhile. */
  expire(s: DebugSessionRow): boolean {
    return this.db.transaction(() => {
      const n = this.db.prepare('UPDATE debug_sessions SET ended_at = until WHERE device_id = ? AND ended_at IS NULL AND until = ?').run(s.deviceId, s.until).changes;
      if (n > 0) this.db.prepare("INSERT INTO debug_audit (at, device_id, action, actor, rows_per_window, until, counter) VALUES (?, ?, 'expired', 'hub', ?, ?, ?)").run(s.until, s.deviceId, s.rowsPerWindow, s.until, s.counter);
      return n > 0;
    })();
  }

  /** The same control message signed again (a new root or hub key): new counter and envelope, to be published. */
  resign(deviceId: string, counter: number, envelope: Envelope): void {
    this.db.transaction(() => {
      this.fence?.(this.db, 'issuing a debug control counter');
      this.db.prepare('UPDATE debug_sessions SET counter = ?, envelope = ?, published = 0 WHERE device_id = ?').run(counter, JSON.stringify(envelope), deviceId);
    })();
  }

  /** The broker acknowledged (published) or dropped (cleared) the retained copy of counter `counter`. */
  mark(deviceId: string, counter: number, what: 'published' | 'cleared'): void {
    this.db.prepare(`UPDATE debug_sessions SET ${what} = 1 WHERE device_id = ? AND counter = ?`).run(deviceId, counter);
  }

  audit(deviceId: string, limit = 50): AuditEntry[] {
    return (this.db.prepare('SELECT id, at, device_id AS deviceId, action, actor, rows_per_window AS rowsPerWindow, until, counter FROM debug_audit WHERE device_id = ? ORDER BY id DESC LIMIT ?')
      .all(deviceId, limit) as AuditEntry[]);
  }
}
