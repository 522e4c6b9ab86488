/**
 * Raw debug rows from devices (issue #5): kept only for a device an operator
 * has put in debug sampling (hub/debug/), bounded — the newest
 * `maxRowsPerDevice` per device, none older than `maxAgeMs` — in the
 * debug_rows table (hub/store-schema.ts).
 *
 * Rows from a device that is not in debug, and rows beyond the session's rows
 * per window, are discarded and counted (HUB_ERR_DEBUG_NOT_REQUESTED); the
 * rest of the report they came with is ingested as usual. `record` is the one
 * entry point for every telemetry wire format.
 */
import type { Db } from '../db/db.js';
import type { Logger } from 'pino';
import { DebugSessionStore, type DebugSessionRow } from '../debug/debug-store.js';

/** Rows of a window that straddles the start or end of a session still count (clocks and delivery are not exact). */
export const DEBUG_GRACE_MS = 5_000;
/** How often old rows are deleted (at most; done while recording). */
const PRUNE_EVERY_MS = 60_000;

export interface DebugRowsOptions { maxRowsPerDevice?: number; maxAgeMs?: number }
export interface StoredDebugRow { id: number; receivedAt: number; bundleId: string; from: number | null; row: Record<string, unknown> }
export interface DebugRowStats { stored: number; discarded: number; discardedByDevice: Record<string, number> }

/** Did the device's session cover (part of) the window [from, to]? */
export function sessionCovers(s: DebugSessionRow | undefined, from: number, to: number): boolean {
  if (!s || s.rowsPerWindow === null || s.startedAt === null || s.until === null) return false;
  const end = Math.min(s.until, s.endedAt ?? Number.POSITIVE_INFINITY);
  return from <= end + DEBUG_GRACE_MS && to >= s.startedAt - DEBUG_GRACE_MS;
}

export class DebugRows {
  readonly maxRowsPerDevice: number;
  readonly maxAgeMs: number;
  readonly stats: DebugRowStats = { stored: 0, discarded: 0, discardedByDevice: {} };
  readonly #db: Db;
  readonly #sessions: DebugSessionStore;
  readonly #now: () => number;
  readonly #logger: Logger;
  #prunedAt = 0;
  readonly #warnedAt = new Map<string, number>();

  constructor(db: Db, d: { now: () => number; logger: Logger } & DebugRowsOptions) {
    this.#db = db;
    this.#now = d.now;
    this.#logger = d.logger;
    this.maxRowsPerDevice = d.maxRowsPerDevice ?? 1_000;
    this.maxAgeMs = d.maxAgeMs ?? 24 * 3_600_000;
    this.#sessions = new DebugSessionStore(db);
  }

  /**
   * Raw rows a device sent with one report (window [from, to] on the device's clock when known;
   * otherwise now). Returns how many were stored and how many discarded. Never throws: a
   * storage failure is logged and the rows count as discarded.
   */
  record(deviceId: string, bundleId: string, rows: readonly Record<string, unknown>[], window?: { from: number; to: number }): { stored: number; discarded: number } {
    if (rows.length === 0) return { stored: 0, discarded: 0 };
    const now = this.#now();
    let keep: readonly Record<string, unknown>[] = [];
    try {
      const s = this.#sessions.get(deviceId);
      if (sessionCovers(s, window?.from ?? now, window?.to ?? now)) keep = rows.slice(0, s!.rowsPerWindow!);
      if (keep.length > 0) this.#insert(deviceId, bundleId, keep, now, window?.from ?? null);
    } catch (e) {
      this.#logger.error({ err: e, deviceId }, 'storing debug rows failed; they were discarded');
      keep = [];
    }
    const discarded = rows.length - keep.length;
    this.stats.stored += keep.length;
    if (discarded > 0) this.#discard(deviceId, discarded, now);
    return { stored: keep.length, discarded };
  }

  /** The newest rows of a device, newest first (none older than maxAgeMs). */
  list(deviceId: string, limit = 100): StoredDebugRow[] {
    const rows = this.#db.prepare('SELECT id, bundle_id, received_at, window_from, data FROM debug_rows WHERE device_id = ? AND received_at >= ? ORDER BY id DESC LIMIT ?')
      .all(deviceId, this.#now() - this.maxAgeMs, limit) as { id: number; bundle_id: string; received_at: number; window_from: number | null; data: string }[];
    return rows.map((r) => ({ id: r.id, receivedAt: r.received_at, bundleId: r.bundle_id, from: r.window_from, row: JSON.parse(r.data) as Record<string, unknown> }));
  }

  count(deviceId: string): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM debug_rows WHERE device_id = ? AND received_at >= ?').get(deviceId, this.#now() - this.maxAgeMs) as { n: number }).n;
  }

  /** Delete rows older than maxAgeMs. */
  prune(now = this.#now()): number {
    this.#prunedAt = now;
    return this.#db.prepare('DELETE FROM debug_rows WHERE received_at < ?').run(now - this.maxAgeMs).changes;
  }

  #insert(deviceId: string, bundleId: string, rows: readonly Record<string, unknown>[], now: number, from: number | null): void {
    const put = this.#db.prepare('INSERT INTO debug_rows (device_id, bundle_id, received_at, window_from, data) VALUES (?, ?, ?, ?, ?)');
    this.#db.transaction(() => {
      for (const r of rows) put.run(deviceId, bundleId, now, from, JSON.stringify(r));
      // Keep the newest maxRowsPerDevice of this device.
      this.#db.prepare(`DELETE FROM debug_rows WHERE device_id = ? AND id <= (SELECT id FROM debug_rows WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`)
        .run(deviceId, deviceId, this.maxRowsPerDevice);
    })();
    if (now - this.#prunedAt >= PRUNE_EVERY_MS) this.prune(now);
  }

  #discard(deviceId: string, n: number, now: number): void {
    this.stats.discarded += n;
    const by = this.stats.discardedByDevice;
    // Bounded: a flood of device ids must not grow this without limit.
    if (by[deviceId] !== undefined || Object.keys(by).length < 10_000) by[deviceId] = (by[deviceId] ?? 0) + n;
    const last = this.#warnedAt.get(deviceId) ?? -Infinity;
    if (now - last >= 60_000) {
      if (this.#warnedAt.size >= 10_000) this.#warnedAt.clear();
      this.#warnedAt.set(deviceId, now);
      this.#logger.warn({ code: 'HUB_ERR_DEBUG_NOT_REQUESTED', deviceId, rows: n }, 'discarded raw debug rows no operator asked for');
    }
  }
}
