/**
 * Replayed device reports (issue #6): state reports and events carry a
 * per-device sequence number that only grows (agents start each boot above
 * every earlier boot's, agent/reporter.ts). The hub drops anything at or below
 * the highest it accepted per device and channel: a captured report replayed
 * later cannot roll the registry back or fake an install. The highest seqs are
 * read once per device from what the store already keeps (the last state
 * report, the events table) and then tracked in memory, so the guard adds no
 * write to the hot path of a large fleet. Telemetry does its own (hub/telemetry).
 *
 * Hubs sharing one database each know only what they saw, so the order of state
 * reports is also kept by the database itself: the device write applies only when
 * the report's seq is above the stored one (hub/store/device-table.ts).
 */
import type { Logger } from 'pino';
import type { HubStore } from './store.js';

export class ReplayGuard {
  private readonly last = new Map<string, number>();
  /** Reports dropped as replays, by channel. */
  readonly dropped: Record<string, number> = {};

  constructor(private readonly store: HubStore, private readonly logger?: Logger) {}

  /** True (and remembered) when `seq` is above every earlier one of this device and channel. */
  fresh(channel: 'state' | 'event', r: { deviceId: string; seq: number }): boolean {
    const k = `${channel}\u0000${r.deviceId}`;
    let last = this.last.get(k);
    if (last === undefined) {
      last = channel === 'state'
        ? (this.store.storedStateSeq(r.deviceId) ?? -1)
        : (this.store.storedEventSeq(r.deviceId) ?? -1);
    }
    if (r.seq <= last) {
      this.last.set(k, last);
      this.dropped[channel] = (this.dropped[channel] ?? 0) + 1;
      this.logger?.warn({ code: 'HUB_ERR_REPORT_REPLAY', deviceId: r.deviceId, channel, seq: r.seq, last }, 'dropped a replayed device report');
      return false;
    }
    this.last.set(k, r.seq);
    return true;
  }
}
