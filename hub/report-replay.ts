/**
 * Replayed device reports (issue #6): state reports and events carry a
 * per-device sequence number that only grows (agents start each boot above
 * every earlier boot's, agent/reporter.ts). The hub remembers the highest it
 * accepted per device and channel, in its own table, and drops anything at or
 * below it: a captured report replayed later cannot roll the registry back or
 * fake an install. Telemetry does its own (hub/telemetry).
 */
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';

export class ReplayGuard {
  private readonly get: Database.Statement;
  private readonly put: Database.Statement;
  private readonly cache = new Map<string, number>();
  /** Reports dropped as replays, by channel. */
  readonly dropped: Record<string, number> = {};

  constructor(db: Database.Database, private readonly logger?: Logger) {
    db.exec('CREATE TABLE IF NOT EXISTS device_report_seq (device_id TEXT NOT NULL, channel TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (device_id, channel)) WITHOUT ROWID');
    this.get = db.prepare('SELECT seq FROM device_report_seq WHERE device_id = ? AND channel = ?').pluck();
    this.put = db.prepare('INSERT INTO device_report_seq (device_id, channel, seq) VALUES (?, ?, ?) ON CONFLICT(device_id, channel) DO UPDATE SET seq = excluded.seq');
  }

  /** True (and remembered) when `seq` is above every earlier one of this device and channel. */
  fresh(channel: 'state' | 'event', r: { deviceId: string; seq: number }): boolean {
    const k = `${channel}\u0000${r.deviceId}`;
    let last = this.cache.get(k);
    if (last === undefined) { last = (this.get.get(r.deviceId, channel) as number | undefined) ?? -1; this.cache.set(k, last); }
    if (r.seq <= last) {
      this.dropped[channel] = (this.dropped[channel] ?? 0) + 1;
      this.logger?.warn({ code: 'HUB_ERR_REPORT_REPLAY', deviceId: r.deviceId, channel, seq: r.seq, last }, 'dropped a replayed device report');
      return false;
    }
    this.cache.set(k, r.seq);
    this.put.run(r.deviceId, channel, r.seq);
    return true;
  }
}
