/**
 * Counters and assignments. Counters live here because they must survive restarts: an agent refuses an
 * assignment whose counter it has passed (DESIGN.md "Trust"), so a hub that forgot its counters would
 * lock its fleet out.
 */
import type { Fence } from '../cluster/fence.js';
import type { AssignmentRecord, SignAssignment } from '../store.js';
import { assignmentFromRow, type AssignmentRow } from '../store-schema.js';
import { StoreTable } from './store-table.js';

export class AssignmentTable extends StoreTable {
  /** Was `bundleId` ever assigned to the device (under `counter`, when given)? */
  wasAssigned(deviceId: string, bundleId: string, counter?: number): boolean {
    const row = this.guard('cannot read assignments', () => this.stmt('SELECT first_counter AS lo, last_counter AS hi FROM assigned_bundles WHERE device_id = ? AND bundle_id = ?')
      .get(deviceId, bundleId) as { lo: number; hi: number } | undefined);
    return row !== undefined && (counter === undefined || (counter >= row.lo && counter <= row.hi));
  }

  lastCounter(deviceId: string): number {
    this.flushReports();
    const row = this.guard('cannot read counters', () => this.db.prepare('SELECT last_counter FROM device_counters WHERE device_id = ?').get(deviceId) as { last_counter: number } | undefined);
    return row?.last_counter ?? 0;
  }

  /**
   * A device reports the counter it has accepted; never issue at or below it,
   * even if this hub's database was restored from an older backup.
   */
  noteReportedCounter(deviceId: string, counter: number): void {
    this.queueCounter({ deviceId, counter });
  }

  // Written with the other queued reports as multi-row upserts (row-batch.ts), a device's highest counter only.
  private readonly queueCounter = this.reportBatch<{ deviceId: string; counter: number }>({
    insert: 'INSERT INTO device_counters (device_id, last_counter) VALUES',
    conflict: 'ON CONFLICT (device_id) DO UPDATE SET last_counter = max(last_counter, excluded.last_counter)',
    values: (r) => [r.deviceId, r.counter],
    key: (r) => r.deviceId,
    keep: (queued, next) => (next.counter > queued.counter ? next : queued),
  });

  /**
   * Set by a hub of a cluster (through HubStore.fence): its leadership check, made first inside the
   * transaction that issues counters (hub/cluster/fence.ts), so a deposed hub cannot issue one.
   */
  fence: Fence | undefined;

  /**
   * Allocate the next counter for each device, sign, and store the assignment,
   * all in one transaction: either every target gets a new, strictly larger
   * counter and its assignment, or nothing changes.
   */
  issueAssignments(items: readonly { deviceId: string; bundleId: string; rolloutId: string | null; ring: string | null }[], sign: SignAssignment): AssignmentRecord[] {
    // Counters devices reported must be in before new ones are allocated above them.
    this.flushReports();
    const bump = this.db.prepare(`INSERT INTO device_counters (device_id, last_counter) VALUES (?, 1)
      ON CONFLICT (device_id) DO UPDATE SET last_counter = last_counter + 1 RETURNING last_counter`);
    const put = this.db.prepare(`INSERT INTO assignments (device_id, counter, bundle_id, envelope, rollout_id, ring, issued_at, expires_at)
      VALUES (@deviceId, @counter, @bundleId, @envelope, @rolloutId, @ring, @issuedAt, @expiresAt)
      ON CONFLICT (device_id) DO UPDATE SET counter = @counter, bundle_id = @bundleId, envelope = @envelope, rollout_id = @rolloutId,
        ring = @ring, issued_at = @issuedAt, expires_at = @expiresAt`);
    const history = this.db.prepare(`INSERT INTO assigned_bundles (device_id, bundle_id, first_counter, last_counter) VALUES (?, ?, ?, ?)
      ON CONFLICT (device_id, bundle_id) DO UPDATE SET last_counter = max(last_counter, excluded.last_counter)`);
    const run = this.db.transaction(() => { this.fence?.(this.db, 'issuing assignment counters'); return items.map((it) => {
      const { last_counter: counter } = bump.get(it.deviceId) as { last_counter: number };
      const signed = sign(it.deviceId, counter);
      const rec: AssignmentRecord = { deviceId: it.deviceId, counter, bundleId: it.bundleId, envelope: signed.envelope, rolloutId: it.rolloutId, ring: it.ring, issuedAt: signed.issuedAt, expiresAt: signed.expiresAt };
      put.run({ ...rec, envelope: JSON.stringify(rec.envelope) });
      history.run(it.deviceId, it.bundleId, counter, counter);
      return rec;
    }); });
    return this.guard('cannot store assignments', () => run());
  }

  getAssignment(deviceId: string): AssignmentRecord | undefined {
    // Prepared once: asked for every chunk request (hub/transfer-grants.ts) and every device of a deploy.
    const row = this.guard('cannot read assignments', () => this.stmt('SELECT * FROM assignments WHERE device_id = ?').get(deviceId) as AssignmentRow | undefined);
    return row ? assignmentFromRow(row) : undefined;
  }

  listAssignments(): AssignmentRecord[] {
    const rows = this.guard('cannot read assignments', () => this.db.prepare('SELECT * FROM assignments ORDER BY device_id').all() as AssignmentRow[]);
    return rows.map(assignmentFromRow);
  }

  /** Assignments at or past half their lifetime at `now` (the refresher re-signs these). */
  assignmentsDueForRefresh(now: number): AssignmentRecord[] {
    const rows = this.guard('cannot read assignments', () => this.db.prepare(
      'SELECT * FROM assignments WHERE issued_at + (expires_at - issued_at) / 2 <= ? ORDER BY device_id').all(now) as AssignmentRow[]);
    return rows.map(assignmentFromRow);
  }
}
