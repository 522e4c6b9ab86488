/**
 * Leader election through PostgreSQL (DESIGN.md "Scale-out"): one row,
 * `hub_leader`, holds the current leader, its fencing epoch, the API URL it
 * advertises (followers forward single-writer calls there) and when its lease
 * expires, in the database's clock (so hubs need no synchronised clocks).
 *
 * - A hub that does not lead tries, every `renewMs`, to take the row once its
 *   lease has expired; every takeover adds one to the epoch, in the same
 *   statement, so two hubs can never hold the same epoch.
 * - The leader renews every `renewMs`; a renewal names the epoch it holds, so
 *   one that finds a higher epoch (or an expired lease) fails and the hub is
 *   deposed.
 * - The lease is `leaseMs` from the moment the database executes the renewal,
 *   which is after the hub sent it. The hub stops its leader-only work once
 *   `leaseMs - marginMs` have passed, on its own monotonic clock, since it SENT
 *   the last renewal that succeeded: that is before the row can expire, so
 *   before another hub can be elected, even when the database or the network
 *   hangs and no answer comes at all.
 *
 * Electing is not enough on its own (a paused process may wake up and write
 * after its lease ran out): every single-writer write also checks the epoch in
 * its own transaction (hub/cluster/fence.ts).
 *
 * The lease uses its own connection, so a busy store connection cannot delay a
 * renewal, and a statement timeout, so a hung one cannot hold it for ever.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { Logger } from 'pino';
import { hubError } from '../errors.js';
import { redactUrl } from '../db/pg-db.js';

// Takes the row if it is absent or expired; the epoch grows by one in the same statement.
// ON CONFLICT DO UPDATE locks the row and judges the WHERE on its latest version, so two
// contenders at once cannot both succeed. clock_timestamp(), not now(): now() is the start of the transaction.
const ACQUIRE_SQL = `INSERT INTO hub_leader (id, epoch, holder, url, expires_at)
  VALUES (1, 1, $1, $2, clock_timestamp() + $3 * interval '1 millisecond')
  ON CONFLICT (id) DO UPDATE SET epoch = hub_leader.epoch + 1, holder = excluded.holder, url = excluded.url, expires_at = excluded.expires_at
  WHERE hub_leader.expires_at < clock_timestamp()
  RETURNING epoch::text`;

// Renews only the epoch this hub holds, and only while it has not expired: a leader that
// was too slow never extends a lease another hub may already be entitled to take.
const RENEW_SQL = `UPDATE hub_leader SET expires_at = clock_timestamp() + $3 * interval '1 millisecond', url = $2
  WHERE id = 1 AND holder = $1 AND epoch = $4 AND expires_at >= clock_timestamp()
  RETURNING epoch::text`;

// On a clean stop the lease ends now, so a follower takes over at its next try instead of after the lease.
const RELEASE_SQL = `UPDATE hub_leader SET expires_at = clock_timestamp() WHERE id = 1 AND holder = $1 AND epoch = $2`;

export interface LeaderView { epoch: number; holder: string; url: string | null; expiresAt: number; expired: boolean }

export interface LeaderOptions {
  /** postgres://… of the store every hub of the cluster shares. */
  url: string;
  /** This hub's API URL, advertised to followers that forward single-writer calls. */
  advertiseUrl?: string | null;
  /** A name unique to this process (default: host, pid and a random suffix); a restarted hub is a new holder. */
  holder?: string;
  /** How long a lease lasts after each renewal (default 5 s). */
  leaseMs?: number;
  /** How often the leader renews and a follower tries to take over (default 1 s). */
  renewMs?: number;
  /** The leader stops this long before its lease could expire (default: a fifth of the lease). */
  marginMs?: number;
  logger?: Logger;
  /** Leader-only work starts here. Called at most once per epoch. */
  onElected?(epoch: number): void;
  /** Leader-only work stops here, at once: the hub no longer holds `epoch`. */
  onDeposed?(epoch: number, reason: string): void;
}

export const LEADER_DEFAULTS = { leaseMs: 5_000, renewMs: 1_000 } as const;

export class LeaderLease {
  readonly holder: string;
  readonly leaseMs: number;
  readonly renewMs: number;
  readonly marginMs: number;
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  #epoch: number | null = null;
  /** Monotonic ms after which this hub no longer counts itself the leader. */
  #validUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #busy = false;
  #closed = false;
  #advertise: string | null;

  constructor(private readonly opts: LeaderOptions) {
    this.holder = opts.holder ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
    this.leaseMs = opts.leaseMs ?? LEADER_DEFAULTS.leaseMs;
    this.renewMs = opts.renewMs ?? LEADER_DEFAULTS.renewMs;
    this.marginMs = opts.marginMs ?? Math.floor(this.leaseMs / 5);
    this.#advertise = opts.advertiseUrl ?? null;
    // A renewal must be able to fail and be retried within the lease, with room to stop before it ends.
    if (this.renewMs * 2 + this.marginMs > this.leaseMs) {
      throw hubError('HUB_ERR_CLUSTER_CONFIG', `leaseMs ${this.leaseMs} must be at least twice renewMs ${this.renewMs} plus marginMs ${this.marginMs}`);
    }
  }

