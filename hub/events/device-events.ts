/**
 * Device events (installed, rolled back, failures) as the hub takes them in.
 *
 * A device is not trusted to write history. Three rules keep one device from
 * flooding or poisoning what operators and auditors read:
 *
 * 1. Rate: a token bucket per device (events.burst, events.perMinute). Events
 *    past it are dropped before they are stored and counted as HUB_ERR_EVENT_RATE;
 *    the first drop per device per minute is logged.
 * 2. Consistency: an event that names a bundle the hub never assigned to that
 *    device (under the counter it names), or an install that names no bundle,
 *    is stored as the device's *claim* (claim = 1). Claims are shown apart,
 *    flagged, and never become installs.
 * 3. Evidence: installs consistent with an assignment are appended to the
 *    transparency log in batches (one `installs` leaf per events.logIntervalMs or
 *    events.maxInstallsPerLeaf), so the auditor's "which model ran on which device,
 *    when" is covered by a signed checkpoint. Until its leaf is appended an install
 *    is pending; a pending one survives a restart (the events row is the queue).
 *
 * Retention deletes events past events.retentionMs and beyond events.maxPerDevice
 * per device, but never a device's newest event (the replay guard reads its seq)
 * and never an install still waiting for its leaf.
 */
import type { Logger } from 'pino';
import type { DeviceEvent } from '@fleetcast/protocol/messages.js';
import type { InstallRecord } from '@fleetcast/signing/log-entry.js';
import { decodeEntry, installsEntrySchema } from '@fleetcast/signing/log-entry.js';
import { parse } from '@fleetcast/protocol/schema.js';
import type { HubStore } from '../store.js';
import type { TransparencyLog } from '../translog/translog.js';
import type { EventOptions } from './options.js';

export interface DeviceClaim { deviceId: string; seq: number; kind: string; bundleId: string | null; counter: number | null; at: number; receivedAt: number }

export interface EventStats { stored: number; claims: number; rateLimited: number; logged: number; pruned: number }

type Appender = Pick<TransparencyLog, 'append'>;

/**
 * An install that waits for its log leaf. Only one that names its bundle: the protocol lets any event
 * leave bundleId out, and a leaf is forever, so an install without one must never reach a leaf (every
 * reader of the log's installs would fail on it); accept() keeps such an install as a claim.
 */
const UNLOGGED_INSTALL = `kind = 'installed' AND claim = 0 AND log_index IS NULL AND bundle_id IS NOT NULL`;

export class DeviceEvents {
  private readonly buckets = new Map<string, { tokens: number; at: number; warnedAt: number }>();
  private timer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private pending = 0;
  readonly stats: EventStats = { stored: 0, claims: 0, rateLimited: 0, logged: 0, pruned: 0 };

  constructor(private readonly o: { store: HubStore; log: Appender & Pick<TransparencyLog, 'size'>; options: EventOptions; now: () => number; logger: Logger }) {
    // Installs a previous run stored but did not log yet (a crash between the two) are logged first.
    this.pending = this.unloggedCount();
  }

  /** Start the batch and retention timers; logs what an earlier run left pending. */
  start(): void {
    this.flushInstalls();
    this.prune();
    this.timer = setInterval(() => this.flushInstalls(), this.o.options.logIntervalMs);
    this.timer.unref();
    this.pruneTimer = setInterval(() => this.prune(), this.o.options.pruneIntervalMs);
    this.pruneTimer.unref();
  }

  /** Take one (validated, fresh) event: store it, as a claim where it is not consistent, or drop it past the rate. */
  accept(e: DeviceEvent): 'stored' | 'claim' | 'rate-limited' {
    if (!this.take(e.deviceId)) return 'rate-limited';
    // An install that names no bundle matches no assignment: it is the device's claim, like one of a bundle never assigned.
    const claim = e.bundleId === undefined ? e.kind === 'installed' : !this.o.store.wasAssigned(e.deviceId, e.bundleId, e.counter);
    // Counted once the row is committed, and only if it is new: another hub sharing the database may have
    // stored this (device, seq) already, and the insert then skips it.
    this.o.store.recordEvent(e, this.o.now(), claim, () => {
      if (claim) {
        this.stats.claims++;
        this.o.logger.warn({ code: 'HUB_ERR_EVENT_CLAIM', deviceId: e.deviceId, kind: e.kind, bundleId: e.bundleId, counter: e.counter }, 'a device reported an event for a bundle it was never assigned; kept as an unverified claim');
        return;
      }
      this.stats.stored++;
      if (e.kind === 'installed') {
        this.pending++;
        if (this.pending >= this.o.options.maxInstallsPerLeaf) setImmediate(() => this.flushInstalls());
      }
    });
    return claim ? 'claim' : 'stored';
  }

