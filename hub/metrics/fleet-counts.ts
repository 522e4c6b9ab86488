/**
 * The registry counts a scrape reads, each one GROUP BY over hub.db rather
 * than a walk over every device record (which parses each device's last state
 * report): a scrape every 15 s must stay cheap at tens of thousands of devices.
 */
import type { Db } from '../db/db.js';
import type { HubStore } from '../store.js';

export interface DeviceCount { phase: string; model: string; version: string; n: number }

export class FleetCounts {
  readonly #db: Db;
  readonly #store: Pick<HubStore, 'flushReports'>;

  constructor(store: Pick<HubStore, 'db' | 'flushReports'>) {
    this.#db = store.db;
    this.#store = store;
  }

  /** Devices by reported install phase and active model (model "none" when nothing is installed). */
  devices(): DeviceCount[] {
    // Device reports are written once per event-loop turn; read what was reported up to now.
    this.#store.flushReports();
    const rows = this.#db.prepare(`SELECT d.phase AS phase, COALESCE(b.name, 'none') AS model, COALESCE(CAST(b.version AS TEXT), 'none') AS version, COUNT(*) AS n
      FROM devices d LEFT JOIN bundles b ON b.id = d.active_bundle_id GROUP BY 1, 2, 3`).all() as DeviceCount[];
    return rows;
  }

  /** Devices whose last state report (heartbeats included) arrived at or after `since`. */
  seenSince(since: number): number {
    this.#store.flushReports();
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM devices WHERE last_seen >= ?').get(since) as { n: number }).n;
  }

  /** Rollouts by state. */
  rollouts(): { state: string; n: number }[] {
    return this.#db.prepare('SELECT state, COUNT(*) AS n FROM rollouts GROUP BY state').all() as { state: string; n: number }[];
  }
}
