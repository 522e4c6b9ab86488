/**
 * The hub's telemetry tables (steps of the store's migration chain,
 * hub/store-schema.ts): merged cells per (bundle, ring,
 * key, bucket) at two resolutions, fine (bucketMs, default one minute) and
 * hour; the last seq and drop counter per device; and drift events.
 *
 * Writes come in batches (one transaction per flush). Roll-up folds fine
 * buckets older than `rollupAfterMs` into hour buckets, and retention deletes
 * hour buckets older than `retentionMs`.
 */
import { engineOf, type Db, type Stmt } from '../db/db.js';
import { cellFromJson, cellToJson, mergeCell, type Cell } from './aggregate.js';

export type Resolution = 'fine' | 'hour';
export const HOUR_MS = 3_600_000;

export interface CellKey { bundleId: string; ring: string; key: string; bucket: number }
export interface DriftEventRow { id: number; at: number; bundleId: string; ring: string; feature: string; metric: string; value: number; threshold: number; n: number; state: 'drift' | 'cleared' }

export class TelemetryStore {
  readonly #db: Db;
  readonly #get: Record<Resolution, Stmt>;
  readonly #put: Record<Resolution, Stmt>;
  readonly #putDevice: Stmt;

  constructor(db: Db) {
    this.#db = db;
    this.#get = {
      fine: db.prepare('SELECT data FROM telemetry_fine WHERE bundle_id = ? AND ring = ? AND key = ? AND bucket = ?'),
      hour: db.prepare('SELECT data FROM telemetry_hour WHERE bundle_id = ? AND ring = ? AND key = ? AND bucket = ?'),
    };
    this.#put = {
      fine: db.prepare('INSERT OR REPLACE INTO telemetry_fine (bundle_id, ring, key, bucket, data) VALUES (?, ?, ?, ?, ?)'),
      hour: db.prepare('INSERT OR REPLACE INTO telemetry_hour (bundle_id, ring, key, bucket, data) VALUES (?, ?, ?, ?, ?)'),
    };
    this.#putDevice = db.prepare(`INSERT INTO telemetry_devices (device_id, last_seq, dropped, last_at, bundle_id) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (device_id) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq), dropped = excluded.dropped, last_at = excluded.last_at, bundle_id = excluded.bundle_id`);
  }

  /** Stored cells that could not be read back (skipped by reports and roll-up, counted here, never fatal). */
  unreadableRows = 0;

  #read(key: string, data: string): Cell | undefined {
    try { return cellFromJson(key, data); } catch { this.unreadableRows++; return undefined; }
  }

  getCell(res: Resolution, k: CellKey): Cell | undefined {
    const row = this.#get[res].get(k.bundleId, k.ring, k.key, k.bucket) as { data: string } | undefined;
    return row ? cellFromJson(k.key, row.data) : undefined;
  }

  /** One transaction: full cells (already merged with what was stored) and device sequence marks. */
  writeBatch(cells: readonly [CellKey, Cell][], devices: readonly { deviceId: string; seq: number; dropped: number; at: number; bundleId: string }[]): void {
    this.#db.transaction(() => {
      for (const [k, c] of cells) this.#put.fine.run(k.bundleId, k.ring, k.key, k.bucket, cellToJson(c));
      for (const d of devices) this.#putDevice.run(d.deviceId, d.seq, d.dropped, d.at, d.bundleId);
    })();
  }

  /** The stored JSON of a cell (for ingest's accumulators, which read it without building objects). */
  getRaw(res: Resolution, k: CellKey): string | undefined {
    return (this.#get[res].get(k.bundleId, k.ring, k.key, k.bucket) as { data: string } | undefined)?.data;
  }

  /** Like writeBatch, with cells already serialised (the ingest's hot path). */
  writeBatchJson(cells: readonly [CellKey, string][], devices: readonly { deviceId: string; seq: number; dropped: number; at: number; bundleId: string }[]): void {
    this.#db.transaction(() => {
      for (const [k, json] of cells) this.#put.fine.run(k.bundleId, k.ring, k.key, k.bucket, json);
      for (const d of devices) this.#putDevice.run(d.deviceId, d.seq, d.dropped, d.at, d.bundleId);
    })();
  }

  /**
   * One transaction: add cells holding only what came since the last batch
   * (an ingest worker's deltas) to what is stored, and write device marks.
   * Both sides are validated on read; a stored cell that cannot be read is
   * replaced by the delta (and counted in the result).
   */
  mergeBatchJson(cells: readonly [CellKey, string][], devices: readonly { deviceId: string; seq: number; dropped: number; at: number; bundleId: string }[]): { unreadable: number } {
    let unreadable = 0;
    this.#db.transaction(() => {
      // Several hubs on one PostgreSQL merge into the same cells: one merge at a time, or two that read a cell
      // before either wrote it would each write their own sum and lose the other's (READ COMMITTED).
      if (engineOf(this.#db) === 'postgres') this.#db.prepare('SELECT pg_advisory_xact_lock(7046012)').get();
      for (const [k, json] of cells) {
        // One cell that cannot be read or merged is skipped and counted; it never loses the rest of the batch.
        let cell = this.#read(k.key, json);
        if (!cell) { unreadable++; continue; }
        const stored = this.getRaw('fine', k);
        if (stored !== undefined) {
          try { cell = mergeCell(cellFromJson(k.key, stored), cell); } catch { unreadable++; }
        }
        this.#put.fine.run(k.bundleId, k.ring, k.key, k.bucket, cellToJson(cell));
      }
      for (const d of devices) this.#putDevice.run(d.deviceId, d.seq, d.dropped, d.at, d.bundleId);
    })();
    return { unreadable };
  }

  lastSeq(deviceId: string): number | undefined {
    const r = this.#db.prepare('SELECT last_seq FROM telemetry_devices WHERE device_id = ?').get(deviceId) as { last_seq: number } | undefined;
    return r?.last_seq;
  }

  deviceStats(): { deviceId: string; lastSeq: number; dropped: number; lastAt: number; bundleId: string }[] {
    return (this.#db.prepare('SELECT * FROM telemetry_devices ORDER BY device_id').all() as Record<string, never>[]).map((r) => ({ deviceId: r.device_id, lastSeq: r.last_seq, dropped: r.dropped, lastAt: r.last_at, bundleId: r.bundle_id }));
  }

  /** Every cell of a bundle (optionally one ring) whose bucket overlaps [since, until), from both resolutions. */
  *cells(bundleId: string, ring: string | undefined, since: number, until: number, fineMs: number): Generator<[CellKey, Cell]> {
    for (const [res, width] of [['fine', fineMs], ['hour', HOUR_MS]] as const) {
      const sql = `SELECT ring, key, bucket, data FROM telemetry_${res} WHERE bundle_id = ? AND bucket >= ? AND bucket < ?${ring !== undefined ? ' AND ring = ?' : ''}`;
      const args: unknown[] = [bundleId, since - width + 1, until];
      if (ring !== undefined) args.push(ring);
      for (const r of this.#db.prepare(sql).iterate(...args) as Iterable<{ ring: string; key: string; bucket: number; data: string }>) {
        const cell = this.#read(r.key, r.data);
        if (cell) yield [{ bundleId, ring: r.ring, key: r.key, bucket: r.bucket }, cell];
      }
    }
  }

  /** Bundles with any telemetry at or after `since`. */
  activeBundles(since: number): string[] {
    return (this.#db.prepare('SELECT DISTINCT bundle_id FROM telemetry_fine WHERE bucket >= ? UNION SELECT DISTINCT bundle_id FROM telemetry_hour WHERE bucket >= ?').all(since, since - HOUR_MS) as { bundle_id: string }[]).map((r) => r.bundle_id);
  }

  /** Fold fine buckets before `before` into hour buckets; delete hour buckets before `retainAfter`. Returns rows folded. */
  rollup(before: number, retainAfter: number): { folded: number; expired: number } {
    return this.#db.transaction(() => {
      const rows = this.#db.prepare('SELECT bundle_id, ring, key, bucket, data FROM telemetry_fine WHERE bucket < ?').all(before) as { bundle_id: string; ring: string; key: string; bucket: number; data: string }[];
      const acc = new Map<string, [CellKey, Cell]>();
      for (const r of rows) {
        const k: CellKey = { bundleId: r.bundle_id, ring: r.ring, key: r.key, bucket: Math.floor(r.bucket / HOUR_MS) * HOUR_MS };
        const id = `${k.bundleId}\0${k.ring}\0${k.key}\0${k.bucket}`;
        const c = this.#read(r.key, r.data);
        if (!c) continue;
        const have = acc.get(id);
        if (have) have[1] = mergeCell(have[1], c);
        else {
          const raw = this.getRaw('hour', k);
          const old = raw === undefined ? undefined : this.#read(k.key, raw);
          acc.set(id, [k, old ? mergeCell(old, c) : c]);
        }
      }
      for (const [k, c] of acc.values()) this.#put.hour.run(k.bundleId, k.ring, k.key, k.bucket, cellToJson(c));
      this.#db.prepare('DELETE FROM telemetry_fine WHERE bucket < ?').run(before);
      const expired = this.#db.prepare('DELETE FROM telemetry_hour WHERE bucket < ?').run(retainAfter).changes;
      return { folded: rows.length, expired };
    })();
  }

  recordDriftEvent(e: Omit<DriftEventRow, 'id'>): void {
    this.#db.prepare('INSERT INTO drift_events (at, bundle_id, ring, feature, metric, value, threshold, n, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(e.at, e.bundleId, e.ring, e.feature, e.metric, e.value, e.threshold, e.n, e.state);
  }

  driftEvents(bundleId?: string, limit = 100): DriftEventRow[] {
    const rows = (bundleId
      ? this.#db.prepare('SELECT * FROM drift_events WHERE bundle_id = ? ORDER BY id DESC LIMIT ?').all(bundleId, limit)
      : this.#db.prepare('SELECT * FROM drift_events ORDER BY id DESC LIMIT ?').all(limit)) as Record<string, never>[];
    return rows.map((r) => ({ id: r.id, at: r.at, bundleId: r.bundle_id, ring: r.ring, feature: r.feature, metric: r.metric, value: r.value, threshold: r.threshold, n: r.n, state: r.state }));
  }
}