  /** The epoch this hub leads under, or null while it does not lead. */
  get epoch(): number | null { return this.#epoch; }
  get isLeader(): boolean { return this.#epoch !== null; }

  /** The API URL to advertise (known only once the API listens). */
  set advertiseUrl(url: string | null) { this.#advertise = url; }

  /**
   * Take part: the first attempt is made before this resolves. Throws HUB_ERR_CLUSTER_UNAVAILABLE when the
   * database cannot be reached, HUB_ERR_CLUSTER_SCHEMA when no store has migrated it (hub_leader is a step of
   * the store's migration chain, hub/store-schema.ts; a hub opens its store before it starts the lease).
   */
  async start(): Promise<void> {
    let migrated: boolean;
    try {
      const c = await this.#connect();
      migrated = (await c.query<{ e: boolean }>("SELECT to_regclass('hub_leader') IS NOT NULL AS e")).rows[0]!.e;
    } catch (e) {
      throw hubError('HUB_ERR_CLUSTER_UNAVAILABLE', `cannot reach the leader lease in ${redactUrl(this.opts.url)}: ${(e as Error).message}`);
    }
    if (!migrated) {
      throw hubError('HUB_ERR_CLUSTER_SCHEMA', `${redactUrl(this.opts.url)} has no hub_leader table: no hub has migrated this database yet; open the store on it first (fleetcast hub --store with this URL migrates it at start)`);
    }
    await this.#tick();
    this.#schedule();
  }

  /** Who leads now, as the database says (followers read it to forward calls). */
  async current(): Promise<LeaderView | undefined> {
    const c = await this.#connect();
    const r = await c.query<{ epoch: string; holder: string; url: string | null; expires_ms: string; expired: boolean }>(
      `SELECT epoch::text, holder, url, (extract(epoch FROM expires_at) * 1000)::bigint::text AS expires_ms, expires_at < clock_timestamp() AS expired FROM hub_leader WHERE id = 1`);
    const row = r.rows[0];
    return row ? { epoch: Number(row.epoch), holder: row.holder, url: row.url, expiresAt: Number(row.expires_ms), expired: row.expired } : undefined;
  }

  /** Stop taking part; a leader ends its lease so another hub takes over at once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    const epoch = this.#epoch;
    if (epoch !== null) {
      this.#depose('the hub is stopping');
      await this.#client?.query(RELEASE_SQL, [this.holder, epoch]).catch(() => {});
    }
    clearTimeout(this.#deadline);
    const c = this.#client;
    this.#client = undefined;
    await c?.end().catch(() => {});
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => { void this.#tick().finally(() => this.#schedule()); }, this.renewMs);
    this.#timer.unref?.();
  }

  async #tick(): Promise<void> {
    if (this.#busy || this.#closed) return;
    this.#busy = true;
    const sentAt = performance.now();
    const held = this.#epoch;
    try {
      const c = await this.#connect();
      if (held !== null) {
        const r = await c.query<{ epoch: string }>(RENEW_SQL, [this.holder, this.#advertise, this.leaseMs, held]);
        // Deposed meanwhile by the deadline (the answer came too late), or by a higher epoch.
        if (this.#epoch !== held) return;
        if (r.rows.length === 0) { this.#depose('the lease was taken over or had expired'); return; }
        this.#extend(sentAt);
      } else {
        const r = await c.query<{ epoch: string }>(ACQUIRE_SQL, [this.holder, this.#advertise, this.leaseMs]);
        if (r.rows.length === 0 || this.#closed) return;
        const epoch = Number(r.rows[0]!.epoch);
        this.#epoch = epoch;
        this.#extend(sentAt);
        this.opts.logger?.info({ epoch, holder: this.holder }, 'this hub is the leader');
        this.opts.onElected?.(epoch);
      }
    } catch (e) {
      // The deadline timer deposes a leader whose renewals keep failing; a follower just tries again.
      this.opts.logger?.warn({ code: 'HUB_ERR_CLUSTER_UNAVAILABLE', err: e, leader: held !== null }, 'the leader lease could not be read or renewed; retrying');
      const c = this.#client;
      this.#client = undefined;
      c?.end().catch(() => {});
    } finally {
      this.#busy = false;
    }
  }

  #extend(sentAt: number): void {
    this.#validUntil = sentAt + this.leaseMs - this.marginMs;
    this.#armDeadline();
  }

  #armDeadline(): void {
    clearTimeout(this.#deadline);
    // +1: timers run on the loop's cached millisecond clock and may fire a fraction early; an early one re-arms.
    this.#deadline = setTimeout(() => {
      if (this.#epoch === null) return;
      if (performance.now() >= this.#validUntil) this.#depose(`no renewal succeeded within ${this.leaseMs - this.marginMs} ms`);
      else this.#armDeadline();
    }, Math.max(0, this.#validUntil - performance.now()) + 1);
    this.#deadline.unref?.();
  }

  #depose(reason: string): void {
    const epoch = this.#epoch;
    if (epoch === null) return;
    this.#epoch = null;
    clearTimeout(this.#deadline);
    this.opts.logger?.warn({ epoch, holder: this.holder, reason }, 'this hub is no longer the leader');
    this.opts.onDeposed?.(epoch, reason);
  }

  #connect(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= (async () => {
      // query_timeout: a statement that hangs fails the tick, and the deadline deposes a leader in time.
      // statement_timeout makes the server give up too (a takeover blocked behind a fenced transaction's lock, say).
      const timeout = Math.max(this.renewMs, 500);
      const c = new pg.Client({ connectionString: this.opts.url, query_timeout: timeout, statement_timeout: timeout, connectionTimeoutMillis: Math.max(this.renewMs * 2, 1_000), application_name: 'fleetcast-hub-leader' });
      // An 'error' event with no listener would end the process; the next tick reconnects.
      c.on('error', (e) => { this.opts.logger?.warn({ err: e }, 'leader lease connection lost'); if (this.#client === c) this.#client = undefined; });
      try {
        await c.connect();
      } catch (e) {
        c.end().catch(() => {});
        throw e;
      }
      this.#client = c;
      return c;
    })().finally(() => { this.#connecting = undefined; });
    return this.#connecting;
  }
}
