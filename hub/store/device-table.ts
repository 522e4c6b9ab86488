/** The device registry (latest state report per device) and device events; both written through the report queue. */
import type { DeviceEvent, StateReport } from '@fleetcast/protocol/messages.js';
import type { DeviceRecord } from '../store.js';
import { deviceFromRow, type DeviceRow } from '../store-schema.js';
import { StoreTable } from './store-table.js';

interface StateRow { id: string; state: string; first: number; now: number; active: string | null; phase: string; err: string | null; seq: number }

export class DeviceTable extends StoreTable {
  /**
   * Upsert the registry from a (validated) state report, only when its seq is above the stored one's: the
   * check is the upsert's own WHERE, so it holds across hubs sharing one database (each hub's replay guard,
   * hub/report-replay.ts, knows only what it saw) and between the check and the write. An older report
   * changes nothing, last_seen included. Queued reports are written as multi-row upserts (row-batch.ts), a
   * device's newest of them only (the older ones would change nothing after it).
   */
  recordState(report: StateReport, now: number): void {
    this.queueState({ id: report.deviceId, state: JSON.stringify(report), first: now, now, active: report.active?.bundleId ?? null, phase: report.phase, err: report.lastError?.code ?? null, seq: report.seq });
  }

  private readonly queueState = this.reportBatch<StateRow>({
    insert: 'INSERT INTO devices (id, state, first_seen, last_seen, active_bundle_id, phase, last_error_code, state_seq) VALUES',
    conflict: `ON CONFLICT (id) DO UPDATE SET state = excluded.state, last_seen = excluded.last_seen, active_bundle_id = excluded.active_bundle_id,
      phase = excluded.phase, last_error_code = excluded.last_error_code, state_seq = excluded.state_seq
      WHERE devices.state_seq IS NULL OR devices.state_seq < excluded.state_seq`,
    values: (r) => [r.id, r.state, r.first, r.now, r.active, r.phase, r.err, r.seq],
    key: (r) => r.id,
    // A device first seen in this batch was first seen at its first queued report, whichever is written.
    keep: (queued, next) => ({ ...(next.seq > queued.seq ? next : queued), first: Math.min(queued.first, next.first) }),
  });

  getDevice(id: string): DeviceRecord | undefined {
    this.flushReports();
    const row = this.guard('cannot read devices', () => this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined);
    return row ? deviceFromRow(row) : undefined;
  }

  /**
   * The seq of the device's last stored state report, without writing the queued ones first: the replay
   * guard (hub/report-replay.ts) asks once per device, before that device's first report is queued, so
   * nothing of that device can be waiting. Flushing here cost one commit (an fsync) per device when a
   * whole fleet reconnected after a restart.
   */
  storedStateSeq(deviceId: string): number | undefined {
    const seq = this.guard('cannot read devices', () => this.stmt('SELECT state_seq FROM devices WHERE id = ?').pluck().get(deviceId)) as number | null | undefined;
    return seq ?? undefined;
  }

  /** The highest stored event seq of the device, without writing the queued reports first (as storedStateSeq, for the event channel). */
  storedEventSeq(deviceId: string): number | undefined {
    const seq = this.guard('cannot read events', () => this.stmt('SELECT MAX(seq) FROM events WHERE device_id = ?').pluck().get(deviceId)) as number | null | undefined;
    return seq ?? undefined;
  }

  /** How many devices are in the registry: GET /v1/health asks this often, so it counts rows instead of reading every state. */
  countDevices(): number {
    this.flushReports();
    return this.guard('cannot read devices', () => this.db.prepare('SELECT COUNT(*) FROM devices').pluck().get() as number);
  }

  listDevices(): DeviceRecord[] {
    this.flushReports();
    const rows = this.guard('cannot read devices', () => this.db.prepare('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]);
    return rows.map(deviceFromRow);
  }

  /**
   * Store a device event; `claim` marks one that names a bundle never assigned to the device (hub/events).
   * One already stored under its (device, seq), by another hub sharing the database, is skipped;
   * `onStored` runs once the row is committed, and only if it was new.
   */
  recordEvent(e: DeviceEvent, now: number, claim = false, onStored?: () => void): void {
    this.queueReport(() => {
      const r = this.stmt(`INSERT INTO events (device_id, seq, at, kind, code, bundle_id, counter, detail, received_at, claim)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING`).run(e.deviceId, e.seq, e.at, e.kind, e.code ?? null, e.bundleId ?? null, e.counter ?? null, e.detail ?? null, now, claim ? 1 : 0);
      return r.changes > 0 ? onStored : undefined;
    });
  }

  listEvents(deviceId: string, limit = 100): DeviceEvent[] {
    this.flushReports();
    const rows = this.guard('cannot read events', () => this.db.prepare('SELECT * FROM events WHERE device_id = ? ORDER BY id DESC LIMIT ?').all(deviceId, limit) as Record<string, unknown>[]);
    return rows.map((r) => {
      const e: DeviceEvent = { v: 1, deviceId: r.device_id as string, seq: r.seq as number, at: r.at as number, kind: r.kind as DeviceEvent['kind'] };
      if (r.code !== null) e.code = r.code as string;
      if (r.bundle_id !== null) e.bundleId = r.bundle_id as string;
      if (r.counter !== null) e.counter = r.counter as number;
      if (r.detail !== null) e.detail = r.detail as string;
      return e;
    });
  }
}
