/**
 * Which bundles a device may download (hub/transfer.ts asks before queueing a
 * chunk request). A device is served only:
 * - the bundle of its current assignment;
 * - the bundle of its previous assignment (what a rollback returns it to);
 * - a bundle the hub once assigned it AND that it reports as its active or
 *   previous model (re-fetching what it ran; a device's claim alone grants nothing).
 * Every assignment the hub issues is remembered here, in the bundle_grants
 * table (hub/store-schema.ts), so the previous
 * assignment survives restarts. Bundles are signed, not secret, but a model is
 * the customer's property: a device that is not meant to run it has no reason
 * to read it.
 */
import type { Db } from './db/db.js';
import { statementCache } from './db/statement-cache.js';
import type { HubStore } from './store.js';

export class BundleGrants {
  private readonly db: Db;
  private readonly store: Pick<HubStore, 'getAssignment' | 'getDevice'>;
  /** Statements asked for every chunk request, prepared once. */
  private readonly stmt: ReturnType<typeof statementCache>;

  constructor(db: Db, store: Pick<HubStore, 'getAssignment' | 'getDevice'>) {
    this.db = db;
    this.store = store;
    this.stmt = statementCache(db);
  }

  /** The hub is assigning `bundleId` to these devices (called before the assignments are stored). */
  record(bundleId: string, deviceIds: readonly string[]): void {
    // seq orders grants (a counter, not a clock); the newest grant of a bundle moves it to the front. The highest
    // seq is read once per deploy, in its transaction: a MAX(seq) per row scanned the whole table for every device
    // (seq has no index), 1.4 s for a deploy to 10,000 devices on an empty table, growing with every deploy kept.
    const put = this.db.prepare(`INSERT INTO bundle_grants (device_id, bundle_id, seq) VALUES (?, ?, ?)
      ON CONFLICT (device_id, bundle_id) DO UPDATE SET seq = excluded.seq`);
    // The assignment being replaced becomes the previous one; it may predate this table (an upgraded hub).
    const seed = this.db.prepare('INSERT INTO bundle_grants (device_id, bundle_id, seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    this.db.transaction(() => {
      let seq = (this.db.prepare('SELECT COALESCE(MAX(seq), 0) AS s FROM bundle_grants').get() as { s: number }).s;
      for (const d of deviceIds) {
        const current = this.store.getAssignment(d)?.bundleId;
        if (current !== undefined && current !== bundleId) seed.run(d, current, ++seq);
        put.run(d, bundleId, ++seq);
      }
    })();
  }


  mayFetch(deviceId: string, bundleId: string): boolean {
    const current = this.store.getAssignment(deviceId)?.bundleId;
    if (current === bundleId) return true;
    const previous = this.stmt('SELECT bundle_id AS b FROM bundle_grants WHERE device_id = ? AND bundle_id IS NOT ? ORDER BY seq DESC LIMIT 1')
      .get(deviceId, current ?? null) as { b: string } | undefined;
    if (previous?.b === bundleId) return true;
    const granted = this.stmt('SELECT 1 FROM bundle_grants WHERE device_id = ? AND bundle_id = ?').get(deviceId, bundleId) !== undefined;
    if (!granted) return false;
    const state = this.store.getDevice(deviceId)?.state;
    return state?.active?.bundleId === bundleId || state?.previous?.bundleId === bundleId;
  }
}