  /** Append waiting installs to the log, one leaf per maxInstallsPerLeaf; returns how many were logged. */
  flushInstalls(): number {
    const db = this.o.store.db;
    if (!db.open) return 0;
    // Queued events are counted in `pending` when they commit.
    this.o.store.flushReports();
    if (this.pending === 0) return 0;
    let logged = 0;
    try {
      for (;;) {
        const rows = db.prepare(`SELECT id, device_id AS deviceId, bundle_id AS bundleId, COALESCE(counter, 0) AS counter, at, received_at AS receivedAt, seq
          FROM events WHERE ${UNLOGGED_INSTALL} ORDER BY id LIMIT ?`).all(this.o.options.maxInstallsPerLeaf) as (InstallRecord & { id: number })[];
        if (rows.length === 0) break;
        const installs: InstallRecord[] = rows.map(({ deviceId, bundleId, counter, at, receivedAt, seq }) => ({ deviceId, bundleId, counter, at, receivedAt, seq }));
        const mark = db.prepare('UPDATE events SET log_index = ? WHERE id = ?');
        // One transaction: the rows are marked with the leaf that holds them, or neither happens.
        // The rows are marked first (a leaf's index is the log's size before it): should the append fail,
        // the log rolls itself back and so do the marks.
        // Checked before it is signed into the log: a leaf the log's readers cannot decode could never be taken back.
        const entry = parse(installsEntrySchema, { kind: 'installs', at: this.o.now(), installs }, { what: 'installs leaf' });
        db.transaction(() => {
          // A hub of a cluster checks its epoch first, as for assignment counters: a deposed hub marks nothing.
          this.o.store.fence?.(db, 'marking installs as logged');
          const index = this.o.log.size;
          for (const r of rows) mark.run(index, r.id);
          // In a cluster the log re-reads its size from what committed (another hub may have appended since this
          // one last did), so the leaf may land past the size read above: the marks follow the leaf.
          const at = this.o.log.append(entry).index;
          if (at !== index) for (const r of rows) mark.run(at, r.id);
        })();
        logged += rows.length;
        if (rows.length < this.o.options.maxInstallsPerLeaf) break;
      }
    } catch (e) {
      this.o.logger.error({ err: e, code: 'HUB_ERR_STORE' }, 'could not append installs to the transparency log; they stay pending and are retried');
    }
    this.stats.logged += logged;
    this.pending = this.unloggedCount();
    return logged;
  }

  /** Delete events past retention (see the header for what is always kept); returns how many. */
  prune(): number {
    const db = this.o.store.db;
    if (!db.open) return 0;
    this.o.store.flushReports();
    const { retentionMs, maxPerDevice } = this.o.options;
    try {
      const r = db.prepare(`DELETE FROM events WHERE id IN (
          SELECT id FROM (
            SELECT id, kind, claim, log_index, received_at,
                   ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY id DESC) AS nth
            FROM events) AS ranked
          WHERE nth > 1
            AND (received_at < ? OR nth > ?)
            AND NOT (${UNLOGGED_INSTALL}))`).run(this.o.now() - retentionMs, maxPerDevice);
      this.stats.pruned += r.changes;
      // Buckets that have refilled carry no state worth keeping.
      const t = this.o.now();
      for (const [id, b] of this.buckets) if (this.refilled(b, t) >= this.o.options.burst) this.buckets.delete(id);
      return r.changes;
    } catch (e) {
      this.o.logger.error({ err: e, code: 'HUB_ERR_STORE' }, 'event retention failed; it runs again later');
      return 0;
    }
  }

  /** Events stored as claims, newest first. */
  claims(limit = 10_000): DeviceClaim[] {
    this.o.store.flushReports();
    return this.o.store.db.prepare(`SELECT device_id AS deviceId, seq, kind, bundle_id AS bundleId, counter, at, received_at AS receivedAt
      FROM events WHERE claim = 1 ORDER BY id DESC LIMIT ?`).all(limit) as DeviceClaim[];
  }

  /** Consistent installs not yet in a log leaf. */
  pendingInstalls(): InstallRecord[] {
    this.o.store.flushReports();
    return this.o.store.db.prepare(`SELECT device_id AS deviceId, bundle_id AS bundleId, COALESCE(counter, 0) AS counter, at, received_at AS receivedAt, seq
      FROM events WHERE ${UNLOGGED_INSTALL} ORDER BY id`).all() as InstallRecord[];
  }

  close(): void {
    this.stop();
    this.flushInstalls();
  }

  /** Stop the batch and retention timers, without a last batch: a hub that lost the cluster's leadership must not append to the log. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.timer = this.pruneTimer = undefined;
  }

  private refilled(b: { tokens: number; at: number }, t: number): number {
    const { burst, perMinute } = this.o.options;
    return Math.min(burst, b.tokens + (Math.max(0, t - b.at) * perMinute) / 60_000);
  }

  private take(deviceId: string): boolean {
    const t = this.o.now();
    const b = this.buckets.get(deviceId) ?? { tokens: this.o.options.burst, at: t, warnedAt: -Infinity };
    b.tokens = this.refilled(b, t);
    b.at = t;
    this.buckets.set(deviceId, b);
    if (b.tokens >= 1) { b.tokens -= 1; return true; }
    this.stats.rateLimited++;
    if (t - b.warnedAt >= 60_000) {
      b.warnedAt = t;
      this.o.logger.warn({ code: 'HUB_ERR_EVENT_RATE', deviceId, perMinute: this.o.options.perMinute, burst: this.o.options.burst }, 'a device sends events faster than allowed; the excess is dropped (logged once a minute per device)');
    }
    return false;
  }

  private unloggedCount(): number {
    this.o.store.flushReports();
    return this.o.store.db.prepare(`SELECT COUNT(*) FROM events WHERE ${UNLOGGED_INSTALL}`).pluck().get() as number;
  }
}

/** Every install the log holds, in log order (what /v1/log/installs and the auditor read). */
export function loggedInstalls(log: Pick<TransparencyLog, 'leavesOfKind'>): (InstallRecord & { logIndex: number })[] {
  const out: (InstallRecord & { logIndex: number })[] = [];
  for (const leaf of log.leavesOfKind('installs')) {
    const e = decodeEntry(leaf.data, `log entry ${leaf.index}`);
    if (e.kind === 'installs') for (const i of e.installs) out.push({ ...i, logIndex: leaf.index });
  }
  return out;
}
